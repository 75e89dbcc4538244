// Signed unsubscribe tokens: activation puts them in links, the query service verifies
// them. `payload.mac`, both base64url; the MAC is HMAC-SHA256 over the payload text with
// the configured secret, so a changed byte anywhere fails verification.
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface UnsubscribeClaims {
  /** workspace */
  w: string;
  /** profile */
  p: string;
  /** channel */
  c: string;
  /** purpose */
  u: string;
  /** campaign (for the record) */
  k?: string;
  /** expiry, epoch seconds */
  e?: number;
}

const mac = (secret: string, payload: string) =>
  createHmac('sha256', secret).update(payload).digest('base64url');

export function signUnsubscribeToken(secret: string, claims: UnsubscribeClaims): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${payload}.${mac(secret, payload)}`;
}

/** The claims of a valid token, or a reason it is not valid. */
export function verifyUnsubscribeToken(
  secret: string,
  token: string,
  nowMs: number,
): { ok: true; claims: UnsubscribeClaims } | { ok: false; reason: string } {
  const [payload, sig, extra] = token.split('.');
  if (!payload || !sig || extra !== undefined) return { ok: false, reason: 'malformed token' };
  const want = Buffer.from(mac(secret, payload));
  const got = Buffer.from(sig);
  if (want.length !== got.length || !timingSafeEqual(want, got))
    return { ok: false, reason: 'bad signature' };
  let claims: UnsubscribeClaims;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as UnsubscribeClaims;
  } catch {
    return { ok: false, reason: 'malformed token' };
  }
  if (typeof claims.w !== 'string' || typeof claims.p !== 'string' || typeof claims.c !== 'string')
    return { ok: false, reason: 'malformed token' };
  if (claims.e !== undefined && claims.e * 1000 < nowMs) return { ok: false, reason: 'token expired' };
  return { ok: true, claims };
}
