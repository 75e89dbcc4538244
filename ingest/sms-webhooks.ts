// Twilio-shaped SMS webhooks on the public ingest host, no key: Twilio's request signature
// (X-Twilio-Signature, HMAC-SHA1 with the account's auth token over the public URL and the
// POST parameters sorted by name) is the credential; a mismatch is a 403 and changes nothing.
//
// - /status: delivery status callbacks. Each is kept on the message (a hash per MessageSid,
//   30 days) and logged; `failed`/`undelivered` with 21610 (the recipient replied STOP to the
//   carrier), 21211 or 21614 (not a valid / not a mobile number) puts the `To` number on the
//   workspace suppression list (`phone:`), which activation checks at every send.
// - /inbound: an incoming message. STOP/STOPALL/UNSUBSCRIBE/CANCEL/END/QUIT (the whole message,
//   trimmed, any case) suppresses the sender's number; START/UNSTOP/YES lifts it; HELP answers
//   the configured help text. A phone is a trait, not an identity (the processor indexes no
//   phone → profile), and a carrier STOP is about the number, whoever's profile carries it:
//   so the decision is kept as the `phone:` suppression, honoured for every profile with that
//   number, even one not yet known. Each decision is queued as a consent_log row (source
//   `sms_keyword`, the text received, the number as identifier) for the query service, which
//   holds ClickHouse (query/sms-consent-log.ts, schemas/sms-consent.ts).
//
// A redelivered callback (same MessageSid, and same status for /status) answers the same and
// does nothing again. A keyword's marker and its suppression change are one Redis script (a
// crash cannot keep one without the other); its consent_log job is queued after it, again on
// each redelivery, so a failure there is healed by Twilio's retry. A status callback's marker
// is set first (SET NX) and removed if the effects fail (503, so Twilio retries).
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { getConnInfo } from '@hono/node-server/conninfo';
import { type Context, Hono } from 'hono';
import type { Logger } from '../runtime/log.ts';
import { suppressionMember } from '../schemas/contact.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { type SmsConsentJob, smsConsentDueKey } from '../schemas/sms-consent.ts';
import { IngestError } from './ingest-error.ts';
import type { RateLimiter } from './rate-limit.ts';
import { readRawBody } from './read-body.ts';

/** The part of an ioredis client the webhooks use. */
export interface SmsWebhookRedis {
  set(key: string, value: string, ex: 'EX', seconds: number, nx: 'NX'): Promise<unknown>;
  del(key: string): Promise<unknown>;
  sadd(key: string, member: string): Promise<unknown>;
  srem(key: string, member: string): Promise<unknown>;
  hset(key: string, values: Record<string, string>): Promise<unknown>;
  expire(key: string, seconds: number): Promise<unknown>;
  zadd(key: string, nx: 'NX', score: number, member: string): Promise<unknown>;
  eval(script: string, n: number, ...args: Array<string | number>): Promise<unknown>;
}

export interface SmsWebhookDeps {
  redis: SmsWebhookRedis;
  redisPrefix: string;
  /** CDP_SMS_AUTH_TOKEN; empty (and no workspace account): every webhook is refused (503). */
  authToken: string;
  /**
   * The auth token of the workspace's own Twilio account (stored channel credentials), if it
   * has one: its messages' callbacks are signed with it. A signature by either token is taken.
   */
  workspaceAuthToken?: (workspaceId: string) => Promise<string | undefined>;
  /** CDP_INGEST_PUBLIC_URL: the URL Twilio calls, as it signs it. */
  publicUrl: string;
  /** Answered to HELP (CDP_SMS_HELP_TEXT). */
  helpText: string;
  workspaceKnown: (workspaceId: string) => Promise<boolean>;
  /** Requests per client address; none means unlimited. */
  limiter?: RateLimiter;
  log: Logger;
  now: () => Date;
}

export const MAX_SMS_WEBHOOK_BYTES = 64 * 1024;
const SEEN_TTL_S = 7 * 86_400;
const MESSAGE_TTL_S = 30 * 86_400;
const STOP = new Set(['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT']);
const START = new Set(['START', 'UNSTOP', 'YES']);
const HELP = new Set(['HELP', 'INFO']);
/**
 * An inbound keyword, once per MessageSid: the marker (holding the consent_log job) and the
 * suppression change in one step, so a crash cannot leave one without the other.
 * KEYS: 1 marker, 2 suppression set; ARGV: 1 subscribed (1|0), 2 member, 3 job JSON, 4 ttl s.
 * Returns the job of the first delivery (this one's, or the one stored).
 */
