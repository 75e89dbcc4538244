// The services on a local 6-node Redis Cluster (3 masters, 3 replicas; infra/local/
// redis-cluster.ts) through REDIS_URL=redis-cluster://…: identity (a merge of an anonymous
// profile into a known one), segments (enter and leave), timers (a windowed segment is left
// when its window passes, by the timer worker) and activation (one webhook per entry), with a
// master failed over while events arrive and another while the timers wait. Nothing may be
// lost or done twice: each person ends up one profile, enters and leaves once, gets one webhook.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import { type LocalRedisCluster, startRedisCluster } from '../../infra/local/redis-cluster.ts';
import { createExport, deleteExport, readExport } from '../../query/exports.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createRedis, isCluster, keySlot, type Redis } from '../../runtime/redis.ts';
import { redisDurability } from '../../runtime/redis-durability.ts';
import type { CampaignDefinition } from '../../schemas/campaign.ts';
import { globalKeys, globalTag, workspaceKeys } from '../../schemas/redis-keys.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';
import { topics } from '../../schemas/topics.ts';
import { segmentDef } from '../fixtures.ts';
import { eventually, readTopic, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

const PEOPLE = 30;
const WINDOW_S = 20;
let WS = '';

let dir: string;
let cluster: LocalRedisCluster;
let cfg: Config;
let redis: Redis;
let running: RunningServices | undefined;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let changes: Awaited<ReturnType<typeof readTopic<SegmentChange>>> | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cdp-redis-cluster-'));
  cluster = await startRedisCluster({ dataDir: dir });
  // a workspace whose keys live on another master than the global keys, so the two
  // failovers below hit both kinds of keys
  const prefixProbe = uniqueId('t');
  const globalMaster = (await cluster.roles(keySlot(globalTag(prefixProbe)))).master;
  for (;;) {
    WS = uniqueId('ws_rc');
    if ((await cluster.roles(keySlot(workspaceKeys(prefixProbe, WS).tag))).master !== globalMaster) break;
  }
  cfg = testConfig({ REDIS_URL: cluster.url, CDP_DEFAULT_WORKSPACE: WS, CDP_REDIS_PREFIX: prefixProbe });
  redis = createRedis(cluster.url, testLogger(cfg), 'redis-cluster-test');
  receiver = await startWebhookReceiver();
  const defs = new DefinitionStore(redis, cfg.redis.prefix);
  await defs.put(
    'segments',
    segmentDef('pro', { '==': [{ var: 'traits.plan' }, 'pro'] }, { workspaceId: WS }),
  );
  await defs.put(
    'segments',
    segmentDef(
      'recent_order',
      { '>=': [{ event_count: ['Order', `${WINDOW_S}s`] }, 1] },
      { workspaceId: WS },
    ),
  );
  const campaign: CampaignDefinition = {
    id: 'welcome_order',
    workspaceId: WS,
    name: 'Thanks for the order',
    segmentId: 'recent_order',
    on: 'enter',
    channel: 'webhook',
    webhook: { url: receiver.url, secret: 'whsec_AAAA' },
    status: 'active',
    version: 1,
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
  };
  await defs.put('campaigns', campaign);
  running = await startServices(cfg, ['ingest', 'processor', 'activation'], testLogger(cfg));
  changes = await readTopic<SegmentChange>(
    cfg.kafka.brokers,
    topics(cfg.kafka.topicPrefix).segmentChanges,
    `${cfg.kafka.topicPrefix}-verify`,
  );
}, 120_000);

afterAll(async () => {
  await changes?.stop().catch(() => {});
  await running?.stop();
  await receiver?.close();
  redis?.disconnect();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

/** Posts until ingest acknowledges (a request it did not acknowledge is sent again, as a client would). */
async function ingest(path: string, body: unknown): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${running!.urls.ingest}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    }).catch(() => undefined);
    const status = res?.status ?? 0;
    await res?.text();
    if (status === 200) return;
    expect([0, 500, 502, 503], `${path} answered ${status}`).toContain(status);
    if (Date.now() > deadline) throw new Error(`${path} never acknowledged (last ${status})`);
    await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
  }
}

const people = Array.from({ length: PEOPLE }, (_, i) => i);
const inParallel = (f: (i: number) => Promise<void>) => Promise.all(people.map(f));

