// The audit diff: paths for nested objects, arrays and odd keys; what changed, was added or
// removed; a create or delete (one side empty) lists every field.
import { describe, expect, it } from 'vitest';
import { counts, diff, flatten } from './json-diff.js';

describe('json diff', () => {
  it('flattens to readable paths, empty containers and odd keys included', () => {
    const m = flatten({ a: { b: 1, 'x-y': [true, { c: null }] }, e: {}, f: [], rule: { '==': [1, 2] } });
    expect([...m.entries()]).toEqual([
      ['a.b', 1],
      ['a["x-y"][0]', true],
      ['a["x-y"][1].c', null],
      ['e', {}],
      ['f', []],
      ['rule["=="][0]', 1],
      ['rule["=="][1]', 2],
    ]);
    expect([...flatten('plain').entries()]).toEqual([['(value)', 'plain']]);
  });

  it('tells changed, added, removed and unchanged fields apart', () => {
    const before = {
      name: 'Spring',
      version: 1,
      webhook: { url: 'https://a.example/h', secret: '[redacted]' },
      nodes: [{ id: 'a', next: 'b' }, { id: 'b' }],
      limit: 1,
    };
    const after = {
      name: 'Spring sale',
      version: 2,
      webhook: { url: 'https://a.example/h', secret: '[redacted]' },
      nodes: [{ id: 'a', next: 'c' }, { id: 'b' }, { id: 'c' }],
      limit: '1',
    };
    const rows = diff(before, after);
    const by = Object.fromEntries(rows.map((r) => [r.path, r]));
    expect(by.name).toEqual({ path: 'name', kind: 'changed', before: '"Spring"', after: '"Spring sale"' });
    expect(by.version?.kind).toBe('changed');
    expect(by['webhook.url']?.kind).toBe('same');
    expect(by['webhook.secret']?.kind).toBe('same');
    expect(by['nodes[0].next']).toEqual({
      path: 'nodes[0].next',
      kind: 'changed',
      before: '"b"',
      after: '"c"',
    });
    expect(by['nodes[2].id']).toEqual({ path: 'nodes[2].id', kind: 'added', before: '', after: '"c"' });
    // a number that became a string is a change, and it shows
    expect(by.limit).toEqual({ path: 'limit', kind: 'changed', before: '1', after: '"1"' });
    expect(counts(rows)).toEqual({ changed: 4, added: 1, removed: 0, same: 4 });
    // the order: before's fields, then the new ones
    expect(rows.at(-1)?.path).toBe('nodes[2].id');
  });

  it('lists every field as added on a create and removed on a delete', () => {
    const seg = { id: 's1', rule: { '==': [{ var: 'traits.plan' }, 'pro'] } };
    expect(diff(null, seg).map((r) => [r.path, r.kind])).toEqual([
      ['id', 'added'],
      ['rule["=="][0].var', 'added'],
      ['rule["=="][1]', 'added'],
    ]);
    expect(counts(diff(seg, null))).toEqual({ changed: 0, added: 0, removed: 3, same: 0 });
    expect(diff({ a: 1, gone: { x: 1 } }, { a: 1 })).toEqual([
      { path: 'a', kind: 'same', before: '1', after: '1' },
      { path: 'gone.x', kind: 'removed', before: '1', after: '' },
    ]);
  });
});
