// Amazon SNS HTTP(S) deliveries, as Amazon SES publishes bounces, complaints and deliveries
// through them: the message signature checked exactly as AWS documents it
// (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html), and the
// SES notification inside reduced to one EmailProviderEvent per recipient.
//
// Signature: the string to sign is `key\nvalue\n` for, in this order, Message, MessageId,
// Subject (only when present), Timestamp, TopicArn, Type of a Notification; Message,
// MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type of a SubscriptionConfirmation or
// UnsubscribeConfirmation. SignatureVersion 1 is SHA1withRSA, 2 SHA256withRSA, with the public
// key of the X.509 certificate at SigningCertURL. That URL (and a SubscribeURL we are asked to
// GET) must be https on `sns.<region>.amazonaws.com` (or `.amazonaws.com.cn`) with a
// region-shaped label (`eu-west-1`, `us-gov-west-1`, `cn-north-1`: not `s3` or
// `s3-accelerate`, S3 bucket hosts anyone can put a file on), so the certificate is one AWS
// serves over TLS; a certificate's path must be `/SimpleNotificationService-<hex>.pem` with no
// query or fragment. Only an explicit endpoint option replaces the host rule (tests, a
// stand-in). The certificate is fetched with a timeout, no redirects and a size cap, and kept
// per URL.
//
// A valid signature proves only that SNS sent it: anyone can make a topic of their own and
// get signed messages. What makes a message ours is its TopicArn, which must be on the
// configured allowlist.
import { type KeyObject, verify, X509Certificate } from 'node:crypto';
import type { EmailProviderEvent } from './email-webhooks.ts';
import { RateLimiter } from './rate-limit.ts';

/** An SNS HTTP(S) delivery body. */
export interface SnsMessage {
  Type: string;
  MessageId: string;
  TopicArn: string;
  Message: string;
  Timestamp: string;
  SignatureVersion: string;
  Signature: string;
  SigningCertURL: string;
  Subject?: string;
  SubscribeURL?: string;
  Token?: string;
  UnsubscribeURL?: string;
}

export const SNS_TYPES = ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'] as const;

const NOTIFICATION_FIELDS = ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'] as const;
const CONFIRMATION_FIELDS = [
  'Message',
  'MessageId',
  'SubscribeURL',
  'Timestamp',
  'Token',
  'TopicArn',
  'Type',
] as const;

/**
 * The SNS message, when the body has every field its Type signs (strings) and a signature;
 * undefined otherwise (a 403: nothing signed to check).
 */
export function asSnsMessage(v: unknown): SnsMessage | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const m = v as Record<string, unknown>;
  const type = m.Type;
  if (typeof type !== 'string' || !(SNS_TYPES as readonly string[]).includes(type)) return undefined;
  const fields = type === 'Notification' ? NOTIFICATION_FIELDS : CONFIRMATION_FIELDS;
  for (const f of [...fields, 'Signature', 'SignatureVersion', 'SigningCertURL']) {
    if (f === 'Subject' && (m.Subject === undefined || m.Subject === null)) continue;
    if (typeof m[f] !== 'string') return undefined;
  }
  return m as unknown as SnsMessage;
}

/** The string SNS signs for a message (its documented canonical form). */
export function snsStringToSign(m: SnsMessage): string {
  const fields = m.Type === 'Notification' ? NOTIFICATION_FIELDS : CONFIRMATION_FIELDS;
  let out = '';
  for (const f of fields) {
    const v = (m as unknown as Record<string, unknown>)[f];
    if (v === undefined || v === null) continue; // only Subject can be absent (asSnsMessage)
    out += `${f}\n${String(v)}\n`;
  }
  return out;
}

const SIGNATURE_HASH: Record<string, string> = { '1': 'sha1', '2': 'sha256' };

/** Whether `key` signed the message (SignatureVersion 1 or 2); false for anything malformed. */
export function verifySnsSignature(m: SnsMessage, key: KeyObject): boolean {
  const hash = SIGNATURE_HASH[m.SignatureVersion];
  if (!hash) return false;
  try {
    return verify(hash, Buffer.from(snsStringToSign(m), 'utf8'), key, Buffer.from(m.Signature, 'base64'));
  } catch {
    return false;
  }
}