describe('the services on a 6-node Redis Cluster, a master failed over twice mid-run', () => {
  it('is a cluster client, and the keys used together are on one slot', () => {
    expect(isCluster(redis)).toBe(true);
    const g = globalKeys(cfg.redis.prefix);
    expect(keySlot(g.timers)).toBe(keySlot(g.timerLeases));
    expect(keySlot(g.writeKeys)).toBe(keySlot(g.writeKeysRevision));
    const w = workspaceKeys(cfg.redis.prefix, WS);
    expect(keySlot(w.profile('x'))).toBe(keySlot(w.segmentMembers('pro')));
  });

  it('merges, enters and leaves each person once and sends one webhook each', async () => {
    const globalSlot = keySlot(globalTag(cfg.redis.prefix));
    const wsSlot = keySlot(workspaceKeys(cfg.redis.prefix, WS).tag);
    const failovers: Array<{ from: number; to: number }> = [];

    // a known person, and the same person browsing anonymously: two profiles
    await inParallel((i) =>
      ingest('/v1/identify', { userId: `u${i}`, messageId: `id1-${i}`, traits: { plan: 'free' } }),
    );
    await inParallel((i) =>
      ingest('/v1/track', { anonymousId: `a${i}`, event: 'Page', messageId: `pg-${i}` }),
    );
    await eventually(
      'both profiles of each person',
      async () => {
        const k = workspaceKeys(cfg.redis.prefix, WS);
        for (const i of people)
          if (
            !(await redis.get(k.identity('user', `u${i}`))) ||
            !(await redis.get(k.identity('anon', `a${i}`)))
          )
            return false;
        return true;
      },
      60_000,
      200,
    );
    // the anonymous one is then identified: merged into the known one; the plan enters `pro`
    await inParallel((i) =>
      ingest('/v1/identify', {
        userId: `u${i}`,
        anonymousId: `a${i}`,
        messageId: `id2-${i}`,
        traits: { plan: 'pro' },
      }),
    );
    // an order each: enters `recent_order` (a webhook), left WINDOW_S later by a timer;
    // the master of the global keys (timers, delayed sends, definitions) fails over halfway
    const half = PEOPLE / 2;
    await Promise.all(
      people
        .slice(0, half)
        .map((i) => ingest('/v1/track', { userId: `u${i}`, event: 'Order', messageId: `ord-${i}` })),
    );
    failovers.push(await cluster.failover(globalSlot));
    await Promise.all(
      people
        .slice(half)
        .map((i) => ingest('/v1/track', { userId: `u${i}`, event: 'Order', messageId: `ord-${i}` })),
    );
    // and the workspace's master while the timers wait (before the first window has passed)
    await eventually('some entries', () => receiver.deliveries.length >= 1, 60_000, 100);
    failovers.push(await cluster.failover(wsSlot));
    console.info(`redis-cluster: failovers ${JSON.stringify(failovers)}`);

    const k = workspaceKeys(cfg.redis.prefix, WS);
    const pids = new Map<number, string>();
    for (const i of people) {
      const pid = await eventually(`u${i} and a${i} one profile`, async () => {
        const [u, a] = [
          await redis.get(k.identity('user', `u${i}`)),
          await redis.get(k.identity('anon', `a${i}`)),
        ];
        return u && u === a ? u : undefined;
      });
      pids.set(i, pid);
    }
    expect(new Set(pids.values()).size).toBe(PEOPLE);

    // every person leaves recent_order (the timer), once all have entered it
    const seen = () => changes!.seen.map((m) => m.value).filter((c) => c.workspaceId === WS);
    await eventually(
      'every person entered and left recent_order',
      () => {
        const left = new Set(
          seen()
            .filter((c) => c.segmentId === 'recent_order' && c.type === 'exited')
            .map((c) => c.profileId),
        );
        return [...pids.values()].every((p) => left.has(p));
      },
      (WINDOW_S + 90) * 1000,
      250,
    );
    // and no more: a short grace for a late duplicate to show up
    await new Promise((r) => setTimeout(r, 2000));

    for (const [i, pid] of pids) {
      const mine = seen().filter((c) => c.profileId === pid);
      // a change may be delivered again (at least once), always with the same epoch
      const distinct = (seg: string) =>
        [...new Set(mine.filter((c) => c.segmentId === seg).map((c) => `${c.type}:${c.epoch}`))].sort();
      expect(distinct('pro'), `u${i}`).toEqual(['entered:1']);
      expect(distinct('recent_order'), `u${i}`).toEqual(['entered:1', 'exited:2']);
      expect(await redis.zscore(k.segmentMembers('pro'), pid)).not.toBeNull();
      expect(await redis.zscore(k.segmentMembers('recent_order'), pid)).toBeNull();
    }
    // the merged-away anonymous profiles never entered anything
    const known = new Set(pids.values());
    expect(seen().filter((c) => !known.has(c.profileId))).toEqual([]);

    // one webhook per person, for its one entry
    await eventually('a webhook for each person', () => receiver.deliveries.length >= PEOPLE, 60_000, 100);
    await new Promise((r) => setTimeout(r, 1000));
    const byProfile = new Map<string, number>();
    for (const d of receiver.deliveries) {
      const body = JSON.parse(d.body) as { profileId: string; type: string; campaignId: string };
      expect(body).toMatchObject({ type: 'segment.entered', campaignId: 'welcome_order' });
      byProfile.set(body.profileId, (byProfile.get(body.profileId) ?? 0) + 1);
    }
    expect([...byProfile.keys()].sort()).toEqual([...known].sort());
    expect([...byProfile.values()].every((n) => n === 1)).toBe(true);

    // the timers all fired: none due, none claimed
    const g = globalKeys(cfg.redis.prefix);
    await eventually(
      'the timer sets empty',
      async () => (await redis.zcard(g.timers)) + (await redis.zcard(g.timerLeases)) === 0,
      30_000,
      200,
    );
    expect(await cluster.healthy()).toBe(true);
  }, 170_000);

  it('refuses a durability mode the cluster cannot honour, and checks appendfsync on every master', async () => {
    const log = testLogger(cfg);
    await expect(
      redisDurability(redis, { durability: 'waitaof', waitaofTimeoutMs: 1000 }, log),
    ).rejects.toThrow(/not supported on a Redis Cluster/);
    // the local cluster runs appendfsync everysec
    await expect(
      redisDurability(redis, { durability: 'appendfsync-always', waitaofTimeoutMs: 1000 }, log),
    ).rejects.toThrow(/on every cluster node/);
    const c = redis as unknown as { nodes(role: 'master'): Redis[] };
    // one master set is not enough
    await c.nodes('master')[0]!.config('SET', 'appendfsync', 'always');
    await expect(
      redisDurability(redis, { durability: 'appendfsync-always', waitaofTimeoutMs: 1000 }, log),
    ).rejects.toThrow(/appendfsync=everysec/);
    for (const n of c.nodes('master')) await n.config('SET', 'appendfsync', 'always');
    await expect(
      redisDurability(redis, { durability: 'appendfsync-always', waitaofTimeoutMs: 1000 }, log),
    ).resolves.toBeTypeOf('function');
  });

  it('a profile export is created, due and deleted across its two slots', async () => {
    const deps = {
      redis,
      redisPrefix: cfg.redis.prefix,
      clickhouse: undefined as never, // not reached: the job is never run here
      log: testLogger(cfg),
      now: () => new Date(),
      dir: mkdtempSync(join(tmpdir(), 'cdp-rc-exports-')),
      ttlMs: 3_600_000,
      engine: 'chdb' as const,
    };
    const g = globalKeys(cfg.redis.prefix);
    const job = await createExport(deps, WS, 'csv', { segment: 'pro' } as never, 'test');
    const member = `${WS}/${job.id}`;
    expect((await readExport(deps, WS, job.id))?.status).toBe('pending');
    // due now (not the minute of grace a crash would leave)
    expect(Number(await redis.zscore(g.exportsDue, member))).toBeLessThanOrEqual(Date.now());
    await deleteExport(deps, job);
    expect(await readExport(deps, WS, job.id)).toBeUndefined();
    expect(await redis.zscore(g.exportsDue, member)).toBeNull();
    rmSync(deps.dir, { recursive: true, force: true });
  });

  it('a master killed (SIGKILL, no failover asked) while orders arrive: each new person still enters, leaves and gets a webhook once', async () => {
    const k = workspaceKeys(cfg.redis.prefix, WS);
    const more = Array.from({ length: PEOPLE }, (_, i) => PEOPLE + i);
    const webhooksBefore = receiver.deliveries.length;
    const half = PEOPLE / 2;
    await Promise.all(
      more
        .slice(0, half)
        .map((i) => ingest('/v1/track', { userId: `u${i}`, event: 'Order', messageId: `ord-${i}` })),
    );
    const killed = await cluster.kill(keySlot(k.tag));
    console.info(`redis-cluster: killed ${JSON.stringify(killed)}`);
    await Promise.all(
      more
        .slice(half)
        .map((i) => ingest('/v1/track', { userId: `u${i}`, event: 'Order', messageId: `ord-${i}` })),
    );
    const pids = new Map<number, string>();
    for (const i of more)
      pids.set(
        i,
        await eventually(
          `u${i}'s profile`,
          async () => (await redis.get(k.identity('user', `u${i}`))) ?? undefined,
          60_000,
          200,
        ),
      );
    const seen = () => changes!.seen.map((m) => m.value).filter((c) => c.workspaceId === WS);
    await eventually(
      'every new person entered and left recent_order',
      () => {
        const left = new Set(
          seen()
            .filter((c) => c.segmentId === 'recent_order' && c.type === 'exited')
            .map((c) => c.profileId),
        );
        return [...pids.values()].every((p) => left.has(p));
      },
      (WINDOW_S + 90) * 1000,
      250,
    );
    await new Promise((r) => setTimeout(r, 2000));
    for (const [i, pid] of pids) {
      const distinct = [
        ...new Set(
          seen()
            .filter((c) => c.profileId === pid && c.segmentId === 'recent_order')
            .map((c) => `${c.type}:${c.epoch}`),
        ),
      ].sort();
      expect(distinct, `u${i}`).toEqual(['entered:1', 'exited:2']);
    }
    const byProfile = new Map<string, number>();
    for (const d of receiver.deliveries.slice(webhooksBefore)) {
      const body = JSON.parse(d.body) as { profileId: string };
      byProfile.set(body.profileId, (byProfile.get(body.profileId) ?? 0) + 1);
    }
    expect([...byProfile.keys()].sort()).toEqual([...pids.values()].sort());
    expect([...byProfile.values()].every((n) => n === 1)).toBe(true);
  }, 170_000);
});
