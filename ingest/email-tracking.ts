// Email open pixels and click redirects on the public ingest host, no key: the signed token
// (schemas/email-tracking-token.ts, put in the email by activation/channels/email-tracking.ts)
// is the credential. GET /v1/e/o/{token}.gif answers a transparent 1×1 GIF and records a
// track `Email Opened`; GET /v1/e/c/{token} answers 302 to the URL inside the token and
// records `Email Link Clicked`. A tampered, truncated or unsigned token is a 400 and records
// nothing: the redirect goes only to a URL we signed, so this is no open redirect.
//
// Attribution: the token names the profile id at send time. The event is produced as a track
// of that profile's own identifier, read from Redis (merges followed): its userId, else one
// of its anonymousIds (the smallest, so repeats use the same Kafka key) — an identifier that
// already points at the profile, so the processor attributes the event to the person (and
// her segments, scores and journeys react) and the event can link or merge nothing. A client
// key's event (keyKind `client`), as the forms' events: a public request changes no trait.
//
// Machines: scanners, link previews and privacy proxies fetch pixels and links nobody looked
// at. Their events are still recorded, with `bot: true` and `botReason`, so analytics can
// filter them (see botReason below). Repeats are one event: the messageId is derived from
// the send key, the kind (and the URL for a click), whether it is a machine, and the hour of
// an open (the minute of a click); the processor drops a messageId it has seen.
//
// The person comes first: the GIF and the redirect are answered at once, and the event is
// recorded in the background; when Redis or Kafka cannot take it in time it is lost and
// logged as email_track_failed.
import { createHash } from 'node:crypto';
import { getConnInfo } from '@hono/node-server/conninfo';
import { type Context, Hono } from 'hono';
import { survivorOf } from '../profiles/read.ts';
import { withTimeout } from '../runtime/http.ts';
import type { Producer } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import {
  type TrackingClaims,
  type TrackingKind,
  verifyTrackingToken,
} from '../schemas/email-tracking-token.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { eventKey } from '../schemas/topics.ts';
import { normalizeEvent, type TimeBounds } from './normalize-event.ts';

/** The part of an ioredis client the attribution uses. */
export interface TrackingRedis {
  hget(key: string, field: string): Promise<string | null>;
  smembers(key: string): Promise<string[]>;
}

export interface EmailTrackingDeps {
  producer: Producer;
  eventsTopic: string;
  redis: TrackingRedis;
  redisPrefix: string;
  /** trackingSecret(CDP_UNSUBSCRIBE_SECRET) */
  secret: string;
  log: Logger;
  now: () => Date;
  produceTimeoutMs: number;
  timeBounds?: TimeBounds;
}

/** The 43-byte transparent 1×1 GIF. */
export const PIXEL_GIF = Buffer.from(
  'R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==',
  'base64',
);

/** A click this soon after the send is a scanner following every link on delivery. */
export const MIN_HUMAN_MS = 2000;

// user agents of mail scanners, link previews, privacy proxies and scripts (matched in order)
const AGENTS: Array<[RegExp, string]> = [
  [/GoogleImageProxy|ggpht\.com/i, 'proxy:google-image'],
  [/YahooMailProxy/i, 'proxy:yahoo'],
  [
    /Microsoft Office Existence Discovery|ms-office.*discovery|SafeLinks|Outlook-iOS-Android\/.*Preview/i,
    'scanner:outlook',
  ],
  [/BingPreview|bingbot/i, 'scanner:bing'],
  [
    /Barracuda|Mimecast|Proofpoint|Symantec|MessageLabs|Trend ?Micro|Sophos|Forcepoint|Zscaler|Cisco|IronPort|FireEye|Fortinet|Check ?Point|Avanan|Abnormal|Vade/i,
    'scanner:security',
  ],
  [
    /facebookexternalhit|Slackbot|LinkedInBot|Twitterbot|WhatsApp|TelegramBot|Discordbot|SkypeUriPreview|Iframely|Embedly/i,
    'preview',
  ],
  [
    /HeadlessChrome|PhantomJS|Puppeteer|Playwright|python-requests|python-urllib|aiohttp|curl\/|Wget|Go-http-client|Java\/|okhttp|libwww|node-fetch|axios|undici/i,
    'script',
  ],
  [/bot\b|crawler|spider|slurp|scanner|preview/i, 'bot'],
];