// sns.<region>: two letters, an optional -gov / -iso(b|e|f), a direction word, a digit
const SNS_HOST = /^sns\.[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d\.amazonaws\.com(?:\.cn)?$/;
const SNS_CERT_PATH = /^\/SimpleNotificationService-[0-9a-f]+\.pem$/;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * Whether a URL may be fetched as SNS's: by default https, no credentials, default port, host
 * `sns.<region>.amazonaws.com(.cn)` with a region-shaped label. With `endpoint` (explicit
 * configuration, for tests and stand-ins) exactly that origin instead; plain http only when
 * it is on loopback. A signing certificate (`cert`, the default) must also have the path SNS
 * gives them, `/SimpleNotificationService-<hex>.pem`, and no query or fragment; a SubscribeURL
 * keeps its own path and query.
 */
export function snsUrlAllowed(raw: string, endpoint?: string, kind: 'cert' | 'subscribe' = 'cert'): boolean {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return false;
  }
  if (u.username || u.password) return false;
  if (kind === 'cert' && (!SNS_CERT_PATH.test(u.pathname) || raw.includes('?') || raw.includes('#')))
    return false;
  if (endpoint) {
    let e: URL;
    try {
      e = new URL(endpoint);
    } catch {
      return false;
    }
    if (e.protocol === 'http:' && !LOOPBACK.has(e.hostname)) return false;
    return u.origin === e.origin;
  }
  return u.protocol === 'https:' && u.port === '' && SNS_HOST.test(u.hostname);
}

export const MAX_CERT_BYTES = 16 * 1024;
const MAX_CACHED_CERTS = 64;

/** Reads a response body up to `max` bytes; throws beyond it. */
async function readCapped(res: Response, max: number): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      await reader.cancel().catch(() => {});
      throw new Error(`over ${max} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A certificate that could not be used (the message is refused) vs. one not fetched for now. */
export class CertError extends Error {
  constructor(
    message: string,
    readonly retriable: boolean,
  ) {
    super(message);
  }
}

/** How far ahead of our clock a certificate's notBefore may be. */
const CERT_CLOCK_SKEW_MS = 5 * 60_000;
/** How long a certificate URL that gave no usable certificate (404, not a PEM) is not asked again. */
export const CERT_FAILURE_TTL_MS = 60_000;

/** A URL as a cache key: scheme, lowercased host, path; no query or fragment. */
export function certCacheKey(raw: string): string {
  try {
    const u = new URL(raw);
    return `${u.protocol}//${u.host.toLowerCase()}${u.pathname}`;
  } catch {
    return raw;
  }
}

/** Certificates that verified a message kept at most (SNS uses one or two per region). */
const MAX_VERIFIED_CERTS = 16;

interface CertEntry {
  key: KeyObject;
  validTo: number;
  validFrom: number;
}

/**
 * Signing certificates by URL: fetched once (with a timeout, no redirects, a size cap), the
 * public key kept until the certificate's own expiry. A URL that answered with no usable
 * certificate is not asked again for a minute; one that could not be reached is asked again on
 * the next message (SNS retries 20 s apart by default). Fetches are at most `fetchesPerMinute`
 * per client address (default 20; SNS uses one certificate for months) and
 * `globalFetchesPerMinute` in all (default 120): a flood of forged messages naming new URLs on
 * SNS's host costs at most that many requests, the rest wait (503, SNS retries).
 *
 * A certificate that verified a message (`verified(url)`) moves out of the evictable cache
 * into its own small set that only other verified certificates displace: whatever a forger
 * floods the cache with, the certificate real messages are signed with stays, and they need
 * no fetch and no budget. Keys are the URL without query and fragment, host lowercased.
 */
