// Email provider event webhooks on the public ingest host, no write key: bounces, complaints
// and deliveries from SendGrid, Postmark and Amazon SES (through Amazon SNS).
//
//   POST /v1/webhooks/email/sendgrid/{workspace}  SendGrid's Signed Event Webhook: the
//     X-Twilio-Email-Event-Webhook-Signature header is an ECDSA P-256 / SHA-256 signature
//     (base64 DER) over X-Twilio-Email-Event-Webhook-Timestamp + the raw body, checked with the
//     account's verification key (CDP_SENDGRID_WEBHOOK_PUBLIC_KEY). A bad or missing
//     signature, or a timestamp more than 10 minutes off (a replay), is a 403.
//   POST /v1/webhooks/email/postmark/{workspace}  Postmark signs nothing: the webhook URL
//     carries HTTP Basic credentials (CDP_POSTMARK_WEBHOOK_USER / _PASSWORD), compared in
//     constant time; anything else is a 401.
//   POST /v1/webhooks/email/ses/{workspace}  Amazon SNS HTTP(S) deliveries of SES
//     notifications (ses-sns.ts): the SNS signature (SignatureVersion 1 SHA1withRSA, 2
//     SHA256withRSA) with the certificate at SigningCertURL, which must be
//     https://sns.<region>.amazonaws.com(.cn)/SimpleNotificationService-<hex>.pem (a
//     region-shaped label, no query); the TopicArn on CDP_SES_SNS_TOPIC_ARNS (anyone can get
//     validly signed messages from a topic of their own), and when the entry is
//     `arn=workspace` only at that workspace's URL (elsewhere a 403); Timestamp at most 65 minutes old
//     (SNS retries an HTTP(S) delivery for at most 3,600 s, a hard limit; 5 minutes for clock
//     and queueing) and at most 5 minutes ahead. A failed check is a 403 (no allowlist
//     configured: every message is); a certificate SNS's host could not serve just now a 503.
//     A SubscriptionConfirmation that passes is confirmed (GET of its SubscribeURL, which
//     must pass the same host rule), logged and audited, once per SNS MessageId. Each
//     recipient of a notification is one event, id `<SNS MessageId>:<recipient>`.
//
// What an event does: a hard bounce (SendGrid `bounce` of type `bounce`, a `dropped` for a
// bounced/invalid/spam-reporting address; Postmark HardBounce, BadEmailAddress,
// ManuallyDeactivated) and a complaint (SendGrid `spamreport`, Postmark SpamComplaint) put the
// address on the workspace's suppression list, so later sends are `suppressed:
// suppression_list`. The first time an address goes on the list a `suppression_added` log
// line is written, the why (provider, event id, reason, time) is kept in the workspace's
// suppression-reasons hash, and an audit_log row (entity_type suppression, actor
// webhook:<provider>) is queued for the query service to write (schemas/audit-queue.ts).
// A soft bounce (SendGrid `blocked`, Postmark SoftBounce, Transient, DnsError, …, SES
// Transient/Undetermined bounces) suppresses nothing: the provider retries it. The optional
// `onSoftBounce` hook is called once per soft-bounce event whose tags verify. An SES complaint
// of feedback type `not-spam` is no complaint (ignored: nothing suppressed, no row).
//
// Which send: the webhook credentials are the deployment's (one SendGrid verification key,
// one Postmark Basic credential, one SNS topic allowlist for every workspace), so they prove
// the provider saw the address, not that the event belongs to the workspace in the URL. What
// ties an event to a send of that workspace is the tag signature (schemas/email-tags.ts):
// cdp_sig, an HMAC activation puts over cdp_ws, cdp_send_key, cdp_campaign and cdp_profile.
// An event whose signature verifies and whose cdp_ws is the URL's workspace is that send's;
// any other is taken without its tags (logged `email_tags_unverified`): it still suppresses
// and tracks, but writes no ledger row and brings no resend.
//
// Ledger: every hard bounce, complaint, soft bounce and delivery whose tags verify (send key
// in cdp_send_key: SendGrid custom arg, Postmark Metadata, SES tag) is
// also an activation_ledger row (outcome bounced / complained / soft_bounced / delivered,
// channel email, reason `<provider>:<type>`, provider_id the provider's message id, campaign
// and profile from cdp_campaign / cdp_profile, at the provider's event time, attempt 0),
// produced to the activation-ledger topic. The row and the hook happen once per event: a
// Redis marker per event (pending while it runs, a redelivery meanwhile is a 503; done for
// 7 days). A crash after the row was produced but before `done` produces it again on the
// redelivery; the row is the same (deterministic), and the ledger API and bi_sends keep one
// (LIMIT 1 BY send key, campaign, profile, channel, outcome, reason, attempt, status).
//
// Every bounce, complaint and delivery becomes a track (`Email Bounced`, `Email Complained`,
// `Email Delivered`) of the person who has the address: the profile is found by the
// address's email identity in Redis (merges followed) and the event is produced with that
// profile's own userId (else its smallest anonymousId), as the open pixel does. It can link
// or merge nothing, and a webhook for an address nobody has creates no profile (the
// suppression still holds). Its messageId is derived from the provider's event id, so a
// redelivered webhook is one event (the processor drops a messageId it has seen) and the
// suppression, a set member, is added once: a redelivery changes nothing.
//
// Bounds: body ≤ 1 MB (413), malformed JSON 400, unknown workspace 404 (after the
// credential check, saying nothing else), at most 1,000 events per request, and per address a
// token bucket for deliveries and soft bounces (events over it are skipped and logged);
// ignored events (opens, clicks, sends) are not counted, and a hard bounce or complaint is
// processed whatever the bucket says.
// Answers: 200 {success, processed, suppressed, skipped} once everything was stored; 503 when
// Redis or Kafka could not take it (the provider retries).
import { createHash, createPublicKey, type KeyObject, timingSafeEqual, verify } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type Context, Hono } from 'hono';
import { survivorOf } from '../profiles/read.ts';
import { clientKey, remoteAddress } from '../runtime/auth-failures.ts';
import { withTimeout } from '../runtime/http.ts';
import type { Producer } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import { auditDueKey, type QueuedAudit } from '../schemas/audit-queue.ts';
import { suppressionMember } from '../schemas/contact.ts';
import { EMAIL_TAGS, fromSesTagValue, verifyEmailTags } from '../schemas/email-tags.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { eventKey } from '../schemas/topics.ts';
import { IngestError } from './ingest-error.ts';
import { normalizeEvent, type TimeBounds } from './normalize-event.ts';
import type { RateLimiter } from './rate-limit.ts';
import { readRawBody } from './read-body.ts';
import {
  asSnsMessage,
  CertError,
  type SnsMessage,
  sesEvents,
  snsCertCache,
  snsUrlAllowed,
  verifySnsSignature,
} from './ses-sns.ts';

