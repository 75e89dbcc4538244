import { describe, expect, it } from 'vitest';
import { signUnsubscribeToken, verifyUnsubscribeToken } from './unsubscribe-token.ts';

const secret = 'a-secret-of-enough-length';
const claims = { w: 'ws1', p: 'p1', c: 'email', u: 'marketing', k: 'cmp_1' };

describe('unsubscribe tokens', () => {
  it('verifies what it signed', () => {
    expect(verifyUnsubscribeToken(secret, signUnsubscribeToken(secret, claims), Date.now())).toEqual({
      ok: true,
      claims,
    });
  });

  it('refuses a changed payload, a changed signature, another secret, junk', () => {
    const token = signUnsubscribeToken(secret, claims);
    const [payload, sig] = token.split('.') as [string, string];
    const other = Buffer.from(JSON.stringify({ ...claims, p: 'someone-else' })).toString('base64url');
    for (const t of [`${other}.${sig}`, `${payload}.${sig.slice(1)}A`, `${payload}.`, 'x', `${token}.x`])
      expect(verifyUnsubscribeToken(secret, t, Date.now()).ok).toBe(false);
    expect(verifyUnsubscribeToken('another-secret-xxxxxxxx', token, Date.now())).toEqual({
      ok: false,
      reason: 'bad signature',
    });
  });

  it('honours an expiry', () => {
    const token = signUnsubscribeToken(secret, { ...claims, e: 1000 });
    expect(verifyUnsubscribeToken(secret, token, 999_000).ok).toBe(true);
    expect(verifyUnsubscribeToken(secret, token, 1_000_001)).toEqual({ ok: false, reason: 'token expired' });
  });
});