export function snsCertCache(opts: {
  timeoutMs: number;
  now: () => Date;
  fetchesPerMinute?: number;
  globalFetchesPerMinute?: number;
}) {
  const cache = new Map<string, Promise<CertEntry>>();
  const pinned = new Map<string, CertEntry>();
  const failed = new Map<string, { until: number; error: CertError }>();
  const perMinute = opts.fetchesPerMinute ?? 20;
  const globalPerMinute = opts.globalFetchesPerMinute ?? Math.max(perMinute, 120);
  const perClient = new RateLimiter(perMinute / 60, perMinute, undefined, 10_000);
  const global = new RateLimiter(globalPerMinute / 60, globalPerMinute);
  const load = async (url: string, client: string): Promise<CertEntry> => {
    if (!perClient.take(client, 1).ok || !global.take('all', 1).ok)
      throw new CertError('too many certificate fetches, retry later', true);
    let res: Response;
    try {
      res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(opts.timeoutMs) });
    } catch (err) {
      throw new CertError(`signing certificate not fetched: ${(err as Error).message}`, true);
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new CertError(`signing certificate not fetched: HTTP ${res.status}`, res.status >= 500);
    }
    let pem: string;
    try {
      pem = await readCapped(res, MAX_CERT_BYTES);
    } catch (err) {
      throw new CertError(`signing certificate not read: ${(err as Error).message}`, false);
    }
    try {
      const cert = new X509Certificate(pem);
      return {
        key: cert.publicKey,
        validTo: Date.parse(cert.validTo),
        validFrom: Date.parse(cert.validFrom),
      };
    } catch (err) {
      throw new CertError(`signing certificate unreadable: ${(err as Error).message}`, false);
    }
  };
  const usable = (e: CertEntry, now: number): KeyObject => {
    // a certificate issued just now may look a little ahead of a clock that is behind
    if (!(e.validTo > now) || !(e.validFrom <= now + CERT_CLOCK_SKEW_MS))
      throw new CertError('signing certificate not valid now', false);
    return e.key;
  };
  const settled = new Map<string, CertEntry>();
  return {
    /** The certificate's key; `client` is the requester's address (its fetch budget). */
    async key(raw: string, client = 'unknown'): Promise<KeyObject> {
      const url = certCacheKey(raw);
      const now = opts.now().getTime();
      const pin = pinned.get(url);
      if (pin) return usable(pin, now);
      const f = failed.get(url);
      if (f && f.until > now) throw f.error;
      if (f) failed.delete(url);
      let p = cache.get(url);
      if (!p) {
        if (cache.size >= MAX_CACHED_CERTS) {
          const oldest = cache.keys().next().value as string;
          cache.delete(oldest);
          settled.delete(oldest);
        }
        p = load(url, client);
        cache.set(url, p);
        p.then(
          (e) => {
            if (cache.get(url) === p) settled.set(url, e);
          },
          (err: unknown) => {
            if (cache.get(url) === p) cache.delete(url);
            if (err instanceof CertError && !err.retriable) {
              if (failed.size >= MAX_CACHED_CERTS) failed.delete(failed.keys().next().value as string);
              failed.set(url, { until: opts.now().getTime() + CERT_FAILURE_TTL_MS, error: err });
            }
          },
        );
      }
      return usable(await p, now);
    },
    /** The certificate at `raw` verified a message: kept apart, never evicted by unverified ones. */
    verified(raw: string): void {
      const url = certCacheKey(raw);
      if (pinned.has(url)) return;
      const e = settled.get(url);
      if (!e) return;
      const now = opts.now().getTime();
      if (pinned.size >= MAX_VERIFIED_CERTS) {
        // an expired one goes first, else the oldest
        const expired = [...pinned].find(([, v]) => !(v.validTo > now))?.[0];
        pinned.delete(expired ?? (pinned.keys().next().value as string));
      }
      pinned.set(url, e);
      cache.delete(url);
      settled.delete(url);
    },
    size: () => cache.size,
    verifiedSize: () => pinned.size,
  };
}

// ---- SES notifications ----------------------------------------------------------------

const str = (v: unknown, max = 1000): string | undefined =>
  typeof v === 'string' && v.length > 0 ? v.slice(0, max) : undefined;
const obj = (v: unknown): Record<string, unknown> | undefined =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
const EMAIL = /^[^\s@]+@[^\s@]+$/;
const dateOf = (v: unknown): Date | undefined => {
  const s = str(v, 64);
  const t = s ? Date.parse(s) : Number.NaN;
  return Number.isNaN(t) ? undefined : new Date(t);
};

/** A bare address from `Name <a@b>` or `a@b`, lowercased; undefined when it is none. */
function address(v: unknown): string | undefined {
  const s = str(v, 400)?.trim();
  if (!s) return undefined;
  const m = /<([^>]+)>\s*$/.exec(s);
  const a = (m ? m[1]! : s).trim().toLowerCase();
  return a.length <= 320 && EMAIL.test(a) ? a : undefined;
}

/** The first value of an SES tag (`mail.tags` is a map of arrays). */
function tag(tags: Record<string, unknown> | undefined, name: string): string | undefined {
  const v = tags?.[name];
  return Array.isArray(v) ? str(v[0], 300) : str(v, 300);
}

/** A header of `mail.headers` (present when the identity includes original headers). */
function header(mail: Record<string, unknown> | undefined, name: string): string | undefined {
  const hs = mail?.headers;
  if (!Array.isArray(hs)) return undefined;
  const want = name.toLowerCase();
  for (const h of hs) {
    const o = obj(h);
    if (str(o?.name, 200)?.toLowerCase() === want) return str(o?.value, 300);
  }
  return undefined;
}

/** What SES sends back of ours: the send key, campaign and profile (tags, else the send-key header). */
export interface SesTags {
  sendKey?: string;
  campaignId?: string;
  profileId?: string;
}

/**
 * One SES notification (the SNS Message, parsed), classic (`notificationType`) or event
 * publishing (`eventType`), as one event per recipient; [] for kinds we do nothing with.
 * `decodeTag` turns a tag value back into what was tagged (email-providers.ts encodes values
 * SES does not allow). Event ids are `<SNS MessageId>:<recipient>`: SNS redelivers a message
 * with its MessageId, so a redelivery is the same events.
 */
