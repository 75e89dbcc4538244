// Tracking plans on the real stack (Kafka, Redis, chDB; every service in process): a plan
// saved through the query API, applied by ingest in each mode; flagged events reach the
// profile with their violations; quarantined ones reach neither the profile nor the events
// table but quarantined_events, with their reason; after the plan is fixed a replay brings
// them into the pipeline once (a second replay, or two at once, adds nothing); violations are
// counted per event and property path; hostile schemas are refused.

import { Hono } from 'hono';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { QueryEnv } from '../../query/app.ts';
import { trackingPlanRoutes } from '../../query/routes/tracking-plan.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createKafka } from '../../runtime/kafka/index.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger, uniqueId } from '../harness.ts';

/** Listings are bounded ranges: from a day ago. */
const SINCE = new Date(Date.now() - 86_400_000).toISOString();
let cfg: Config;
let running: RunningServices;
let ch: ClickHouseClient;
// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
type Row = Record<string, any>;
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);
const send = ingestApi(
  () => running.urls.ingest!,
  () => cfg,
);

beforeAll(async () => {
  cfg = testConfig({ CDP_DEFINITIONS_POLL_MS: '50' });
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  ch = await createClickHouse(cfg.clickhouse);
}, 120_000);
afterAll(async () => {
  await running?.stop();
});

const ORDER_SCHEMA = (totalType: string | string[]) => ({
  type: 'object',
  required: ['order_id', 'total'],
  properties: {
    order_id: { type: 'string' },
    total: { type: totalType },
    currency: { enum: ['USD', 'EUR'] },
  },
});

function planBody(
  mode: string,
  totalType: string | string[] = 'number',
  extra: Record<string, unknown> = {},
) {
  return {
    mode,
    events: {
      'Order Completed': { description: 'an order was paid', properties: ORDER_SCHEMA(totalType) },
      'Signed Up': { traits: { type: 'object', properties: { plan: { enum: ['free', 'pro'] } } } },
    },
    identify: { traits: { type: 'object', properties: { email: { type: 'string', format: 'email' } } } },
    ...extra,
  };
}

/** Saves the plan and waits until ingest has it (it reloads within the poll interval). */
async function savePlan(body: unknown): Promise<{ version: number }> {
  const res = await api('PUT', '/v1/tracking-plan', body);
  expect([200, 201], JSON.stringify(res.body)).toContain(res.status);
  await new Promise((r) => setTimeout(r, 50 * 6 + 200));
  return res.body as { version: number };
}

async function eventRows(messageId: string): Promise<Array<{ context: string }>> {
  const rs = await ch.query({
    query: 'SELECT context FROM events WHERE workspace_id = {ws:String} AND message_id = {id:String}',
    query_params: { ws: cfg.keys.workspace, id: messageId },
    format: 'JSONEachRow',
  });
  return rs.json();
}

async function profileOf(userId: string) {
  return api('GET', `/v1/profiles?userId=${encodeURIComponent(userId)}`);
}

