// Signed email tracking tokens: activation puts them in an email's open pixel and click
// links, the ingest host verifies them. `payload.mac`, both base64url; the payload is the
// claims as JSON, the MAC is HMAC-SHA256 (first 16 bytes) over the purpose and the payload
// with a key derived from CDP_UNSUBSCRIBE_SECRET (no new secret to configure, and a token
// of one purpose is never valid for another: an unsubscribe or opt-in token is not a
// tracking token, an open token is not a click token). A click token carries its exact
// target: the redirect goes there and nowhere else, so the host is no open redirect.
import { createHmac, timingSafeEqual } from 'node:crypto';

export type TrackingKind = 'o' | 'c';

export interface TrackingClaims {
  /** workspace */
  w: string;
  /** profile id (at send time: a later merge is followed when the event is attributed) */
  p: string;
  /** campaign */
  k: string;
  /** send key (activation's deterministic id of this message) */
  s: string;
  /** sent at, epoch ms */
  t: number;
  /** click target (clicks only): an absolute http(s) URL */
  u?: string;
}

/** Long links are signed as they are; past this the token is refused (and the link left alone). */
export const MAX_TRACKING_TOKEN_LENGTH = 4096;

/** The tracking key: derived from the unsubscribe secret, as the double opt-in key is. */
export const trackingSecret = (unsubscribeSecret: string) =>
  createHmac('sha256', unsubscribeSecret).update('cdp-email-tracking').digest('base64url');

const mac = (secret: string, kind: TrackingKind, payload: string) =>
  createHmac('sha256', secret).update(`${kind}.${payload}`).digest().subarray(0, 16).toString('base64url');

export function signTrackingToken(secret: string, kind: TrackingKind, claims: TrackingClaims): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${payload}.${mac(secret, kind, payload)}`;
}

export function isHttpUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

const ID = (v: unknown, max: number) => typeof v === 'string' && v.length > 0 && v.length <= max;

/** The claims of a valid token of the kind, or why it is not valid. */
export function verifyTrackingToken(
  secret: string,
  kind: TrackingKind,
  token: string | undefined,
): { ok: true; claims: TrackingClaims } | { ok: false; reason: 'malformed' | 'signature' } {
  if (!token || token.length > MAX_TRACKING_TOKEN_LENGTH) return { ok: false, reason: 'malformed' };
  const [payload, sig, extra] = token.split('.');
  if (!payload || !sig || extra !== undefined || !/^[A-Za-z0-9_-]+$/.test(payload))
    return { ok: false, reason: 'malformed' };
  const want = Buffer.from(mac(secret, kind, payload));
  const got = Buffer.from(sig);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return { ok: false, reason: 'signature' };
  let c: TrackingClaims;
  try {
    c = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as TrackingClaims;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  // signed by us, but checked all the same: a key shared with an older build must not crash this one
  if (
    c === null ||
    typeof c !== 'object' ||
    !ID(c.w, 64) ||
    !ID(c.p, 128) ||
    !ID(c.k, 128) ||
    !ID(c.s, 256) ||
    typeof c.t !== 'number' ||
    !Number.isFinite(c.t) ||
    (kind === 'c' ? typeof c.u !== 'string' || !isHttpUrl(c.u) : c.u !== undefined)
  )
    return { ok: false, reason: 'malformed' };
  return { ok: true, claims: c };
}