export const MAX_WEBHOOK_BODY_BYTES = 1024 * 1024;
export const MAX_WEBHOOK_EVENTS = 1000;
/** SendGrid signatures older (or newer) than this are refused as replays. */
export const SIGNATURE_MAX_AGE_MS = 10 * 60 * 1000;
/**
 * SNS messages older than this are refused: SNS retries an HTTP(S) delivery for at most
 * 3,600 s (a hard limit of its delivery policies), plus 5 minutes for queueing and clocks.
 */
export const SNS_MAX_AGE_MS = 65 * 60 * 1000;
/** SNS messages dated further ahead than this (a wrong clock somewhere) are refused. */
export const SNS_MAX_AHEAD_MS = 5 * 60 * 1000;
/** How long the once-per-event marker stays `done` (longer than any provider redelivers). */
export const EVENT_DONE_TTL_MS = 7 * 24 * 3600 * 1000;
/** How long a `pending` marker holds (a worker that died mid-way frees it then). */
export const EVENT_PENDING_TTL_MS = 60 * 1000;

/** The part of an ioredis client the webhooks use. */
export interface WebhookRedis {
  get(key: string): Promise<string | null>;
  hget(key: string, field: string): Promise<string | null>;
  hsetnx(key: string, field: string, value: string): Promise<number>;
  smembers(key: string): Promise<string[]>;
  sadd(key: string, ...members: string[]): Promise<number>;
  sismember(key: string, member: string): Promise<number>;
  zadd(key: string, score: number, member: string): Promise<unknown>;
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<string | null>;
  set(key: string, value: string, px: 'PX', ms: number): Promise<string | null>;
  del(key: string): Promise<number>;
}

/** One soft bounce, as given to EmailWebhookDeps.onSoftBounce. */
export interface SoftBounceEvent {
  workspaceId: string;
  provider: EmailProviderEvent['provider'];
  address: string;
  sendKey?: string;
  campaignId?: string;
  profileId?: string;
  /** `<provider>:<the provider's event id>`: the same for every redelivery of the event. */
  eventId: string;
  /** The provider's event time (receipt when it gave none). */
  at: Date;
  /** The provider's kind and what the receiving server said (`Transient/MailboxFull: 452 …`). */
  reason: string;
}

/** Amazon SES through SNS (POST /v1/webhooks/email/ses/{workspace}). */
export interface SesWebhookConfig {
  /**
   * TopicArns whose messages are taken (CDP_SES_SNS_TOPIC_ARNS), each `arn` or
   * `arn=workspace` (then only at that workspace's URL, elsewhere a 403); empty: all refused.
   */
  topicArns: string[];
  /**
   * Testing and stand-ins only: the one origin signing certificates and SubscribeURLs may come
   * from instead of https://sns.<region>.amazonaws.com(.cn) (http only on loopback).
   */
  endpoint?: string;
  /** Fetching a signing certificate or confirming a subscription; default 5 s. */
  fetchTimeoutMs?: number;
}

