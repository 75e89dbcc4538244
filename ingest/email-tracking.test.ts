// The open pixel and click redirect routes in the ingest app, with a recording producer and a
// map for Redis: a valid token answers the GIF or the 302 to its own URL and (right after the
// answer) produces one track of the profile's identifier (merges followed, userId first); a
// forged one is a 400
// and produces nothing; machines are flagged and still recorded; repeats share a messageId.
// The real stack (Kafka, processor, the timeline) is test/email-tracking/.
import { describe, expect, it } from 'vitest';
import type { OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import { signTrackingToken, type TrackingClaims, trackingSecret } from '../schemas/email-tracking-token.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import { createIngestApp } from './app.ts';
import { botReason, PIXEL_GIF } from './email-tracking.ts';

const SECRET = trackingSecret('s3cret');
let NOW = 1_800_000_000_000;
const sent: OutgoingMessage[] = [];
let failKafka = false;
const producer: Producer = {
  connect: async () => {},
  disconnect: async () => {},
  send: async (_topic, messages) => {
    if (failKafka) throw new Error('broker down');
    sent.push(...messages);
  },
};
const hashes = new Map<string, Record<string, string>>([['cdp:{ws}:p:old', { mergedInto: 'p1' }]]);
const sets = new Map<string, string[]>([
  ['cdp:{ws}:p:p1:ids', ['anon:b-device', 'email:a@shop.test', 'user:u-42', 'anon:a-device']],
  ['cdp:{ws}:p:p2:ids', ['anon:zz', 'anon:aa', 'email:x@shop.test']],
]);
const log = createLogger({ level: 'silent', name: 'test' });
const makeApp = () =>
  createIngestApp({
    producer,
    eventsTopic: 'events',
    resolveWriteKey: () => undefined,
    log,
    emailTracking: {
      producer,
      eventsTopic: 'events',
      redis: {
        hget: async (k, f) => hashes.get(k)?.[f] ?? null,
        smembers: async (k) => sets.get(k) ?? [],
      },
      redisPrefix: 'cdp',
      secret: SECRET,
      log,
      now: () => new Date(NOW),
      produceTimeoutMs: 1000,
    },
  });
let app = makeApp();

// a send of its own each time: the routes remember what they produced lately
let sends = 0;
const claims = (over: Partial<TrackingClaims> = {}): TrackingClaims => ({
  w: 'ws',
  p: 'p1',
  k: 'cmp1',
  s: `send-${++sends}`,
  t: NOW - 60_000,
  ...over,
});
const HUMAN = { 'user-agent': 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Mail/3774' };

async function get(path: string, headers: Record<string, string> = HUMAN, method = 'GET') {
  sent.length = 0;
  const res = await app.request(path, { method, headers });
  // the route answers first and records in the background; with these in-memory stand-ins
  // the record is promise work only, all done before the next turn of the event loop
  await new Promise((resolve) => setImmediate(resolve));
  const events = sent.map((m) => JSON.parse(String(m.value)) as NormalizedEvent);
  return { res, events, keys: sent.map((m) => m.key) };
}

describe('open pixel', () => {
  it('answers the 43-byte GIF uncached and produces Email Opened for the profile userId', async () => {
    const c = claims();
    const t = signTrackingToken(SECRET, 'o', c);
    const { res, events } = await get(`/v1/e/o/${t}.gif`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/gif');
    expect(res.headers.get('cache-control')).toContain('no-store');
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(43);
    expect(body.equals(PIXEL_GIF)).toBe(true);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'track',
      event: 'Email Opened',
      workspaceId: 'ws',
      userId: 'u-42',
      anonymousId: null,
      keyKind: 'client',
      properties: { campaignId: 'cmp1', sendKey: c.s, bot: false, botReason: null },
    });
  });

  it('follows a merge, and takes the smallest anonymousId of a profile without a userId', async () => {
    const merged = await get(`/v1/e/o/${signTrackingToken(SECRET, 'o', claims({ p: 'old' }))}.gif`);
    expect(merged.events[0]?.userId).toBe('u-42');
    const anon = await get(`/v1/e/o/${signTrackingToken(SECRET, 'o', claims({ p: 'p2' }))}.gif`);
    expect(anon.events[0]).toMatchObject({ userId: null, anonymousId: 'aa' });
    expect(anon.keys[0]).toContain('aa');
    // a profile that is gone: the GIF, no event
    const gone = await get(`/v1/e/o/${signTrackingToken(SECRET, 'o', claims({ p: 'nobody' }))}.gif`);
    expect(gone.res.status).toBe(200);
    expect(gone.events).toEqual([]);
  });

  it('gives repeated opens in the hour one messageId (produced once by a process), and the next hour another', async () => {
    const path = `/v1/e/o/${signTrackingToken(SECRET, 'o', claims())}.gif`;
    app = makeApp();
    const ids = new Set<string>();
    let produced = 0;
    for (let i = 0; i < 5; i++) {
      const r = await get(path);
      expect(r.res.status).toBe(200);
      produced += r.events.length;
      for (const e of r.events) ids.add(e.messageId);
    }
    expect(produced).toBe(1);
    // another ingest process (or a restart) produces the same messageId: the processor drops it
    app = makeApp();
    expect(ids.has((await get(path)).events[0]!.messageId)).toBe(true);
    expect(ids.size).toBe(1);
    // a machine's open is kept apart: it must not hide the person's
    const bot = (await get(path, { 'user-agent': 'Mozilla/5.0' })).events[0]!;
    expect(bot.properties).toMatchObject({ bot: true, botReason: 'proxy:apple-mpp' });
    expect(ids.has(bot.messageId)).toBe(false);
    NOW += 3_600_000;
    try {
      expect(ids.has((await get(path)).events[0]!.messageId)).toBe(false);
    } finally {
      NOW -= 3_600_000;
    }
  });

  it('refuses a forged, truncated or wrong-purpose token with 400 and produces nothing', async () => {
    const good = signTrackingToken(SECRET, 'o', claims());
    const forged = signTrackingToken(trackingSecret('guess'), 'o', claims());
    const click = signTrackingToken(SECRET, 'c', claims({ u: 'https://shop.test/' }));
    for (const p of [
      `/v1/e/o/${forged}.gif`,
      `/v1/e/o/${good.slice(0, -2)}.gif`,
      `/v1/e/o/${click}.gif`,
      `/v1/e/o/${good}`,
      '/v1/e/o/x.gif',
    ]) {
      const { res, events } = await get(p);
      expect(res.status, p).toBe(400);
      expect(events, p).toEqual([]);
    }
  });

  it('still answers the GIF when Kafka cannot take the event', async () => {
    const path = `/v1/e/o/${signTrackingToken(SECRET, 'o', claims())}.gif`;
    failKafka = true;
    try {
      const { res } = await get(path);
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).length).toBe(43);
    } finally {
      failKafka = false;
    }
    // not remembered as produced: the next load records it
    expect((await get(path)).events).toHaveLength(1);
  });
});