// A status callback's effects, once per MessageSid and status. KEYS: 1 redelivery marker,
// 2 the message's hash, 3 the suppression list. ARGV: marker TTL, message TTL, status, error
// code, To, time (ms), the suppression member ('' for none). → 1 applied | 0 seen before
const STATUS = `
if not redis.call('SET', KEYS[1], '1', 'EX', ARGV[1], 'NX') then return 0 end
redis.call('HSET', KEYS[2], 'status', ARGV[3], 'error', ARGV[4], 'to', ARGV[5], 'at:' .. ARGV[3], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[2])
if ARGV[7] ~= '' then redis.call('SADD', KEYS[3], ARGV[7]) end
return 1`;

const KEYWORD = `
if redis.call('SET', KEYS[1], ARGV[3], 'EX', tonumber(ARGV[4]), 'NX') then
  if ARGV[1] == '1' then redis.call('SREM', KEYS[2], ARGV[2]) else redis.call('SADD', KEYS[2], ARGV[2]) end
  return ARGV[3]
end
return redis.call('GET', KEYS[1])`;

/** Twilio error codes after which the number is not tried again. */
export const SUPPRESSING_ERRORS = new Set(['21610', '21211', '21614']);
const STATUSES = new Set([
  'accepted',
  'scheduled',
  'queued',
  'sending',
  'sent',
  'delivered',
  'undelivered',
  'failed',
  'receiving',
  'received',
  'read',
  'canceled',
]);

/** Twilio's signature: base64 HMAC-SHA1 of the URL followed by every name+value, by name. */
export function twilioSignature(authToken: string, url: string, params: Array<[string, string]>): string {
  const sorted = [...params].sort(([a, av], [b, bv]) =>
    a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0,
  );
  let data = url;
  for (const [k, v] of sorted) data += k + v;
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

const xmlEsc = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

function twiml(c: Context, message?: string, status = 200) {
  c.header('Cache-Control', 'no-store');
  const body = message
    ? `<?xml version="1.0" encoding="UTF-8"?><Response><Message>${xmlEsc(message)}</Message></Response>`
    : '<?xml version="1.0" encoding="UTF-8"?><Response/>';
  return c.body(body, status as 200, { 'Content-Type': 'text/xml; charset=utf-8' });
}

function peer(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? '';
  } catch {
    return '';
  }
}

const WS = /^[A-Za-z0-9_-]{1,64}$/;