export interface EmailWebhookDeps {
  producer: Producer;
  eventsTopic: string;
  redis: WebhookRedis;
  redisPrefix: string;
  log: Logger;
  now: () => Date;
  produceTimeoutMs: number;
  timeBounds?: TimeBounds;
  /** SendGrid's verification key (base64 SPKI DER or PEM); unset: the SendGrid route refuses all. */
  sendgridPublicKey?: string;
  /** Postmark's webhook Basic credentials; unset: the Postmark route refuses all. */
  postmark?: { user: string; password: string };
  /** Whether a workspace exists (unknown ones are a 404). */
  workspaceExists: (workspaceId: string) => boolean | Promise<boolean>;
  /** Events per address (key `${workspace}\0${address}`); over it they are skipped. */
  addressLimiter?: RateLimiter;
  /** Amazon SES through SNS; unset: the SES route refuses all. */
  ses?: SesWebhookConfig;
  /** The activation-ledger topic: events carrying our send key become ledger rows there. */
  ledgerTopic?: string;
  /**
   * Called once per soft-bounce event whose tags verify (after the redelivery check); a throw
   * is a 503.
   */
  onSoftBounce?: (ev: SoftBounceEvent) => void | Promise<void>;
  /**
   * The tag-signing key (emailTagSecret(CDP_UNSUBSCRIBE_SECRET)): only an event whose cdp_sig
   * verifies and whose cdp_ws is the URL's workspace is tied to a send (ledger row, resend);
   * unset: none is.
   */
  tagSecret?: string;
}

/** An activation_ledger row of a provider event (the columns of activation/pipeline.ts LedgerRow). */
export interface EmailLedgerRow {
  workspace_id: string;
  at: number;
  send_key: string;
  campaign_id: string;
  campaign_version: number;
  segment_id: string;
  segment_version: number;
  profile_id: string;
  epoch: number;
  channel: 'email';
  outcome: 'bounced' | 'soft_bounced' | 'complained' | 'delivered';
  reason: string;
  attempt: number;
  status_code: number;
  latency_ms: number;
  provider_ms: number;
  not_before: null;
  provider_id: string;
}

export type EmailOutcome = 'bounced' | 'soft_bounced' | 'complained' | 'delivered' | 'ignored';

/** One provider event, reduced to what the pipeline needs. */
export interface EmailProviderEvent {
  provider: 'sendgrid' | 'postmark' | 'ses';
  /** The provider's id of this event (its redeliveries carry the same one). */
  eventId: string;
  /** Of the send, from the tags it carried (cdp_campaign, cdp_profile). */
  campaignId?: string;
  profileId?: string;
  /** The provider's id of the message (its answer to the send: the `sent` row's provider_id). */
  providerMessageId?: string;
  outcome: EmailOutcome;
  /** Whether the address goes on the suppression list. */
  suppress: boolean;
  email: string;
  sendKey?: string;
  /** The workspace and signature the send's tags carried (cdp_ws, cdp_sig). */
  tagWorkspace?: string;
  tagSignature?: string;
  reason?: string;
  /** The provider's own kind (`bounce/blocked`, `HardBounce`, …). */
  detail: string;
  at?: Date;
}

/** The `Email Bounced` (etc.) event name of an outcome. */
const EVENT_NAMES: Record<Exclude<EmailOutcome, 'ignored'>, string> = {
  bounced: 'Email Bounced',
  soft_bounced: 'Email Bounced',
  complained: 'Email Complained',
  delivered: 'Email Delivered',
};

const str = (v: unknown, max = 1000): string | undefined =>
  typeof v === 'string' && v.length > 0 ? v.slice(0, max) : typeof v === 'number' ? String(v) : undefined;
const obj = (v: unknown): Record<string, unknown> | undefined =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
const EMAIL = /^[^\s@]+@[^\s@]+$/;

/** SendGrid's `dropped` reasons that mean the address itself is bad (SendGrid's own lists). */
const SG_DROPPED_HARD = /bounced address|invalid|spam report/i;

/** Reduces one SendGrid event; undefined for a malformed one, outcome `ignored` for others. */
export function sendgridEvent(raw: unknown): EmailProviderEvent | undefined {
  const e = obj(raw);
  const email = str(e?.email, 320)?.trim().toLowerCase();
  const event = str(e?.event, 64);
  if (!e || !email || !EMAIL.test(email) || !event) return undefined;
  const ts = typeof e.timestamp === 'number' ? new Date(e.timestamp * 1000) : undefined;
  const sendKey = str(e[EMAIL_TAGS.sendKey], 200);
  const campaignId = str(e[EMAIL_TAGS.campaign], 300);
  const profileId = str(e[EMAIL_TAGS.profile], 300);
  const tagWorkspace = str(e[EMAIL_TAGS.workspace], 300);
  const tagSignature = str(e[EMAIL_TAGS.signature], 64);
  // sg_message_id is `<X-Message-Id>.filter…`: the part before the first dot is the send's id
  const providerMessageId = str(e.sg_message_id, 300)?.split('.')[0];
  const reason = str(e.reason) ?? str(e.response);
  // sg_event_id is unique per event; without one, a digest of the event stands in for it
  const eventId =
    str(e.sg_event_id, 200) ??
    createHash('sha256')
      .update(JSON.stringify([email, event, e.type, e.timestamp, e.sg_message_id]))
      .digest('hex');
  const base = {
    provider: 'sendgrid' as const,
    eventId,
    email,
    sendKey,
    campaignId,
    profileId,
    tagWorkspace,
    tagSignature,
    providerMessageId,
    reason,
    at: ts,
  };
  switch (event) {
    case 'bounce': {
      const type = str(e.type, 32) ?? 'bounce';
      // `blocked` is SendGrid's soft bounce: the receiving server refused for now
      return type === 'blocked'
        ? { ...base, outcome: 'soft_bounced', suppress: false, detail: 'bounce/blocked' }
        : { ...base, outcome: 'bounced', suppress: true, detail: `bounce/${type}` };
    }
    case 'dropped':
      return SG_DROPPED_HARD.test(reason ?? '')
        ? { ...base, outcome: 'bounced', suppress: true, detail: 'dropped' }
        : { ...base, outcome: 'ignored', suppress: false, detail: 'dropped' };
    case 'spamreport':
      return { ...base, outcome: 'complained', suppress: true, detail: 'spamreport' };
    case 'delivered':
      return { ...base, outcome: 'delivered', suppress: false, detail: 'delivered' };
    default:
      return { ...base, outcome: 'ignored', suppress: false, detail: event };
  }
}