async function quarantined(status = 'quarantined') {
  const res = await api('GET', `/v1/tracking-plan/quarantine?status=${status}&from=${SINCE}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.items as Row[];
}

const order = (userId: string, messageId: string, properties: Record<string, unknown>) => ({
  userId,
  messageId,
  event: 'Order Completed',
  properties,
  context: { traits: { name: 'Ada' } },
});

describe('tracking plans', () => {
  it('refuses hostile or broken schemas with a 400 naming the path', async () => {
    const cases: Array<[unknown, string]> = [
      [
        { mode: 'flag', events: { A: { properties: { $ref: 'https://evil.example/s.json' } } } },
        'events."A".properties.$ref',
      ],
      [
        { mode: 'flag', events: { A: { properties: { properties: { x: { pattern: '(a+)+$' } } } } } },
        'events."A".properties.properties.x.pattern',
      ],
      [
        { mode: 'flag', events: { A: { properties: { type: 'numbr' } } } },
        'events."A".properties: does not compile',
      ],
      [
        {
          mode: 'flag',
          events: { A: { properties: { enum: Array.from({ length: 9000 }, (_, i) => `v${i}`) } } },
        },
        'schema limit',
      ],
      [{ mode: 'drop', events: {} }, 'mode'],
      [{ mode: 'flag', events: {}, identify: { traits: { $id: 'urn:x' } } }, 'identify.traits.$id'],
    ];
    for (const [body, where] of cases) {
      const res = await api('PUT', '/v1/tracking-plan', body);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error).toContain(where);
    }
    expect((await api('GET', '/v1/tracking-plan')).status).toBe(404);
  });

  it('allow mode: the event passes untouched and its violations are counted', async () => {
    const saved = await savePlan(planBody('allow'));
    expect(saved.version).toBe(1);
    const id = uniqueId('msg-allow-');
    await send('/v1/track', order('u-allow', id, { order_id: 'o1', total: 'ten' }));
    const rows = await eventually('the allowed event in history', async () => {
      const r = await eventRows(id);
      return r.length > 0 ? r : undefined;
    });
    expect(JSON.parse(rows[0]!.context).violations).toBeUndefined();
  });

  it('flag mode: the event reaches the profile with its violations attached', async () => {
    const saved = await savePlan(planBody('flag'));
    expect(saved.version).toBe(2);
    const id = uniqueId('msg-flag-');
    await send('/v1/track', order('u-flag', id, { total: '12.50', currency: 'GBP' }));
    const profile = await eventually('the flagged event on the profile', async () => {
      const p = await profileOf('u-flag');
      return p.status === 200 ? p.body : undefined;
    });
    expect(profile.traits.name).toBe('Ada');
    const events = await eventually('the profile timeline', async () => {
      const r = await api('GET', `/v1/profiles/${profile.id}/events`);
      return r.body.events?.length ? r.body.events : undefined;
    });
    const e = events.find((x: { messageId: string }) => x.messageId === id);
    const got = (e.context.violations as Array<{ path: string; keyword: string }>)
      .map((v) => `${v.path} ${v.keyword}`)
      .sort();
    expect(got).toEqual([
      'properties.currency enum',
      'properties.order_id required',
      'properties.total type',
    ]);
  });

  it('quarantine mode: a violating event reaches neither the profile nor the events table; a fixed plan replays it once', async () => {
    await savePlan(planBody('quarantine'));
    const bad = uniqueId('msg-q-');
    const bad2 = uniqueId('msg-q2-');
    const good = uniqueId('msg-ok-');
    // a batch with conforming and violating events: all answered 200
    const res = await fetch(`${running.urls.ingest}/v1/batch`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        batch: [
          { type: 'track', ...order('u-q', bad, { order_id: 'o2', total: '99' }) },
          { type: 'track', ...order('u-q2', bad2, { order_id: 'o3', total: '5' }) },
          { type: 'track', ...order('u-ok', good, { order_id: 'o4', total: 5 }) },
        ],
      }),
    });
    expect(res.status).toBe(200);

    const items = await eventually('two quarantined events', async () => {
      const q = await quarantined();
      return q.length >= 2 ? q : undefined;
    });
    const q1 = items.find((i) => i.messageId === bad)!;
    expect(q1).toMatchObject({
      event: 'Order Completed',
      type: 'track',
      status: 'quarantined',
      planVersion: 3,
      reason: 'properties.total: must be number',
      violations: [{ path: 'properties.total', keyword: 'type', message: 'must be number' }],
    });
    expect(q1.payload.properties).toEqual({ order_id: 'o2', total: '99' });
    expect(q1.payload.messageId).toBe(bad);

    // the conforming event of the same batch went through; the quarantined ones did not
    await eventually('the conforming event in history', async () => (await eventRows(good)).length > 0);
    await eventually(
      'the conforming event on its profile',
      async () => (await profileOf('u-ok')).status === 200,
    );
    expect(await eventRows(bad)).toHaveLength(0);
    expect((await profileOf('u-q')).status).toBe(404);

    // still wrong: nothing is replayed
    const early = await api('POST', '/v1/tracking-plan/replay', {});
    expect(early.status, JSON.stringify(early.body)).toBe(200);
    expect(early.body).toMatchObject({ replayed: 0, stillInvalid: 2 });

    // fixed: total may be a string too. Two replays at once: one runs, the other is told so
    // (or finds nothing left); each event is replayed once.
    await savePlan(planBody('quarantine', ['number', 'string']));
    const [a, b] = await Promise.all([
      api('POST', '/v1/tracking-plan/replay', { event: 'Order Completed' }),
      api('POST', '/v1/tracking-plan/replay', { event: 'Order Completed' }),
    ]);
    for (const r of [a, b]) expect([200, 409], JSON.stringify(r.body)).toContain(r.status);
    const total = [a, b].reduce((n, r) => n + (r.status === 200 ? r.body.replayed : 0), 0);
    expect(total).toBe(2);
    const again = await api('POST', '/v1/tracking-plan/replay', {});
    expect(again.body).toMatchObject({ replayed: 0, stillInvalid: 0 });

    await eventually(
      'the replayed event on its profile',
      async () => (await profileOf('u-q')).status === 200,
    );
    await eventually('the replayed events in history', async () => (await eventRows(bad2)).length > 0);
    // once each, not deduplicated afterwards: produced once
    await new Promise((r) => setTimeout(r, 1000));
    expect(await eventRows(bad)).toHaveLength(1);
    expect(await eventRows(bad2)).toHaveLength(1);
    expect(await quarantined()).toHaveLength(0);
    const replayed = await quarantined('replayed');
    expect(replayed.map((i) => i.messageId).sort()).toEqual([bad, bad2].sort());
    expect(replayed.every((i) => typeof i.replayedAt === 'string')).toBe(true);
  });

  it('unplanned events: violations when the plan says so; identify traits are checked', async () => {
    await savePlan(planBody('quarantine', 'number', { unplannedEvents: 'violation' }));
    const id = uniqueId('msg-unplanned-');
    await send('/v1/track', { userId: 'u-x', messageId: id, event: 'Mystery Clicked', properties: {} });
    const idn = uniqueId('msg-identify-');
    await send('/v1/identify', { userId: 'u-x', messageId: idn, traits: { email: 'nope' } });
    const items = await eventually('the unplanned event in quarantine', async () => {
      const q = await quarantined();
      return q.some((i) => i.messageId === id) && q.some((i) => i.messageId === idn) ? q : undefined;
    });
    expect(items.find((i) => i.messageId === id)).toMatchObject({
      event: 'Mystery Clicked',
      violations: [{ path: 'event', keyword: 'unplanned' }],
    });
    expect(items.find((i) => i.messageId === idn)).toMatchObject({
      event: '$identify',
      type: 'identify',
      violations: [{ path: 'traits.email', keyword: 'format' }],
    });
  });

  it('counts violations per event and property path, by mode', async () => {
    const res = await eventually('every violation counted', async () => {
      const r = await api('GET', `/v1/tracking-plan/violations?from=${SINCE}`);
      const n = (r.body.violations as Array<{ count: number }> | undefined)?.reduce((s, v) => s + v.count, 0);
      return n === 8 ? r : undefined;
    });
    const by = Object.fromEntries(
      (res.body.violations as Row[]).map((v) => [`${v.event}|${v.path}|${v.keyword}`, v]),
    );
    // allow: total (1); flag: total, order_id, currency (1 each); quarantine: total ×2;
    // then an unplanned event and an identify
    expect(by['Order Completed|properties.total|type']).toMatchObject({
      count: 4,
      byMode: { allow: 1, flag: 1, quarantine: 2 },
    });
    expect(by['Order Completed|properties.order_id|required']).toMatchObject({
      count: 1,
      byMode: { flag: 1 },
    });
    expect(by['Order Completed|properties.currency|enum']).toMatchObject({ count: 1 });
    expect(by['Mystery Clicked|event|unplanned']).toMatchObject({ count: 1, byMode: { quarantine: 1 } });
    expect(by['$identify|traits.email|format']).toMatchObject({ count: 1 });
    const events = Object.fromEntries(
      (res.body.events as Array<{ event: string; count: number }>).map((e) => [e.event, e.count]),
    );
    expect(events).toEqual({ 'Order Completed': 4, 'Mystery Clicked': 1, $identify: 1 });
    const one = await api('GET', `/v1/tracking-plan/violations?from=${SINCE}&event=%24identify`);
    expect(one.body.violations).toHaveLength(1);
  });

  it('a replay that crashes after sending leaves the events quarantined; the next sends them again; the profile shows it once', async () => {
    const id = uniqueId('msg-crash-');
    await send('/v1/track', order('u-crash', id, { order_id: 'o7', total: 'seven' }));
    await eventually('the event in quarantine', async () =>
      (await quarantined()).some((i) => i.messageId === id),
    );
    await savePlan(planBody('quarantine', ['number', 'string'], { unplannedEvents: 'violation' }));
    // the replay route over a ClickHouse whose insert of the replayed marks fails: a crash
    // after Kafka took the events and before they were marked
    const redis = new Redis(cfg.redis.url);
    const failing = new Proxy(ch, {
      get(target, prop, receiver) {
        if (prop === 'insert')
          return async (args: { table: string }) => {
            if (args.table === 'quarantined_events') throw new Error('crashed before marking');
            return target.insert(args as never);
          };
        return Reflect.get(target, prop, receiver);
      },
    });
    const app = new Hono<QueryEnv>();
    app.use('*', async (c, next) => {
      c.set('workspaceId', cfg.keys.workspace);
      c.set('apiKey', 'test');
      await next();
    });
    const producer = createKafka(cfg.kafka, testLogger(cfg)).producer();
    app.route(
      '/',
      trackingPlanRoutes({
        clickhouse: failing,
        defs: new DefinitionStore(redis, cfg.redis.prefix),
        redis,
        redisPrefix: cfg.redis.prefix,
        log: testLogger(cfg),
        analytics: cfg.analytics,
        now: () => new Date(),
        producer,
        topicPrefix: cfg.kafka.topicPrefix,
      }),
    );
    try {
      let cause = '';
      app.onError((err, c) => {
        cause = err.message;
        return c.text('crashed', 500);
      });
      const crashed = await app.request('/replay', { method: 'POST', body: '{"event":"Order Completed"}' });
      expect(crashed.status).toBe(500);
      expect(cause).toBe('crashed before marking');
    } finally {
      await producer.disconnect();
      redis.disconnect();
    }
    // sent once already, still quarantined; the lock was released
    expect((await quarantined()).map((i) => i.messageId)).toContain(id);
    const again = await api('POST', '/v1/tracking-plan/replay', { event: 'Order Completed' });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.replayed).toBe(1);
    const profile = await eventually('the profile of u-crash', async () => {
      const p = await profileOf('u-crash');
      return p.status === 200 ? p.body : undefined;
    });
    const events = await eventually('its timeline', async () => {
      const r = await api('GET', `/v1/profiles/${profile.id}/events`);
      return r.body.events?.length ? r.body.events : undefined;
    });
    expect(events.filter((e: { messageId: string }) => e.messageId === id)).toHaveLength(1);
    expect((await quarantined()).map((i) => i.messageId)).not.toContain(id);
  });

  it('erasing a person deletes their quarantined events', async () => {
    // a conforming event gives u-x a profile; its two quarantined events wait in quarantine
    const ok = uniqueId('msg-x-ok-');
    await send('/v1/track', order('u-x', ok, { order_id: 'o9', total: 1 }));
    await eventually('the profile of u-x', async () => (await profileOf('u-x')).status === 200);
    const mine = async () =>
      (await quarantined('all')).filter((i) => i.payload?.userId === 'u-x').map((i) => i.messageId);
    expect(await mine()).toHaveLength(2);
    const del = await api('DELETE', '/v1/profiles?userId=u-x');
    expect([200, 202], JSON.stringify(del.body)).toContain(del.status);
    const job = await eventually(
      'the erasure done',
      async () => {
        const j = await api('GET', `/v1/erasures/${del.body.job.id}`);
        return j.body.status === 'done' ? j.body : undefined;
      },
      60_000,
    );
    expect(job.counts.quarantined_events).toBe(2);
    expect(await mine()).toHaveLength(0);
  });

  it('versions, audit and delete', async () => {
    const plan = await api('GET', '/v1/tracking-plan');
    expect(plan.body.version).toBe(6);
    const v2 = await api('GET', '/v1/tracking-plan/versions/2');
    expect(v2.body.mode).toBe('flag');
    expect((await api('DELETE', '/v1/tracking-plan')).status).toBe(204);
    expect((await api('GET', '/v1/tracking-plan')).status).toBe(404);
    const next = await api('PUT', '/v1/tracking-plan', planBody('allow'));
    expect(next.status).toBe(201);
    expect(next.body.version).toBe(7);
    const audit = await eventually('the audit entries', async () => {
      const r = await api('GET', `/v1/audit?entityType=tracking_plan&from=${SINCE}&limit=100`);
      return r.body.items?.length >= 7 ? r.body.items : undefined;
    });
    expect(audit.map((i: { action: string }) => i.action)).toContain('delete');
  });
});