export function sesEvents(
  raw: unknown,
  snsMessageId: string,
  snsTimestamp: Date | undefined,
  decodeTag: (v: string | undefined) => string | undefined,
): Array<EmailProviderEvent | undefined> {
  const n = obj(raw);
  if (!n) return [undefined];
  const kind = str(n.notificationType, 64) ?? str(n.eventType, 64);
  if (!kind) return [undefined];
  const mail = obj(n.mail);
  const tags = obj(mail?.tags);
  const sendKey = decodeTag(tag(tags, 'cdp_send_key')) ?? header(mail, 'X-CDP-Send-Key');
  const campaignId = decodeTag(tag(tags, 'cdp_campaign'));
  const profileId = decodeTag(tag(tags, 'cdp_profile'));
  const tagWorkspace = decodeTag(tag(tags, 'cdp_ws'));
  const tagSignature = tag(tags, 'cdp_sig');
  const providerMessageId = str(mail?.messageId, 200);
  const base = (email: string, at: Date | undefined) => ({
    provider: 'ses' as const,
    eventId: `${snsMessageId}:${email}`,
    email,
    ...(sendKey ? { sendKey } : {}),
    ...(campaignId ? { campaignId } : {}),
    ...(profileId ? { profileId } : {}),
    ...(tagWorkspace ? { tagWorkspace } : {}),
    ...(tagSignature ? { tagSignature } : {}),
    ...(providerMessageId ? { providerMessageId } : {}),
    at: at ?? dateOf(mail?.timestamp) ?? snsTimestamp,
  });
  const recipients = (list: unknown, field?: string): Array<string | undefined> =>
    Array.isArray(list) ? list.slice(0, 1000).map((r) => address(field ? obj(r)?.[field] : r)) : [undefined];

  switch (kind) {
    case 'Bounce': {
      const b = obj(n.bounce);
      const type = str(b?.bounceType, 64) ?? 'Undetermined';
      const sub = str(b?.bounceSubType, 64) ?? 'Undetermined';
      const hard = type === 'Permanent';
      const at = dateOf(b?.timestamp);
      const list = Array.isArray(b?.bouncedRecipients) ? (b.bouncedRecipients as unknown[]) : [];
      if (list.length === 0) return [undefined];
      return list.slice(0, 1000).map((r) => {
        const o = obj(r);
        const email = address(o?.emailAddress);
        if (!email) return undefined;
        const reason = str(o?.diagnosticCode) ?? str(o?.status, 64);
        return {
          ...base(email, at),
          outcome: hard ? ('bounced' as const) : ('soft_bounced' as const),
          suppress: hard,
          detail: `${type}/${sub}`,
          ...(reason ? { reason } : {}),
        };
      });
    }
    case 'Complaint': {
      const c = obj(n.complaint);
      const at = dateOf(c?.timestamp);
      const feedback = str(c?.complaintFeedbackType, 64) ?? str(c?.complaintSubType, 64);
      const list = Array.isArray(c?.complainedRecipients) ? (c.complainedRecipients as unknown[]) : [];
      if (list.length === 0) return [undefined];
      // `not-spam`: the receiver's feedback that the mail is wanted, no complaint at all
      const notSpam = feedback?.toLowerCase() === 'not-spam';
      return recipients(list, 'emailAddress').map((email) =>
        email
          ? {
              ...base(email, at),
              outcome: notSpam ? ('ignored' as const) : ('complained' as const),
              suppress: !notSpam,
              detail: feedback ? `Complaint/${feedback}` : 'Complaint',
            }
          : undefined,
      );
    }
    case 'Delivery': {
      const d = obj(n.delivery);
      const at = dateOf(d?.timestamp);
      const reason = str(d?.smtpResponse);
      const list = Array.isArray(d?.recipients) ? (d.recipients as unknown[]) : [];
      if (list.length === 0) return [undefined];
      return recipients(list).map((email) =>
        email
          ? {
              ...base(email, at),
              outcome: 'delivered' as const,
              suppress: false,
              detail: 'Delivery',
              ...(reason ? { reason } : {}),
            }
          : undefined,
      );
    }
    default: {
      // Send, Reject, DeliveryDelay, Open, Click, Rendering Failure, Subscription: nothing to
      // do. A DeliveryDelay is SES still trying (a Bounce or Delivery follows); a Reject is
      // SES refusing the whole message (a virus), nothing about the address.
      const to = Array.isArray(mail?.destination) ? recipients(mail.destination) : [];
      return to.flatMap((email) =>
        email
          ? [{ ...base(email, undefined), outcome: 'ignored' as const, suppress: false, detail: kind }]
          : [],
      );
    }
  }
}