/** Postmark bounce types that mean the address is bad for good. */
const PM_HARD = new Set(['HardBounce', 'BadEmailAddress', 'ManuallyDeactivated']);

/** Reduces one Postmark webhook record; undefined for a malformed one. */
export function postmarkEvent(raw: unknown): EmailProviderEvent | undefined {
  const e = obj(raw);
  const type = str(e?.RecordType, 64);
  if (!e || !type) return undefined;
  const email = (str(e.Email, 320) ?? str(e.Recipient, 320))?.trim().toLowerCase();
  if (!email || !EMAIL.test(email)) return undefined;
  const meta = obj(e.Metadata);
  const sendKey = str(meta?.[EMAIL_TAGS.sendKey], 200);
  const campaignId = str(meta?.[EMAIL_TAGS.campaign], 300);
  const profileId = str(meta?.[EMAIL_TAGS.profile], 300);
  const tagWorkspace = str(meta?.[EMAIL_TAGS.workspace], 300);
  const tagSignature = str(meta?.[EMAIL_TAGS.signature], 64);
  const providerMessageId = str(e.MessageID, 200);
  const when = str(e.BouncedAt) ?? str(e.DeliveredAt) ?? str(e.ReceivedAt);
  const at = when && !Number.isNaN(Date.parse(when)) ? new Date(when) : undefined;
  const id = str(e.ID, 200) ?? str(e.MessageID, 200);
  const eventId = `${type}:${id ?? createHash('sha256').update(JSON.stringify(e)).digest('hex')}`;
  const reason = str(e.Description) ?? str(e.Details);
  const base = {
    provider: 'postmark' as const,
    eventId,
    email,
    sendKey,
    campaignId,
    profileId,
    tagWorkspace,
    tagSignature,
    providerMessageId,
    reason,
    at,
  };
  if (type === 'SpamComplaint')
    return { ...base, outcome: 'complained', suppress: true, detail: 'SpamComplaint' };
  if (type === 'Delivery') return { ...base, outcome: 'delivered', suppress: false, detail: 'Delivery' };
  if (type === 'Bounce') {
    const t = str(e.Type, 64) ?? 'Unknown';
    if (t === 'SpamComplaint') return { ...base, outcome: 'complained', suppress: true, detail: t };
    return PM_HARD.has(t)
      ? { ...base, outcome: 'bounced', suppress: true, detail: t }
      : { ...base, outcome: 'soft_bounced', suppress: false, detail: t };
  }
  return { ...base, outcome: 'ignored', suppress: false, detail: type };
}

/** A verification key from base64 SPKI DER (as SendGrid shows it) or PEM. */
export function parsePublicKey(text: string): KeyObject {
  const t = text.trim();
  if (t.startsWith('-----BEGIN')) return createPublicKey(t);
  return createPublicKey({ key: Buffer.from(t, 'base64'), format: 'der', type: 'spki' });
}

/** Whether SendGrid signed `timestamp + body`; false for anything malformed. */
export function verifySendgrid(
  key: KeyObject,
  signature: string | undefined,
  timestamp: string | undefined,
  body: Buffer,
): boolean {
  if (!signature || !timestamp) return false;
  try {
    return verify(
      'sha256',
      Buffer.concat([Buffer.from(timestamp, 'utf8'), body]),
      key,
      Buffer.from(signature, 'base64'),
    );
  } catch {
    return false;
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y) && a.length === b.length;
}

function basicAuthOk(header: string | undefined, want: { user: string; password: string }): boolean {
  if (!header?.toLowerCase().startsWith('basic ')) return false;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  // both compared, always: how far a guess got is not told by the time taken
  const u = safeEqual(decoded.slice(0, colon), want.user);
  const p = safeEqual(decoded.slice(colon + 1), want.password);
  return u && p;
}

