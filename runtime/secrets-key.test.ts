import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyring, localSecretsKey, open, parseSecretKey, seal, UnreadableSecret } from './secrets-key.ts';

const raw = randomBytes(32);

describe('secrets key', () => {
  it('reads 32 bytes as hex, base64 or base64url, the same key and id each way', () => {
    const ids = [raw.toString('hex'), raw.toString('base64'), raw.toString('base64url')].map(
      (t) => parseSecretKey(t).id,
    );
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toMatch(/^[0-9a-f]{8}$/);
    expect(parseSecretKey(raw.toString('hex')).key.equals(raw)).toBe(true);
  });

  it('refuses other lengths without echoing the value', () => {
    for (const bad of [randomBytes(16).toString('base64'), randomBytes(31).toString('hex'), 'not a key'])
      expect(() => parseSecretKey(bad)).toThrow(/32 bytes/);
    try {
      parseSecretKey('supersecretvalue');
    } catch (err) {
      expect((err as Error).message).not.toContain('supersecretvalue');
    }
  });

  it('seals with a fresh IV each time; opens only with the same key and AAD, untouched', () => {
    const k1 = parseSecretKey(raw.toString('base64'));
    const k2 = parseSecretKey(randomBytes(32).toString('base64'));
    const ring = keyring(k1);
    const a = seal(ring, 'token-123', 'ws1|sms');
    const b = seal(ring, 'token-123', 'ws1|sms');
    expect(a.iv).not.toBe(b.iv);
    expect(a.ct).not.toBe(b.ct);
    expect(Buffer.from(a.iv, 'base64')).toHaveLength(12);
    expect(a.kid).toBe(k1.id);
    expect(JSON.stringify(a)).not.toContain('token-123');
    expect(open(ring, a, 'ws1|sms')).toBe('token-123');
    expect(() => open(ring, a, 'ws2|sms')).toThrow(UnreadableSecret);
    const flipped = Buffer.from(a.ct, 'base64');
    flipped[0]! ^= 1;
    expect(() => open(ring, { ...a, ct: flipped.toString('base64') }, 'ws1|sms')).toThrow(
      /authentication failed/,
    );
    // the key id names a key this ring lacks
    expect(() => open(keyring(k2), a, 'ws1|sms')).toThrow(/neither CDP_SECRETS_KEY/);
    expect(() => open(keyring(), a, 'ws1|sms')).toThrow(/CDP_SECRETS_KEY is not set/);
    // a previous key opens, the current one seals
    const rotated = keyring(k2, k1);
    expect(open(rotated, a, 'ws1|sms')).toBe('token-123');
    expect(seal(rotated, 'x', 'y').kid).toBe(k2.id);
    expect(() => seal(keyring(), 'x', 'y')).toThrow(/CDP_SECRETS_KEY is not set/);
  });

  it('the local default key is made once, mode 0600, and read back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cdp-secrets-'));
    const path = join(dir, 'secrets.key');
    const first = localSecretsKey(path);
    expect(first.created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const again = localSecretsKey(path);
    expect(again).toEqual({ text: first.text, created: false });
    expect(parseSecretKey(readFileSync(path, 'utf8')).key).toHaveLength(32);
  });
});