describe('click redirect', () => {
  const url = 'https://shop.test/sale?utm_source=mail&id=7#top';

  it('redirects to the signed URL and produces Email Link Clicked', async () => {
    const c = claims({ u: url });
    const { res, events } = await get(`/v1/e/c/${signTrackingToken(SECRET, 'c', c)}`);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe(url);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      event: 'Email Link Clicked',
      userId: 'u-42',
      properties: { campaignId: 'cmp1', sendKey: c.s, url, bot: false, botReason: null },
    });
  });

  it('never redirects on a tampered token: 400, no Location, no event', async () => {
    const t = signTrackingToken(SECRET, 'c', claims({ u: url }));
    const [, sig] = t.split('.');
    const evil = Buffer.from(JSON.stringify(claims({ u: 'https://evil.test/' }))).toString('base64url');
    const open = signTrackingToken(SECRET, 'o', claims());
    for (const token of [
      `${evil}.${sig}`,
      evil,
      open,
      `${t}x`,
      encodeURIComponent('https://evil.test/'),
      '%ZZ',
      '%00',
      `${'a'.repeat(10_000)}.${sig}`,
    ]) {
      const { res, events } = await get(`/v1/e/c/${token}`);
      expect(res.status, token).toBe(400);
      expect(res.headers.get('location'), token).toBeNull();
      expect(await res.text()).toContain('Invalid link');
      expect(events, token).toEqual([]);
    }
  });

  it('flags scanners, prefetch, HEAD and a click within 2 s of the send, and records them', async () => {
    const path = (over: Partial<TrackingClaims> = {}) =>
      `/v1/e/c/${signTrackingToken(SECRET, 'c', claims({ u: url, ...over }))}`;
    const cases: Array<[string, Record<string, string>, string, string?]> = [
      [path(), { 'user-agent': 'Mozilla/5.0 (via ggpht.com GoogleImageProxy)' }, 'proxy:google-image'],
      [path(), { ...HUMAN, 'sec-purpose': 'prefetch;prerender' }, 'prefetch'],
      [path(), { 'user-agent': 'Barracuda Sentinel (EE)' }, 'scanner:security'],
      [path(), {}, 'no-user-agent'],
      [path(), { 'user-agent': 'python-requests/2.31' }, 'script'],
      [path({ t: NOW - 500 }), HUMAN, 'too-fast'],
      [path(), HUMAN, 'head-request', 'HEAD'],
    ];
    for (const [p, headers, why, method] of cases) {
      const { res, events } = await get(p, headers, method);
      expect(res.status, why).toBe(302);
      expect(events, why).toHaveLength(1);
      expect(events[0]!.properties, why).toMatchObject({ bot: true, botReason: why });
    }
  });

  it('classifies without a request too', () => {
    const r = (ua: string | undefined, kind: 'o' | 'c' = 'c') =>
      botReason({ method: 'GET', userAgent: ua, headers: () => undefined, msSinceSend: 10_000, kind });
    expect(r('Mozilla/5.0', 'o')).toBe('proxy:apple-mpp');
    expect(r('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148')).toBeNull();
    expect(r('Mozilla/5.0 (compatible; bingbot/2.0)')).toBe('scanner:bing');
  });
});
