// Computed traits and lead scores end to end over HTTP against the real services: defined
// through the query API, reloaded by the processor, updated in real time from events sent
// to ingest (Kafka → processor → Redis), combined on an identity merge, unchanged by
// duplicate messageIds and by a replay after a restart, shown on GET /v1/profiles and in
// segment previews, and erased with the profile.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let running: RunningServices | undefined;
let redis: Redis;

const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });
const query = (path: string, init: RequestInit = {}) =>
  fetch(`${running!.urls.query}${path}`, { ...init, headers: admin() });
const ingest = async (batch: object[]) => {
  const res = await fetch(`${running!.urls.ingest}/v1/batch`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ batch }),
  });
  expect(res.status).toBe(200);
};

interface ProfileView {
  id: string;
  computed: Record<string, unknown>;
  scores: Record<string, number>;
}
const profileOf = async (userId: string): Promise<ProfileView | undefined> => {
  const r = await query(`/v1/profiles?userId=${encodeURIComponent(userId)}`);
  return r.status === 200 ? ((await r.json()) as ProfileView) : undefined;
};

beforeAll(async () => {
  cfg = testConfig();
  redis = new Redis(cfg.redis.url);
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});
afterAll(async () => {
  await running?.stop();
  redis.disconnect();
});

describe('computed traits and lead scores, end to end', () => {
  it('are kept in real time, merged, replay-safe across a restart, shown and erased with the profile', async () => {
    for (const def of [
      { name: 'orders_30d', kind: 'count', event: 'Order', window: '30d' },
      { name: 'revenue_30d', kind: 'sum', event: 'Order', property: 'revenue', window: '30d' },
      { name: 'top_order', kind: 'max', event: 'Order', property: 'revenue' },
      { name: 'last_plan', kind: 'last', event: 'Plan Changed', property: 'plan' },
      { name: 'probes', kind: 'count', event: 'Probe' },
    ]) {
      const r = await query('/v1/computed-traits', { method: 'POST', body: JSON.stringify(def) });
      expect(r.status, await r.clone().text()).toBe(201);
    }
    const score = await query('/v1/scores', {
      method: 'POST',
      body: JSON.stringify({
        name: 'lead',
        halfLifeDays: 7,
        rules: [
          { event: 'Order', points: 10 },
          { event: 'Order', where: { '>=': [{ var: 'revenue' }, 100] }, points: 5 },
          { trait: { '==': [{ var: 'traits.role' }, 'cto'] }, points: 20 },
        ],
      }),
    });
    expect(score.status).toBe(201);

    // the processor reloads definitions when their revision moves, and a reload may fall
    // between the traits' creation and the score's: probe, each time as a new person, until
    // both count. The score's trait rule (20 points for a cto) is applied when the profile
    // is read, so only the Order's 10 points show that the processor has the score's event
    // rules: the probe asks for more than 20.
    const probe = uniqueId('probe');
    let n = 0;
    await eventually(
      'the processor to count with the new definitions',
      async () => {
        const who = `${probe}-${n++}`;
        await ingest([
          { type: 'identify', userId: who, traits: { role: 'cto' }, messageId: `${who}-i` },
          { type: 'track', userId: who, event: 'Probe', messageId: `${who}-t` },
          { type: 'track', userId: who, event: 'Order', properties: { revenue: 1 }, messageId: `${who}-o` },
        ]);
        const p = await profileOf(who);
        return ((p?.computed.probes as number) ?? 0) > 0 && (p?.scores.lead ?? 0) > 20;
      },
      30_000,
      300,
    );

    const user = uniqueId('u');
    const anon = uniqueId('a');
    const t0 = Date.now();
    const at = (minutesAgo: number) => new Date(t0 - minutesAgo * 60_000).toISOString();
    // 10 points for the 30-minute-old order, 10 + 5 for the 20-minute-old one (7-day
    // half-life, as read now), plus 20 while role is cto
    const WEEK_MIN = 7 * 24 * 60;
    const lead = () => {
      const age = (Date.now() - t0) / 60_000;
      return 10 * 2 ** (-(30 + age) / WEEK_MIN) + 15 * 2 ** (-(20 + age) / WEEK_MIN) + 20;
    };
    const events = [
      // an anonymous visitor orders, then is identified as the user (a merge)
      {
        type: 'track',
        anonymousId: anon,
        event: 'Order',
        properties: { revenue: 40 },
        messageId: `${user}-1`,
        timestamp: at(30),
      },
      {
        type: 'track',
        userId: user,
        event: 'Order',
        properties: { revenue: 120 },
        messageId: `${user}-2`,
        timestamp: at(20),
      },
      {
        type: 'track',
        userId: user,
        event: 'Plan Changed',
        properties: { plan: 'pro' },
        messageId: `${user}-3`,
        timestamp: at(10),
      },
      // older plan change arriving later: the newer value stays
      {
        type: 'track',
        userId: user,
        event: 'Plan Changed',
        properties: { plan: 'free' },
        messageId: `${user}-4`,
        timestamp: at(25),
      },
      {
        type: 'identify',
        userId: user,
        anonymousId: anon,
        traits: { role: 'cto' },
        messageId: `${user}-5`,
        timestamp: at(5),
      },
    ];
    await ingest(events);
    // the same messageIds again: delivered twice, applied once
    await ingest(events.slice(0, 2));

    const expected = { orders_30d: 2, revenue_30d: 160, top_order: 120, last_plan: 'pro' };
    const view = await eventually('the merged profile with its computed values', async () => {
      const p = await profileOf(user);
      return p && p.computed.orders_30d === 2 && p.computed.last_plan === 'pro' ? p : undefined;
    });
    expect(view.computed).toMatchObject(expected);
    expect(view.scores.lead).toBeCloseTo(lead(), 3);
    // a segment preview evaluates the values as kept now
    const preview = await query('/v1/segments/preview', {
      method: 'POST',
      body: JSON.stringify({
        rule: {
          and: [{ '>=': [{ var: 'computed.revenue_30d' }, 150] }, { '>': [{ var: 'scores.lead' }, 40] }],
        },
      }),
    });
    expect(preview.status).toBe(200);
    const pv = (await preview.json()) as { matched: number; sample: Array<{ id: string }> };
    expect(pv.matched).toBe(1);
    expect(pv.sample.map((m) => m.id)).toEqual([view.id]);

    // a restart, then a replay of everything (as after a crash before the offsets were committed)
    await running!.stop();
    running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
    const marker = uniqueId('after');
    await ingest([...events, { type: 'track', userId: marker, event: 'Probe', messageId: marker }]);
    await eventually(
      'the replay to be processed',
      async () => (await profileOf(marker))?.computed.probes === 1,
    );
    const again = (await profileOf(user))!;
    expect(again.computed).toMatchObject(expected);
    expect(again.scores.lead).toBeCloseTo(lead(), 3);

    // erasure removes the aggregates and score counters with the rest of the profile
    const k = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace);
    expect(await redis.exists(k.profileScoreCounters(again.id))).toBe(1);
    expect((await redis.smembers(k.profileAggregates(again.id))).length).toBe(4);
    expect((await query(`/v1/profiles/${again.id}`, { method: 'DELETE' })).status).toBe(202); // a job: Redis at once, ClickHouse after its sweep
    const left = await redis.keys(`${k.profile(again.id)}:*`);
    expect(left.filter((key) => key.includes(':ag') || key.endsWith(':sc'))).toEqual([]);
  });
});
