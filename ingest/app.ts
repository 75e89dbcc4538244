import type { IncomingMessage } from 'node:http';
import { httpMetrics } from '../runtime/metrics.ts';
import { TRACE_HEADER, validTraceparent } from '../schemas/trace.ts';
// The ingest edge: Segment's HTTP Tracking API. A 200 is sent only after Kafka
// acknowledged every event of the request (acks=all); if Kafka cannot take them within
// the produce timeout the answer is 503 with Retry-After, never a 200.

import { getConnInfo } from '@hono/node-server/conninfo';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import { withTimeout } from '../runtime/http.ts';
import type { OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import type { ResolvedWriteKey, WriteKeyKind } from '../runtime/write-keys.ts';
import type { EventType, NormalizedEvent } from '../schemas/event.ts';
import { eventKey } from '../schemas/topics.ts';
import { browserSdkRoutes } from './browser-sdk.ts';
import { type ConsentConfirmDeps, consentConfirmRoutes } from './consent-confirm.ts';
import { type EmailTrackingDeps, emailTrackingRoutes } from './email-tracking.ts';
import { type EmailWebhookDeps, emailWebhookRoutes } from './email-webhooks.ts';
import { formEmbedRoutes } from './form-embed.ts';
import { type FormDeps, formRoutes } from './forms.ts';
import { IngestError } from './ingest-error.ts';
import { MAX_EVENT_BYTES, normalizeEvent, type TimeBounds, type TraitLimits } from './normalize-event.ts';
import { ingestOpenApi } from './openapi.ts';
import { type PageDeps, pageRoutes } from './pages.ts';
import type { RateLimiter } from './rate-limit.ts';
import { readJsonBody } from './read-body.ts';
import { type SmsWebhookDeps, smsWebhookRoutes } from './sms-webhooks.ts';
import { applyPlan, type PlanLookup, type PlanOutcome } from './tracking-plan.ts';

/**
 * Resolves a write key to its workspace and kind (a bare workspace id: a server key);
 * undefined for unknown or revoked keys.
 */
export type WriteKeyResolver = (writeKey: string) => ResolvedWriteKey | string | undefined;

export interface IngestDeps {
  producer: Producer;
  eventsTopic: string;
  resolveWriteKey: WriteKeyResolver;
  log: Logger;
  now?: () => Date;
  produceTimeoutMs?: number;
  /** Events per second per write key; none means unlimited. */
  rateLimiter?: RateLimiter;
  /**
   * The hot-key lane: events per second per event key (workspace and person or anonymous id);
   * what is over it goes to `overflowTopic` (schemas/topics.ts eventsOverflow).
   */
  hotKeys?: { limiter: RateLimiter; overflowTopic: string };
  /** Event times accepted around the server's clock (CDP_INGEST_MAX_PAST_DAYS / _FUTURE_HOURS). */
  timeBounds?: TimeBounds;
  /** Per-profile trait bounds: one event over them alone is a 400 (the processor keeps them). */
  traitLimits?: TraitLimits;
  /** Forms (ingest/forms.ts): served and taken when given. */
  forms?: FormDeps;
  /** Landing pages (ingest/pages.ts): served at /p/{workspace}/{slug} when given; their views share `hotKeys`. */
  pages?: PageDeps;
  /**
   * CDP_INGEST_PUBLIC_URL when it is set: the browser SDK's settings point at it, whatever
   * Host or X-Forwarded-* a request carries. Unset: at the request's Host (local development).
   */
  publicUrl?: string;
  /** Tracking plans (ingest/tracking-plan.ts) and where quarantined events go. */
  trackingPlans?: { plans: PlanLookup; quarantineTopic: string };
  /** Double opt-in confirmation links (ingest/consent-confirm.ts), when given. */
  consentConfirm?: ConsentConfirmDeps;
  /** Email open pixels and click redirects (ingest/email-tracking.ts), when given. */
  emailTracking?: EmailTrackingDeps;
  /** Email provider bounce/complaint/delivery webhooks (ingest/email-webhooks.ts), when given. */
  emailWebhooks?: EmailWebhookDeps;
  /** Twilio SMS status callbacks and inbound keywords (ingest/sms-webhooks.ts), when given. */
  smsWebhooks?: SmsWebhookDeps;
}

// A Map, not an object: `/v1/__proto__` or `/v1/constructor` must not find anything.
const SHORT = new Map<string, EventType | 'batch'>([
  ['t', 'track'],
  ['i', 'identify'],
  ['p', 'page'],
  ['s', 'screen'],
  ['g', 'group'],
  ['a', 'alias'],
  ['b', 'batch'],
  ['track', 'track'],
  ['identify', 'identify'],
  ['page', 'page'],
  ['screen', 'screen'],
  ['group', 'group'],
  ['alias', 'alias'],
  ['batch', 'batch'],
  ['import', 'batch'],
]);

/**
 * What one request may put on Kafka after normalisation: a batch-level context is copied
 * into every event, so 500 KB of input could otherwise become hundreds of MB.
 */
export const MAX_PRODUCED_BYTES = 16 * 1024 * 1024;
/** One produce call stays under Kafka's default 1 MB record-batch limit. */
const PRODUCE_CHUNK_BYTES = 900 * 1024;

export function createIngestApp(deps: IngestDeps): Hono {
  const now = deps.now ?? (() => new Date());
  const produceTimeoutMs = deps.produceTimeoutMs ?? 10_000;
  const app = new Hono();
  app.use('*', httpMetrics('ingest'));

  const trackingCors = cors({
    origin: (origin) => origin || '*',
    allowMethods: ['GET', 'POST', 'OPTIONS'],
    allowHeaders: ['Authorization', 'Content-Type', 'Content-Encoding'],
    credentials: true,
    maxAge: 86_400,
  });
  // Forms are public: the embed snippet fetches a definition and posts JSON from any page,
  // never with credentials (no cookie of this host is read or set through them).
  const formsCors = cors({
    origin: '*',
    allowMethods: ['GET', 'POST', 'OPTIONS'],
    allowHeaders: ['Content-Type'],
    maxAge: 7200,
  });
  app.use('/v1/*', (c, next) => {
    const path = c.req.path;
    if (path.startsWith('/v1/forms/')) return formsCors(c, next);
    if (c.req.method === 'POST' && SHORT.has(path.slice(4))) return eventCors(c, next);
    return trackingCors(c, next);
  });

  app.onError((err, c) => {
    if (err instanceof IngestError) {
      if (err.retryAfterSeconds) c.header('Retry-After', String(err.retryAfterSeconds));
      return c.json({ success: false, error: err.message }, err.status);
    }
    deps.log.error({ err: err.message, path: c.req.path }, 'ingest_unhandled_error');
    return c.json({ success: false, error: 'internal error' }, 500);
  });
  app.notFound((c) => c.json({ success: false, error: `no route ${c.req.method} ${c.req.path}` }, 404));

  app.route('/', browserSdkRoutes({ resolveWriteKey: deps.resolveWriteKey, publicUrl: deps.publicUrl }));
  const openapi = ingestOpenApi();
  app.get('/openapi.json', (c) => c.json(openapi));
  if (deps.forms) {
    app.route('/', formEmbedRoutes());
    app.route('/', formRoutes(deps.forms));
  }
  if (deps.pages) app.route('/', pageRoutes({ hotKeys: deps.hotKeys, ...deps.pages }));
  if (deps.consentConfirm) app.route('/', consentConfirmRoutes(deps.consentConfirm));
  if (deps.emailTracking) app.route('/', emailTrackingRoutes(deps.emailTracking));
  if (deps.emailWebhooks) app.route('/', emailWebhookRoutes(deps.emailWebhooks));
  if (deps.smsWebhooks) app.route('/', smsWebhookRoutes(deps.smsWebhooks));

  app.post('/v1/:type', async (c) => {
    const kind = SHORT.get(c.req.param('type'));
    if (!kind) throw new IngestError(400, `unknown call "${c.req.param('type')}"`);
    // under @hono/node-server the Node request is at hand: read it without a web Request
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    const body = await readJsonBody(incoming && !incoming.readableEnded ? incoming : c.req.raw);
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw new IngestError(400, 'body must be a JSON object');
    const b = body as Record<string, unknown>;

    const { writeKey, workspaceId, keyKind } = authenticate(
      requestHeader(c, 'authorization'),
      b.writeKey,
      deps.resolveWriteKey,
    );
    const receivedAt = now();
    let ip: string | undefined;
    try {
      ip = getConnInfo(c).remote.address;
    } catch {
      ip = undefined;
    }

    // each event is serialised once: for the size limits and as the Kafka value
    let events: Serialized[];
    if (kind === 'batch') {
      const items = b.batch;
      if (!Array.isArray(items)) throw new IngestError(400, 'batch: must be an array of events');
      if (items.length === 0) throw new IngestError(400, 'batch: is empty');
      const batchContext = asObject(b.context);
      const batchIntegrations = asObject(b.integrations);
      // A batch is all or nothing, as with Segment: one invalid event rejects the request
      // with a 400 naming it, so an SDK never believes a dropped event was delivered.
      const budget = { bytes: 0 };
      events = items.map((item, i) =>
        checked(
          normalizeEvent(item, {
            workspaceId,
            receivedAt,
            ip,
            batchContext,
            batchIntegrations,
            label: `batch[${i}]`,
            timeBounds: deps.timeBounds,
            keyKind,
            traitLimits: deps.traitLimits,
          }),
          `batch[${i}]`,
          budget,
        ),
      );
    } else {
      events = [
        checked(
          normalizeEvent(b, {
            workspaceId,
            routeType: kind,
            receivedAt,
            ip,
            timeBounds: deps.timeBounds,
            keyKind,
            traitLimits: deps.traitLimits,
          }),
          'event',
          { bytes: 0 },
        ),
      ];
    }

    const allowed = deps.rateLimiter?.take(writeKey, events.length);
    if (allowed && !allowed.ok)
      throw new IngestError(429, `rate limit exceeded for this write key`, allowed.retryAfterSeconds);

    try {
      // A request that normalises to more than Kafka takes in one batch is sent in chunks;
      // the 200 still waits for every one of them. Events a tracking plan quarantines go to
      // the quarantine topic instead, and are answered 200 alike (an SDK must not retry them).
      const chunks: Array<{ topic: string; messages: OutgoingMessage[]; bytes: number }> = [];
      const open = new Map<string, (typeof chunks)[number]>();
      // the caller's trace goes with its events (schemas/trace.ts); nothing when it sent none
      const trace = validTraceparent(requestHeader(c, TRACE_HEADER));
      for (const { event: e, value, size, plan } of events) {
        const key = eventKey(e.workspaceId, e.userId ?? e.anonymousId ?? e.messageId);
        // one person's (or bot's) flood goes to the overflow lane, not ahead of everyone else
        const topic = plan?.quarantine
          ? deps.trackingPlans!.quarantineTopic
          : deps.hotKeys && !deps.hotKeys.limiter.take(key, 1).ok
            ? deps.hotKeys.overflowTopic
            : deps.eventsTopic;
        let chunk = open.get(topic);
        if (!chunk || (chunk.bytes + size > PRODUCE_CHUNK_BYTES && chunk.messages.length > 0)) {
          chunk = { topic, messages: [], bytes: 0 };
          chunks.push(chunk);
          open.set(topic, chunk);
        }
        chunk.bytes += size;
        chunk.messages.push({
          key,
          value,
          ...(plan || trace
            ? { headers: trace ? { ...plan?.headers, [TRACE_HEADER]: trace } : plan!.headers }
            : {}),
        });
      }
      await withTimeout(
        Promise.all(chunks.map((c) => deps.producer.send(c.topic, c.messages))),
        produceTimeoutMs,
        'kafka produce',
      );
    } catch (err) {
      deps.log.warn({ err: (err as Error).message, count: events.length }, 'produce_failed');
      throw new IngestError(503, 'event store unavailable, retry later', 5);
    }
    return c.json({ success: true });
  });

  /** Checks a normalised event against its workspace's tracking plan, then serialises it. */
  const checked = (e: NormalizedEvent, label: string, budget: { bytes: number }): Serialized => {
    const plan = applyPlan(deps.trackingPlans?.plans, e);
    let s: Serialized;
    try {
      s = checkSize(e, label, budget);
    } catch (err) {
      // an event within the limit is not refused for the violations a plan attached to it:
      // it goes on without them (its headers still carry them, for the counts)
      if (!plan?.detach || !(err instanceof IngestError) || err.status !== 400) throw err;
      plan.detach();
      s = checkSize(e, label, budget);
    }
    if (plan) s.plan = plan;
    return s;
  };

  return app;
}

/**
 * The event calls' CORS headers, the same trackingCors gives a POST (the caller's origin, or
 * * without one; credentials; Vary: Origin), set before the handler so its JSON answer is
 * written as it is. hono's cors() reads the origin through a web Headers built from every
 * request header and sets its headers on a web Response that the handler's answer is then
 * copied into (its body read back through a web stream): in the e2e bench that was a fifth
 * of ingest's main thread on single-event requests (issue #26). Under @hono/node-server the
 * Node request's headers are read directly; elsewhere (app.request in tests) through hono.
 */
const eventCors: MiddlewareHandler = async (c, next) => {
  const origin = requestHeader(c, 'origin');
  c.header('Access-Control-Allow-Origin', origin || '*');
  c.header('Access-Control-Allow-Credentials', 'true');
  c.header('Vary', 'Origin', { append: true });
  await next();
};

/** A request header, from the Node request when there is one (no web Headers built). */
function requestHeader(c: Context, name: 'origin' | 'authorization' | 'traceparent'): string | undefined {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (!incoming) return c.req.header(name);
  const v = incoming.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function authenticate(
  header: string | undefined,
  bodyKey: unknown,
  resolve: WriteKeyResolver,
): { writeKey: string; workspaceId: string; keyKind: WriteKeyKind } {
  let key: string | undefined;
  if (header?.toLowerCase().startsWith('basic ')) {
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    key = colon >= 0 ? decoded.slice(0, colon) : decoded;
  } else if (typeof bodyKey === 'string') key = bodyKey;
  if (!key)
    throw new IngestError(401, 'missing write key: use HTTP Basic auth with the write key as user name');
  const resolved = resolve(key);
  if (!resolved) throw new IngestError(401, 'unknown or revoked write key');
  return typeof resolved === 'string'
    ? { writeKey: key, workspaceId: resolved, keyKind: 'server' }
    : { writeKey: key, workspaceId: resolved.workspaceId, keyKind: resolved.kind };
}

interface Serialized {
  event: NormalizedEvent;
  value: string;
  size: number;
  /** What the tracking plan made of it, when it found violations. */
  plan?: PlanOutcome;
}

/** Serialises an event and applies the per-event and per-request size limits. */
function checkSize(e: NormalizedEvent, label: string, budget: { bytes: number }): Serialized {
  const value = JSON.stringify(e);
  // UTF-8 takes at most 3 bytes per UTF-16 unit: count bytes only when it could matter
  const size = value.length * 3 <= MAX_EVENT_BYTES ? value.length : Buffer.byteLength(value);
  if (size > MAX_EVENT_BYTES)
    throw new IngestError(400, `${label}: ${size} bytes, over the ${MAX_EVENT_BYTES}-byte event limit`);
  budget.bytes += size;
  if (budget.bytes > MAX_PRODUCED_BYTES)
    throw new IngestError(
      413,
      `request expands to over ${MAX_PRODUCED_BYTES} bytes of events: send smaller batches`,
    );
  return { event: e, value, size };
}

function asObject(v: unknown): Record<string, unknown> | undefined {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}
