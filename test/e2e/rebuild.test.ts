// `cdp rebuild`: Redis loses every profile of a workspace; the rebuild from ClickHouse
// history gives back the same people (identities, traits, accounts, counted events,
// computed traits and score counters, memberships) as the live run, and publishes no
// segment change (campaigns stay quiet).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { runRebuild } from '../../processor/main.ts';
import { createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createKafka } from '../../runtime/kafka/index.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, readTopic, testConfig, testLogger } from '../harness.ts';
import { snapshotProfiles } from '../profile-snapshot.ts';

let cfg: Config;
let running: RunningServices | undefined;
let redis: Redis;
const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });

beforeAll(async () => {
  cfg = testConfig();
  redis = new Redis(cfg.redis.url);
  // computed traits and a score, recomputed from the same history; stored before the
  // processor starts, so it has them for every event (it loads definitions before consuming)
  const store = new DefinitionStore(redis, cfg.redis.prefix);
  const base = { workspaceId: cfg.keys.workspace, version: 1, createdAt: new Date().toISOString() };
  const traits = [
    { name: 'orders', kind: 'count', event: 'Order', window: '30d' },
    { name: 'revenue', kind: 'sum', event: 'Order', property: 'revenue' },
    { name: 'top', kind: 'max', event: 'Order', property: 'revenue', window: '7d' },
    { name: 'last_revenue', kind: 'last', event: 'Order', property: 'revenue' },
  ] as const;
  for (const t of traits)
    await store.put('computedTraits', { ...t, ...base, id: `ct_${t.name}`, updatedAt: base.createdAt });
  await store.put('scores', {
    ...base,
    id: 'sc_buyer',
    name: 'buyer',
    rules: [{ event: 'Order', points: 3 }],
    updatedAt: base.createdAt,
  });
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});
afterAll(async () => {
  await running?.stop();
  redis.disconnect();
});

describe('rebuild from history', () => {
  it('gives back the same people after Redis lost them, without firing segment changes again', async () => {
    const urls = running!.urls;
    for (const [name, rule] of [
      ['buyers', { '>=': [{ event_count: ['Order', '30d'] }, 2] }],
      ['pro', { '==': [{ var: 'traits.plan' }, 'pro'] }],
    ] as const) {
      const r = await fetch(`${urls.query}/v1/segments`, {
        method: 'POST',
        headers: admin(),
        body: JSON.stringify({ name, rule }),
      });
      expect(r.status).toBe(201);
    }
    const t0 = Date.now() - 600_000;
    let n = 0;
    const ev = (e: Record<string, unknown>) => ({ ...e, timestamp: new Date(t0 + n++ * 1000).toISOString() });
    const batch = [];
    for (let i = 0; i < 20; i++) {
      batch.push(ev({ type: 'page', anonymousId: `r${i}-a`, name: 'Home' }));
      batch.push(ev({ type: 'track', anonymousId: `r${i}-a`, event: 'Order', properties: { revenue: i } }));
      batch.push(
        ev({
          type: 'identify',
          userId: `r${i}`,
          anonymousId: `r${i}-a`,
          traits: { plan: i % 2 ? 'pro' : 'free' },
        }),
      );
      batch.push(ev({ type: 'track', anonymousId: `r${i}-b`, event: 'Order', properties: { revenue: 5 } }));
      if (i % 3 === 0) batch.push(ev({ type: 'alias', userId: `r${i}`, previousId: `r${i}-b` }));
      if (i % 4 === 0)
        batch.push(
          ev({ type: 'group', userId: `r${i}`, groupId: `acct-${i % 8}`, traits: { tier: 'gold' } }),
        );
    }
    const res = await fetch(`${urls.ingest}/v1/batch`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ batch }),
    });
    expect(res.status).toBe(200);
    const wk = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace);
    const { tag } = wk;
    // processed (the last person is there) and stored (every event in ClickHouse)
    await eventually('every event in history', async () => {
      const r = await fetch(`${urls.query}/v1/profiles?userId=r19`, { headers: admin() });
      if (r.status !== 200) return false;
      const { id } = (await r.json()) as { id: string };
      const h = (await (
        await fetch(`${urls.query}/v1/profiles/${id}/events`, { headers: admin() })
      ).json()) as {
        events: unknown[];
      };
      return h.events.length >= 3; // page, order, identify
    });
    // the others: the sink commits what it has inserted, so no lag means all of it is stored
    // (group lag is read with kafkajs, whichever driver the services use)
    const kafkaAdmin = createKafka({ ...cfg.kafka, driver: 'kafkajs' }, testLogger(cfg)).admin();
    const t = topics(cfg.kafka.topicPrefix);
    await eventually(
      'the history sink caught up',
      async () => {
        const parts = await kafkaAdmin.groupLag!(`${cfg.kafka.topicPrefix}.cdp-history`, [
          t.events,
          t.identity,
          t.segmentChanges,
        ]);
        return parts.length > 0 && parts.every((p) => p.lag === 0);
      },
      20_000,
      250,
    ).finally(() => kafkaAdmin.disconnect());
    await running!.stop();
    running = undefined;
    const live = await snapshotProfiles(redis, wk);
    // 20 people, plus the 13 second devices never linked to theirs (no alias)
    expect(live.people.size).toBe(33);
    // r3 ordered on both devices (aliased): its aggregates merged
    const r3 = live.people.get('anon:r3-a,anon:r3-b,user:r3') as { aggregates: Record<string, object> };
    expect(Object.keys(r3.aggregates)).toHaveLength(4);

    // Redis loses the workspace's profiles (definitions are kept)
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${tag}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
    expect((await snapshotProfiles(redis, wk)).people.size).toBe(0);

    const changes = await readTopic<SegmentChange>(
      cfg.kafka.brokers,
      topics(cfg.kafka.topicPrefix).segmentChanges,
      `${cfg.kafka.topicPrefix}-rebuild-verify`,
    );
    // read to the end of what the live run published (one message per recorded epoch at least)
    const transitions = [...live.epochs.values()].reduce(
      (n, e) => n + Object.values(e).reduce((x, y) => x + y, 0),
      0,
    );
    expect(transitions).toBeGreaterThan(0);
    await eventually('the live run’s changes', () => changes.seen.length >= transitions);
    await new Promise((r) => setTimeout(r, 500));
    const publishedBefore = changes.seen.length;

    const log = testLogger(cfg);
    const clients = createClients(cfg, log);
    try {
      const { events } = await runRebuild(cfg, clients, log, cfg.keys.workspace);
      expect(events).toBe(batch.length);
    } finally {
      await clients.close();
    }
    const rebuilt = await snapshotProfiles(redis, wk);
    expect(rebuilt.people.size).toBe(live.people.size);
    for (const [ids, state] of live.people) expect(rebuilt.people.get(ids), ids).toEqual(state);
    // no segment change was published by the rebuild
    await new Promise((r) => setTimeout(r, 1000));
    expect(changes.seen.length).toBe(publishedBefore);
    await changes.stop();
  });
});
