// workspaceKeys is memoised: the same builders come back for the same prefix and workspace,
// never another workspace's, and the shared object cannot be changed by a caller.
import { describe, expect, it } from 'vitest';
import { workspaceKeys } from './redis-keys.ts';

describe('workspaceKeys', () => {
  it('answers the same frozen builders for the same prefix and workspace', () => {
    const a = workspaceKeys('rk', 'ws1');
    expect(workspaceKeys('rk', 'ws1')).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(a.sendClaim('k1')).toBe('rk:{ws1}:send:k1');
  });

  it('keeps prefixes and workspaces apart, also when their names run together', () => {
    expect(workspaceKeys('rk', 'ws2').profile('p')).toBe('rk:{ws2}:p:p');
    expect(workspaceKeys('rk2', 'ws1').profile('p')).toBe('rk2:{ws1}:p:p');
    // "a" + "b:c" and "a:b" + "c" must not share an entry
    expect(workspaceKeys('a', 'b:c').tag).toBe('a:{b:c}');
    expect(workspaceKeys('a:b', 'c').tag).toBe('a:b:{c}');
  });

  it('stays correct past the memo bound (many workspaces from data)', () => {
    for (let i = 0; i < 12_000; i++) expect(workspaceKeys('rk', `w${i}`).tag).toBe(`rk:{w${i}}`);
    expect(workspaceKeys('rk', 'ws1').sendClaim('k2')).toBe('rk:{ws1}:send:k2');
  });
});