/** Why a request is a machine's, or null when nothing says so. */
export function botReason(req: {
  method: string;
  userAgent: string | undefined;
  headers: (name: string) => string | undefined;
  msSinceSend: number;
  kind: TrackingKind;
}): string | null {
  if (req.method === 'HEAD') return 'head-request';
  const purpose = `${req.headers('sec-purpose') ?? ''} ${req.headers('purpose') ?? ''} ${req.headers('x-purpose') ?? ''} ${req.headers('x-moz') ?? ''}`;
  if (/prefetch|preview|prerender/i.test(purpose)) return 'prefetch';
  const ua = (req.userAgent ?? '').trim();
  if (ua === '') return 'no-user-agent';
  for (const [re, why] of AGENTS) if (re.test(ua)) return why;
  // Apple Mail Privacy Protection fetches every image on delivery, with the bare `Mozilla/5.0`
  if (req.kind === 'o' && ua === 'Mozilla/5.0') return 'proxy:apple-mpp';
  if (req.msSinceSend >= 0 && req.msSinceSend < MIN_HUMAN_MS) return 'too-fast';
  return null;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

function invalid(c: Context, why: string) {
  c.header('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
  c.header('X-Content-Type-Options', 'nosniff');
  c.header('Referrer-Policy', 'no-referrer');
  c.header('Cache-Control', 'no-store');
  c.header('X-Robots-Tag', 'noindex');
  return c.html(
    `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Invalid link</title></head><body style="font-family:sans-serif;max-width:32em;margin:3em auto"><h1 style="font-size:1.4em">Invalid link</h1><p>This link is not valid (${esc(why)}). Open it from the original email, or copy the whole address.</p></body></html>`,
    400,
  );
}

const WHY = { malformed: 'the link is damaged', signature: 'the link is not one we sent' };

function peer(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined;
  }
}

/** messageIds produced lately by this process: a pixel reloaded 50 times is read and produced once. */
const RECENT_MAX = 50_000;

export function emailTrackingRoutes(deps: EmailTrackingDeps): Hono {
  const app = new Hono();
  // messageId -> until (ms); the processor's dedup is what counts, this only saves the work
  const recent = new Map<string, number>();
  const seen = (id: string, nowMs: number) => {
    const until = recent.get(id);
    if (until !== undefined && until > nowMs) return true;
    if (recent.size >= RECENT_MAX) {
      // drop the oldest tenth (insertion order)
      let n = RECENT_MAX / 10;
      for (const k of recent.keys()) {
        recent.delete(k);
        if (--n <= 0) break;
      }
    }
    return false;
  };

  /** The profile's own identifier for the event, or undefined (gone, erased). */
  const identifierOf = async (
    cl: TrackingClaims,
  ): Promise<['userId' | 'anonymousId', string] | undefined> => {
    const k = workspaceKeys(deps.redisPrefix, cl.w);
    const pid = await survivorOf(deps.redis, k, cl.p);
    const ids = await deps.redis.smembers(k.profileIdentities(pid));
    const user = ids.filter((i) => i.startsWith('user:')).sort()[0];
    if (user) return ['userId', user.slice(5)];
    const anon = ids.filter((i) => i.startsWith('anon:')).sort()[0];
    if (anon) return ['anonymousId', anon.slice(5)];
    return undefined;
  };

  // messageIds being recorded now: a pixel loaded again before its first record is done
  // starts no second one (and the background work stays bounded by the distinct events)
  const inFlight = new Set<string>();

  /**
   * Records the open or click in the background: the answer does not wait for Redis or Kafka
   * (each bounded by the produce timeout). Everything taken from the request is read here,
   * before the answer; a failure is logged (email_track_failed), never thrown.
   */
  const record = (c: Context, kind: TrackingKind, cl: TrackingClaims): void => {
    let job: Promise<void>;
    try {
      job = prepare(c, kind, cl);
    } catch (err) {
      job = Promise.reject(err);
    }
    job.catch((err) =>
      deps.log.warn({ err: (err as Error).message, workspaceId: cl.w, kind }, 'email_track_failed'),
    );
  };

  /** The request's part (synchronous), then the promise of the Redis read and the produce. */
  const prepare = (c: Context, kind: TrackingKind, cl: TrackingClaims): Promise<void> => {
    const now = deps.now();
    const userAgent = c.req.header('user-agent')?.slice(0, 512);
    const why = botReason({
      method: c.req.method,
      userAgent,
      headers: (n) => c.req.header(n),
      msSinceSend: now.getTime() - cl.t,
      kind,
    });
    const bot = why !== null;
    // one event per send, machine or not, and hour (open) or minute and URL (click)
    const bucket = Math.floor(now.getTime() / (kind === 'o' ? 3_600_000 : 60_000));
    const messageId = `e${kind}-${createHash('sha256')
      .update([cl.w, cl.s, kind, cl.u ?? '', bot ? 'b' : 'h', String(bucket)].join('\u0000'))
      .digest('base64url')
      .slice(0, 32)}`;
    if (seen(messageId, now.getTime()) || inFlight.has(messageId)) return Promise.resolve();
    const ip = peer(c);
    inFlight.add(messageId);
    return produce(kind, cl, { now, userAgent, why, bot, bucket, messageId, ip }).finally(() =>
      inFlight.delete(messageId),
    );
  };

  const produce = async (
    kind: TrackingKind,
    cl: TrackingClaims,
    r: {
      now: Date;
      userAgent: string | undefined;
      why: string | null;
      bot: boolean;
      bucket: number;
      messageId: string;
      ip: string | undefined;
    },
  ): Promise<void> => {
    const { now, userAgent, why, bot, bucket, messageId } = r;
    const id = await withTimeout(identifierOf(cl), deps.produceTimeoutMs, 'redis');
    if (!id) {
      deps.log.info({ workspaceId: cl.w, profileId: cl.p, kind }, 'email_track_no_profile');
      return;
    }
    const e = normalizeEvent(
      {
        type: 'track',
        event: kind === 'o' ? 'Email Opened' : 'Email Link Clicked',
        messageId,
        [id[0]]: id[1],
        properties: {
          campaignId: cl.k,
          sendKey: cl.s,
          ...(kind === 'c' ? { url: cl.u } : {}),
          bot,
          botReason: why,
        },
        context: {
          ...(userAgent ? { userAgent } : {}),
          channel: 'email',
          email: { campaignId: cl.k, sendKey: cl.s, profileId: cl.p },
        },
      },
      {
        workspaceId: cl.w,
        receivedAt: now,
        ip: r.ip,
        keyKind: 'client',
        timeBounds: deps.timeBounds,
      },
    );
    await withTimeout(
      deps.producer.send(deps.eventsTopic, [{ key: eventKey(cl.w, id[1]), value: JSON.stringify(e) }]),
      deps.produceTimeoutMs,
      'kafka produce',
    );
    // kept until its bucket ends: the next bucket is a new messageId anyway
    const span = kind === 'o' ? 3_600_000 : 60_000;
    recent.set(messageId, (bucket + 1) * span);
  };

  app.get('/v1/e/o/:file', async (c) => {
    const file = c.req.param('file');
    if (!file.endsWith('.gif')) return invalid(c, WHY.malformed);
    const v = verifyTrackingToken(deps.secret, 'o', file.slice(0, -4));
    if (!v.ok) return invalid(c, WHY[v.reason]);
    record(c, 'o', v.claims); // in the background: the GIF does not wait for the pipeline
    c.header('Cache-Control', 'no-store, no-cache, must-revalidate, private');
    c.header('Pragma', 'no-cache');
    c.header('Expires', '0');
    c.header('X-Robots-Tag', 'noindex');
    return c.body(new Uint8Array(PIXEL_GIF), 200, {
      'Content-Type': 'image/gif',
      'Content-Length': String(PIXEL_GIF.length),
    });
  });

  app.get('/v1/e/c/:token', async (c) => {
    const v = verifyTrackingToken(deps.secret, 'c', c.req.param('token'));
    if (!v.ok) return invalid(c, WHY[v.reason]);
    record(c, 'c', v.claims); // in the background: the redirect does not wait for the pipeline
    c.header('Cache-Control', 'no-store');
    // the target sees no Referer from this host
    c.header('Referrer-Policy', 'no-referrer');
    c.header('X-Robots-Tag', 'noindex');
    return c.redirect(new URL(v.claims.u!).href, 302);
  });

  return app;
}