export function emailWebhookRoutes(deps: EmailWebhookDeps): Hono {
  const app = new Hono();
  let sgKey: KeyObject | undefined;
  if (deps.sendgridPublicKey) sgKey = parsePublicKey(deps.sendgridPublicKey);
  const ses = deps.ses;
  // `arn` or `arn=workspace`: a bound topic's messages are taken only at that workspace's URL
  const sesTopics = new Map<string, string | undefined>();
  for (const entry of ses?.topicArns ?? []) {
    const [arn, bound] = entry.split('=', 2).map((x) => x.trim());
    if (arn) sesTopics.set(arn, bound || undefined);
  }
  const sesTimeoutMs = ses?.fetchTimeoutMs ?? 5000;
  const certs = snsCertCache({ timeoutMs: sesTimeoutMs, now: deps.now });

  const body = (c: Context) => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    return readRawBody(incoming && !incoming.readableEnded ? incoming : c.req.raw, MAX_WEBHOOK_BODY_BYTES);
  };
  const parse = (raw: Buffer): unknown => {
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new IngestError(400, `malformed JSON: ${(err as Error).message}`);
    }
  };
  const knownWorkspace = async (ws: string) => {
    if (!(await deps.workspaceExists(ws))) throw new IngestError(404, 'not found');
  };

  /** The profile's own identifier, or undefined when nobody has the address. */
  const identifierOf = async (
    ws: string,
    email: string,
  ): Promise<['userId' | 'anonymousId', string] | undefined> => {
    const k = workspaceKeys(deps.redisPrefix, ws);
    const found = await deps.redis.get(k.identity('email', email));
    if (!found) return undefined;
    const pid = await survivorOf(deps.redis, k, found);
    const ids = await deps.redis.smembers(k.profileIdentities(pid));
    const user = ids.filter((i) => i.startsWith('user:')).sort()[0];
    if (user) return ['userId', user.slice(5)];
    const anon = ids.filter((i) => i.startsWith('anon:')).sort()[0];
    if (anon) return ['anonymousId', anon.slice(5)];
    return undefined;
  };

  /** Stores one event: suppression first, then the track. Throws when Redis or Kafka fail. */
  const apply = async (ws: string, ev: EmailProviderEvent, verified: boolean): Promise<boolean> => {
    const k = workspaceKeys(deps.redisPrefix, ws);
    const actor = `webhook:${ev.provider}`;
    let added = false;
    if (ev.suppress) {
      const member = suppressionMember('email', ev.email);
      // An address already on the list (by an earlier event, a redelivery, or by hand) is
      // left as it is: no second audit row. The audit row is queued before the address is
      // added, so a crash between the two leaves the row (and the redelivery adds the
      // address, queuing the same member again): never a suppression without its row.
      if (!(await deps.redis.sismember(k.suppressions, member))) {
        const why = {
          outcome: ev.outcome,
          detail: ev.detail,
          provider: ev.provider,
          eventId: ev.eventId,
          ...(ev.sendKey ? { sendKey: ev.sendKey } : {}),
          ...(ev.reason ? { reason: ev.reason } : {}),
        };
        const at = ev.at?.getTime() ?? deps.now().getTime();
        const row: QueuedAudit = {
          workspaceId: ws,
          at,
          actor,
          action: 'create',
          entityType: 'suppression',
          entityId: member,
          before: null,
          after: { members: [member], ...why },
        };
        await deps.redis.zadd(auditDueKey(deps.redisPrefix), deps.now().getTime(), JSON.stringify(row));
        added = (await deps.redis.sadd(k.suppressions, member)) === 1;
        // why it is there: the first reason stays
        await deps.redis.hsetnx(
          `${k.suppressions}:why`,
          member,
          JSON.stringify({ at: new Date(at).toISOString(), actor, ...why }),
        );
        if (added)
          deps.log.info({ workspaceId: ws, actor, entityType: 'suppression', ...why }, 'suppression_added');
      }
    }
    if (ev.outcome === 'ignored') return added;
    const outcome = ev.outcome;
    await track(ws, ev, outcome);
    // the ledger row and the soft-bounce hook: once per event, however often it comes
    // only for tags we signed for this workspace (a forged event names any send it likes)
    const ledger = !!(verified && ev.sendKey && deps.ledgerTopic);
    const hook = verified && outcome === 'soft_bounced' ? deps.onSoftBounce : undefined;
    if (!ledger && !hook) return added;
    await once(ws, `event\u0000${ev.provider}\u0000${ev.eventId}`, async () => {
      if (ledger && deps.ledgerTopic) {
        const row = ledgerRow(ws, ev, outcome);
        await withTimeout(
          deps.producer.send(deps.ledgerTopic, [
            { key: `${ws}:${row.campaign_id}`, value: JSON.stringify(row) },
          ]),
          deps.produceTimeoutMs,
          'kafka produce',
        );
      }
      if (hook)
        await hook({
          workspaceId: ws,
          provider: ev.provider,
          address: ev.email,
          ...(ev.sendKey ? { sendKey: ev.sendKey } : {}),
          ...(ev.campaignId ? { campaignId: ev.campaignId } : {}),
          ...(ev.profileId ? { profileId: ev.profileId } : {}),
          eventId: `${ev.provider}:${ev.eventId}`,
          at: eventTime(ev),
          reason: ev.reason ? `${ev.detail}: ${ev.reason}` : ev.detail,
        });
    });
    return added;
  };

  /** The provider's time of an event when it gave a plausible one, else now. */
  const eventTime = (ev: EmailProviderEvent): Date => {
    const now = deps.now().getTime();
    const t = ev.at?.getTime();
    return t !== undefined && t > now - 90 * 24 * 3600 * 1000 && t < now + 24 * 3600 * 1000
      ? new Date(t)
      : new Date(now);
  };

  const ledgerRow = (
    ws: string,
    ev: EmailProviderEvent,
    outcome: EmailLedgerRow['outcome'],
  ): EmailLedgerRow => ({
    workspace_id: ws,
    at: eventTime(ev).getTime(),
    send_key: ev.sendKey ?? '',
    campaign_id: ev.campaignId ?? '',
    campaign_version: 0,
    segment_id: '',
    segment_version: 0,
    profile_id: ev.profileId ?? '',
    epoch: 0,
    channel: 'email',
    outcome,
    reason: `${ev.provider}:${ev.detail}`.slice(0, 200),
    // not an attempt of ours: 0 tells these rows from the sends (attempt ≥ 1)
    attempt: 0,
    status_code: 0,
    latency_ms: 0,
    provider_ms: 0,
    not_before: null,
    provider_id: ev.providerMessageId ?? '',
  });

  /**
   * Runs `fn` once per `id` across redeliveries: a marker is `pending` while it runs (another
   * delivery of the same event meanwhile is a 503, so the provider tries again later) and
   * `done` after; when `fn` fails the marker goes and the redelivery runs it again.
   * Answers whether it ran now.
   */
  const once = async (ws: string, id: string, fn: () => Promise<void>): Promise<boolean> => {
    const key = `${workspaceKeys(deps.redisPrefix, ws).tag}:ewh:${createHash('sha256').update(id).digest('base64url').slice(0, 32)}`;
    if ((await deps.redis.set(key, 'pending', 'PX', EVENT_PENDING_TTL_MS, 'NX')) !== 'OK') {
      if ((await deps.redis.get(key)) === 'done') return false;
      throw new Error('the same event is being handled by another delivery');
    }
    try {
      await fn();
    } catch (err) {
      await deps.redis.del(key).catch(() => {});
      throw err;
    }
    await deps.redis.set(key, 'done', 'PX', EVENT_DONE_TTL_MS);
    return true;
  };

  /** The `Email Bounced` (etc.) track of the person who has the address, if anyone does. */
  const track = async (ws: string, ev: EmailProviderEvent, outcome: Exclude<EmailOutcome, 'ignored'>) => {
    const id = await identifierOf(ws, ev.email);
    if (!id) return;
    const messageId = `ew-${createHash('sha256')
      .update([ws, ev.provider, ev.eventId].join('\u0000'))
      .digest('base64url')
      .slice(0, 32)}`;
    const props = {
      provider: ev.provider,
      providerEventId: ev.eventId,
      ...(ev.sendKey ? { sendKey: ev.sendKey } : {}),
      ...(ev.campaignId ? { campaignId: ev.campaignId } : {}),
      ...(ev.providerMessageId ? { providerMessageId: ev.providerMessageId } : {}),
      ...(ev.outcome === 'bounced' || ev.outcome === 'soft_bounced'
        ? { bounceType: ev.outcome === 'bounced' ? 'hard' : 'soft' }
        : {}),
      providerType: ev.detail,
      ...(ev.reason ? { reason: ev.reason } : {}),
      suppressed: ev.suppress,
    };
    const input = {
      type: 'track',
      event: EVENT_NAMES[outcome],
      messageId,
      [id[0]]: id[1],
      properties: props,
      context: {
        channel: 'email',
        email: { provider: ev.provider, ...(ev.sendKey ? { sendKey: ev.sendKey } : {}) },
      },
    };
    const opts = {
      workspaceId: ws,
      receivedAt: deps.now(),
      keyKind: 'client' as const,
      timeBounds: deps.timeBounds,
    };
    let e: ReturnType<typeof normalizeEvent>;
    try {
      e = normalizeEvent({ ...input, ...(ev.at ? { timestamp: ev.at.toISOString() } : {}) }, opts);
    } catch {
      // a provider time outside the accepted bounds: the event is recorded at receipt
      e = normalizeEvent(input, opts);
    }
    await withTimeout(
      deps.producer.send(deps.eventsTopic, [{ key: eventKey(ws, id[1]), value: JSON.stringify(e) }]),
      deps.produceTimeoutMs,
      'kafka produce',
    );
  };

  /**
   * The event as far as its tags can be trusted: as it is when cdp_sig verifies and cdp_ws is
   * the URL's workspace; else without any tag (logged), so it suppresses and tracks (the
   * provider's own signature or credentials vouch for the address) but is no send of ours.
   */
  const checkTags = (ws: string, ev: EmailProviderEvent): { ev: EmailProviderEvent; verified: boolean } => {
    if (ev.outcome === 'ignored') return { ev, verified: false };
    if (!(ev.sendKey || ev.campaignId || ev.profileId || ev.tagWorkspace || ev.tagSignature))
      return { ev, verified: false };
    const sigOk = verifyEmailTags(
      deps.tagSecret,
      {
        ...(ev.tagWorkspace ? { workspaceId: ev.tagWorkspace } : {}),
        ...(ev.sendKey ? { sendKey: ev.sendKey } : {}),
        ...(ev.campaignId ? { campaignId: ev.campaignId } : {}),
        ...(ev.profileId ? { profileId: ev.profileId } : {}),
      },
      ev.tagSignature,
    );
    if (sigOk && ev.tagWorkspace === ws) return { ev, verified: true };
    deps.log.warn(
      {
        workspaceId: ws,
        provider: ev.provider,
        eventId: ev.eventId,
        why: !ev.tagSignature ? 'unsigned' : !sigOk ? 'bad signature' : 'other workspace',
        ...(ev.tagWorkspace ? { tagWorkspace: ev.tagWorkspace.slice(0, 100) } : {}),
      },
      'email_tags_unverified',
    );
    const { sendKey: _k, campaignId: _c, profileId: _p, tagWorkspace: _w, tagSignature: _s, ...rest } = ev;
    return { ev: rest, verified: false };
  };

  const handle = async (c: Context, ws: string, events: Array<EmailProviderEvent | undefined>) => {
    let processed = 0;
    let suppressed = 0;
    let skipped = 0;
    for (const raw of events) {
      if (!raw) {
        skipped++;
        continue;
      }
      const { ev, verified } = checkTags(ws, raw);
      // The limit is for deliveries and soft bounces (a flood of them per address); ignored
      // events (opens, clicks, a link scanner's burst) cost nothing and are not counted, and a
      // hard bounce or complaint is always taken: losing it would keep mailing a bad address.
      const limit =
        ev.outcome !== 'ignored' && !ev.suppress
          ? deps.addressLimiter?.take(`${ws}\u0000${ev.email}`, 1)
          : undefined;
      if (limit && !limit.ok) {
        deps.log.warn(
          { workspaceId: ws, provider: ev.provider, eventId: ev.eventId },
          'email_webhook_rate_limited',
        );
        skipped++;
        continue;
      }
      try {
        if (await apply(ws, ev, verified)) suppressed++;
        processed++;
      } catch (err) {
        deps.log.warn(
          { err: (err as Error).message, workspaceId: ws, provider: ev.provider },
          'email_webhook_failed',
        );
        throw new IngestError(503, 'could not store the events, retry later', 5);
      }
    }
    return c.json({ success: true, processed, suppressed, skipped });
  };

  app.post('/v1/webhooks/email/sendgrid/:workspace', async (c) => {
    const raw = await body(c);
    const ts = c.req.header('x-twilio-email-event-webhook-timestamp');
    if (!sgKey || !verifySendgrid(sgKey, c.req.header('x-twilio-email-event-webhook-signature'), ts, raw))
      throw new IngestError(403, 'invalid signature');
    const tsMs = Number(ts) * 1000;
    if (!Number.isFinite(tsMs) || Math.abs(deps.now().getTime() - tsMs) > SIGNATURE_MAX_AGE_MS)
      throw new IngestError(403, 'stale signature timestamp');
    const ws = c.req.param('workspace');
    await knownWorkspace(ws);
    const parsed = parse(raw);
    if (!Array.isArray(parsed)) throw new IngestError(400, 'body must be a JSON array of events');
    if (parsed.length > MAX_WEBHOOK_EVENTS)
      throw new IngestError(413, `over ${MAX_WEBHOOK_EVENTS} events in one request`);
    return handle(c, ws, parsed.map(sendgridEvent));
  });

  app.post('/v1/webhooks/email/postmark/:workspace', async (c) => {
    if (!deps.postmark || !basicAuthOk(c.req.header('authorization'), deps.postmark)) {
      c.header('WWW-Authenticate', 'Basic realm="webhooks"');
      throw new IngestError(401, 'invalid credentials');
    }
    const ws = c.req.param('workspace');
    await knownWorkspace(ws);
    const parsed = parse(await body(c));
    // Postmark posts one record per request; an array of them is taken too
    const items = Array.isArray(parsed) ? parsed : [parsed];
    if (items.length > MAX_WEBHOOK_EVENTS)
      throw new IngestError(413, `over ${MAX_WEBHOOK_EVENTS} events in one request`);
    if (items.some((i) => !obj(i))) throw new IngestError(400, 'body must be a JSON object');
    return handle(c, ws, items.map(postmarkEvent));
  });

  /** The SNS message once everything about it checks out; throws the 4xx/503 otherwise. */
  const verifiedSns = async (raw: Buffer, client: string): Promise<SnsMessage> => {
    if (!ses || sesTopics.size === 0) throw new IngestError(403, 'SES webhook not configured');
    const m = asSnsMessage(parse(raw));
    if (!m) throw new IngestError(403, 'not a signed SNS message');
    // anyone can get validly signed messages from a topic of their own: only ours count
    if (!sesTopics.has(m.TopicArn)) throw new IngestError(403, 'topic not allowed');
    if (!snsUrlAllowed(m.SigningCertURL, ses.endpoint, 'cert'))
      throw new IngestError(403, 'signing certificate URL not allowed');
    const ts = Date.parse(m.Timestamp);
    const now = deps.now().getTime();
    if (!Number.isFinite(ts) || now - ts > SNS_MAX_AGE_MS || ts - now > SNS_MAX_AHEAD_MS)
      throw new IngestError(403, 'stale message timestamp');
    let key: KeyObject;
    try {
      key = await certs.key(m.SigningCertURL, client);
    } catch (err) {
      deps.log.warn({ err: (err as Error).message, topicArn: m.TopicArn }, 'sns_certificate_failed');
      if (err instanceof CertError && err.retriable)
        throw new IngestError(503, 'signing certificate not available, retry later', 5);
      throw new IngestError(403, 'invalid signing certificate');
    }
    if (!verifySnsSignature(m, key)) throw new IngestError(403, 'invalid signature');
    // a certificate that verified a message of ours is kept apart: forged messages naming
    // other URLs can neither evict it nor spend what fetching it needs
    certs.verified(m.SigningCertURL);
    return m;
  };

  /** Confirms a subscription: GET of its SubscribeURL (SNS's host rule), once per message. */
  const confirmSubscription = async (ws: string, m: SnsMessage) => {
    const url = m.SubscribeURL ?? '';
    if (!snsUrlAllowed(url, ses?.endpoint, 'subscribe'))
      throw new IngestError(403, 'SubscribeURL not allowed');
    const ran = await once(ws, `sns-confirm\u0000${m.MessageId}`, async () => {
      let status = 0;
      try {
        const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(sesTimeoutMs) });
        status = res.status;
        await res.body?.cancel().catch(() => {});
      } catch (err) {
        deps.log.warn({ err: (err as Error).message, topicArn: m.TopicArn }, 'sns_confirm_failed');
      }
      if (status !== 200) {
        if (status) deps.log.warn({ status, topicArn: m.TopicArn }, 'sns_confirm_failed');
        throw new Error(`SubscribeURL answered ${status || 'nothing'}`);
      }
      const after = { topicArn: m.TopicArn, messageId: m.MessageId, confirmedAt: new URL(url).host };
      const row: QueuedAudit = {
        workspaceId: ws,
        at: deps.now().getTime(),
        actor: 'webhook:ses',
        action: 'create',
        entityType: 'sns_subscription',
        entityId: m.TopicArn,
        before: null,
        after,
      };
      await deps.redis.zadd(auditDueKey(deps.redisPrefix), deps.now().getTime(), JSON.stringify(row));
      deps.log.info({ workspaceId: ws, ...after }, 'sns_subscription_confirmed');
    });
    return ran;
  };

  app.post('/v1/webhooks/email/ses/:workspace', async (c) => {
    const m = await verifiedSns(await body(c), clientKey(remoteAddress(c)));
    const ws = c.req.param('workspace');
    // a topic bound to a workspace speaks for that workspace only
    const bound = sesTopics.get(m.TopicArn);
    if (bound !== undefined && bound !== ws)
      throw new IngestError(403, 'topic not allowed for this workspace');
    await knownWorkspace(ws);
    if (m.Type === 'SubscriptionConfirmation') {
      let ran: boolean;
      try {
        ran = await confirmSubscription(ws, m);
      } catch (err) {
        if (err instanceof IngestError) throw err;
        throw new IngestError(503, 'could not confirm the subscription, retry later', 5);
      }
      return c.json({ success: true, confirmed: true, ...(ran ? {} : { already: true }) });
    }
    if (m.Type === 'UnsubscribeConfirmation') {
      // not subscribed again on our own: whoever unsubscribed meant it
      deps.log.info({ workspaceId: ws, topicArn: m.TopicArn, messageId: m.MessageId }, 'sns_unsubscribed');
      return c.json({ success: true });
    }
    let inner: unknown;
    try {
      inner = JSON.parse(m.Message);
    } catch {
      // signed by SNS on our topic, but not an SES notification (a test publish): nothing to do
      deps.log.warn({ workspaceId: ws, topicArn: m.TopicArn, messageId: m.MessageId }, 'sns_message_not_ses');
      return c.json({ success: true, processed: 0, suppressed: 0, skipped: 1 });
    }
    const events = sesEvents(inner, m.MessageId, new Date(Date.parse(m.Timestamp)), fromSesTagValue);
    if (events.length > MAX_WEBHOOK_EVENTS)
      throw new IngestError(413, `over ${MAX_WEBHOOK_EVENTS} events in one request`);
    return handle(c, ws, events);
  });

  return app;
}