export function smsWebhookRoutes(deps: SmsWebhookDeps): Hono {
  const app = new Hono();
  const base = deps.publicUrl.replace(/\/+$/, '');

  /** Checks size, workspace, rate and signature; answers the parameters or the refusal. */
  const verified = async (c: Context): Promise<Map<string, string> | Response> => {
    const ws = c.req.param('workspace') ?? '';
    const text = (s: number, msg: string) => c.text(msg, s as 400);
    const rate = deps.limiter?.take(peer(c), 1);
    if (rate && !rate.ok) {
      c.header('Retry-After', String(rate.retryAfterSeconds));
      return text(429, 'rate limit exceeded');
    }
    const declared = Number(c.req.header('content-length') ?? '0');
    if (declared > MAX_SMS_WEBHOOK_BYTES) return text(413, 'body too large');
    const ct = (c.req.header('content-type') ?? '').toLowerCase();
    if (!ct.startsWith('application/x-www-form-urlencoded'))
      return text(415, 'expected application/x-www-form-urlencoded');
    // counted as it streams: a chunked body (no Content-Length) is cut off at the limit
    let buf: Buffer;
    try {
      const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
      buf = await readRawBody(
        incoming && !incoming.readableEnded ? incoming : c.req.raw,
        MAX_SMS_WEBHOOK_BYTES,
      );
    } catch (err) {
      if (!(err instanceof IngestError)) throw err;
      return text(err.status, err.status === 413 ? 'body too large' : err.message);
    }
    // an unknown workspace is told apart only after the signature (no probing for workspaces)
    if (!WS.test(ws)) return text(403, 'invalid signature');
    // the deployment's account, and the workspace's own when it has one
    const own = deps.workspaceAuthToken ? await deps.workspaceAuthToken(ws) : undefined;
    const tokens = [deps.authToken, own].filter((t): t is string => !!t);
    if (tokens.length === 0) return text(503, 'SMS webhooks are not configured');
    const params = [...new URLSearchParams(new TextDecoder().decode(buf))];
    const q = new URL(c.req.url).search;
    const b = Buffer.from(c.req.header('x-twilio-signature') ?? '');
    const signedBy = tokens.some((t) => {
      const a = Buffer.from(twilioSignature(t, base + c.req.path + q, params));
      return a.length === b.length && timingSafeEqual(a, b);
    });
    if (!signedBy) {
      deps.log.warn({ workspaceId: ws, path: c.req.path }, 'sms_webhook_bad_signature');
      return text(403, 'invalid signature');
    }
    if (!(await deps.workspaceKnown(ws))) return text(404, 'unknown workspace');
    return new Map(params);
  };

  const unavailable = (c: Context, err: unknown) => {
    deps.log.warn({ err: (err as Error).message }, 'sms_webhook_unavailable');
    return c.text('try again', 503);
  };

  app.post('/v1/webhooks/sms/twilio/:workspace/status', async (c) => {
    const p = await verified(c);
    if (p instanceof Response) return p;
    const ws = c.req.param('workspace');
    const sid = p.get('MessageSid') ?? p.get('SmsSid') ?? '';
    const status = (p.get('MessageStatus') ?? p.get('SmsStatus') ?? '').toLowerCase();
    if (!sid || sid.length > 64 || !STATUSES.has(status))
      return c.text('MessageSid and MessageStatus required', 400);
    const error = (p.get('ErrorCode') ?? '').slice(0, 16);
    const to = p.get('To') ?? '';
    const k = workspaceKeys(deps.redisPrefix, ws);
    const tag = `${deps.redisPrefix}:{${ws}}`; // the workspace's hash tag (schemas/redis-keys.ts)
    try {
      const suppress =
        (status === 'failed' || status === 'undelivered') &&
        SUPPRESSING_ERRORS.has(error) &&
        /[0-9]/.test(to);
      // the redelivery marker, the message's status and the suppression in one step: a crash
      // cannot leave the marker without the suppression (which the redelivery would then skip)
      const fresh = await deps.redis.eval(
        STATUS,
        3,
        `${tag}:sms:seen:status:${sid}:${status}`,
        `${tag}:sms:msg:${sid}`,
        k.suppressions,
        SEEN_TTL_S,
        MESSAGE_TTL_S,
        status,
        error,
        to,
        deps.now().getTime(),
        suppress ? suppressionMember('phone', to) : '',
      );
      if (fresh === 1)
        deps.log.info(
          { workspaceId: ws, messageSid: sid, status, error: error || undefined, suppressed: suppress },
          'sms_status',
        );
    } catch (err) {
      return unavailable(c, err);
    }
    return twiml(c);
  });

  app.post('/v1/webhooks/sms/twilio/:workspace/inbound', async (c) => {
    const p = await verified(c);
    if (p instanceof Response) return p;
    const ws = c.req.param('workspace');
    const sid = p.get('MessageSid') ?? p.get('SmsSid') ?? '';
    const from = p.get('From') ?? '';
    const body = p.get('Body') ?? '';
    if (!sid || sid.length > 64 || !from) return c.text('MessageSid and From required', 400);
    const word = body.trim().toUpperCase();
    if (HELP.has(word)) return twiml(c, deps.helpText);
    const subscribed = START.has(word) ? true : STOP.has(word) ? false : undefined;
    if (subscribed === undefined) return twiml(c);
    const k = workspaceKeys(deps.redisPrefix, ws);
    const tag = `${deps.redisPrefix}:{${ws}}`; // the workspace's hash tag (schemas/redis-keys.ts)
    const member = suppressionMember('phone', from);
    // a sender with no digits (an alphanumeric id) names no number to suppress
    if (!/[0-9]/.test(member)) return c.text('From is not a phone number', 400);
    try {
      const at = deps.now().getTime();
      const job: SmsConsentJob = {
        workspaceId: ws,
        at,
        phone: member.slice('phone:'.length),
        subscribed,
        text: body.slice(0, 2000),
        messageSid: sid,
      };
      const mine = JSON.stringify(job);
      const first = (await deps.redis.eval(
        KEYWORD,
        2,
        `${tag}:sms:seen:inbound:${sid}`,
        k.suppressions,
        subscribed ? '1' : '0',
        member,
        mine,
        SEEN_TTL_S,
      )) as string;
      // queued again on a redelivery (NX: a job still waiting is not touched), so a failure
      // here is healed by Twilio's retry; one already written may then be logged twice (same ref)
      await deps.redis.zadd(smsConsentDueKey(deps.redisPrefix), 'NX', at, first);
      if (first === mine) deps.log.info({ workspaceId: ws, messageSid: sid, subscribed }, 'sms_keyword');
    } catch (err) {
      return unavailable(c, err);
    }
    return twiml(c);
  });
  return app;
}
