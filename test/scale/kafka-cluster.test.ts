// A 3-broker KRaft cluster (infra/local/kafka.ts startKafkaCluster), topics created by the
// services with replication 3 and min.insync.replicas=2, and ingest under load while one
// broker is SIGKILLed: every event ingest acknowledged reaches the profiles exactly once.
// A request ingest does not acknowledge (the cluster electing new leaders) is sent again
// with the same message ids, as a client would; the processor's dedup must keep those from
// counting twice, and nothing acknowledged may be lost with the broker.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import { type LocalKafkaCluster, startKafkaCluster } from '../../infra/local/kafka.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { topics } from '../../schemas/topics.ts';
import { segmentDef } from '../fixtures.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { snapshotProfiles } from '../profile-snapshot.ts';

const PEOPLE = 60;
const REQUESTS = 240; // of BATCH events each
const BATCH = 5;
const WS = uniqueId('ws_kc');

let dir: string;
let cluster: LocalKafkaCluster;
let cfg: Config;
let running: RunningServices | undefined;
let redis: Redis;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cdp-kafka-cluster-'));
  cluster = await startKafkaCluster({ dataDir: dir, brokers: 3, heapMb: 256 });
  cfg = testConfig({
    KAFKA_BROKERS: cluster.brokers.join(','),
    CDP_DEFAULT_WORKSPACE: WS,
    CDP_TOPIC_PARTITIONS: '6',
  });
  redis = new Redis(inject('redisUrl'));
  await new DefinitionStore(redis, cfg.redis.prefix).put(
    'segments',
    segmentDef('buyers', { '>=': [{ event_count: ['Order', '30d'] }, 1] }, { workspaceId: WS }),
  );
  running = await startServices(cfg, ['processor', 'ingest'], testLogger(cfg));
}, 300_000);

afterAll(async () => {
  const t = Date.now();
  await running?.stop();
  console.info(`kafka-cluster: services stopped in ${Date.now() - t} ms`);
  await cluster?.stop();
  console.info(`kafka-cluster: brokers stopped in ${Date.now() - t} ms`);
  redis?.disconnect();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

const kafka = () => new Kafka({ brokers: cluster.brokers, logLevel: logLevel.NOTHING });

/** The processor group's committed offsets against the events topic's ends, for a failure's message. */
async function lag(): Promise<string> {
  const admin = kafka().admin();
  try {
    await admin.connect();
    const topic = topics(cfg.kafka.topicPrefix).events;
    const prefix = cfg.kafka.topicPrefix ? `${cfg.kafka.topicPrefix}.` : '';
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId: `${prefix}cdp-processor`, topics: [topic] });
    const at = new Map(committed?.partitions.map((p) => [p.partition, p.offset]));
    return ends.map((e) => `p${e.partition} ${at.get(e.partition)}/${e.high}`).join(' ');
  } catch (err) {
    return `lag unknown: ${(err as Error).message}`;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

async function post(body: unknown): Promise<number> {
  try {
    const res = await fetch(`${running!.urls.ingest}/v1/batch`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    await res.text();
    return res.status;
  } catch {
    return 0; // no answer: not acknowledged
  }
}

describe('a 3-broker Kafka cluster losing a broker under ingest load', () => {
  it('creates the topics with 3 copies and min.insync.replicas=2', async () => {
    const admin = kafka().admin();
    await admin.connect();
    try {
      const t = topics(cfg.kafka.topicPrefix);
      const meta = await admin.fetchTopicMetadata({ topics: [t.events, t.segmentChanges, t.identity] });
      for (const topic of meta.topics)
        for (const p of topic.partitions) expect(p.replicas.length, `${topic.name}/${p.partitionId}`).toBe(3);
      const configs = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [t.events, t.segmentChanges, t.identity].map((name) => ({
          type: ConfigResourceTypes.TOPIC,
          name,
          configNames: ['min.insync.replicas'],
        })),
      });
      for (const r of configs.resources)
        expect(
          r.configEntries.find((e) => e.configName === 'min.insync.replicas')?.configValue,
          r.resourceName,
        ).toBe('2');
    } finally {
      await admin.disconnect();
    }
  });

  it('counts every acknowledged event once after a broker is SIGKILLed mid-load', async () => {
    const t0 = Date.now() - 60_000;
    const expected = new Map<string, number>(); // user -> Orders acknowledged
    let acknowledged = 0;
    let resent = 0;
    let ackedAfterKill = 0;
    let killed = false;
    const requests = Array.from({ length: REQUESTS }, (_, r) => ({
      batch: Array.from({ length: BATCH }, (_, j) => {
        const n = r * BATCH + j;
        return {
          type: 'track',
          event: 'Order',
          userId: `u${n % PEOPLE}`,
          messageId: `kc-${n}`,
          timestamp: new Date(t0 + n).toISOString(),
          properties: { n },
        };
      }),
    }));
    let next = 0;
    const worker = async () => {
      for (;;) {
        const r = next++;
        if (r >= REQUESTS) return;
        if (r === Math.floor(REQUESTS / 3) && !killed) {
          killed = true;
          // a third of the way in: a crash, no shutdown; leaders on it must be re-elected
          await cluster.kill(1);
        }
        const deadline = Date.now() + 120_000;
        for (let attempt = 0; ; attempt++) {
          const status = await post(requests[r]);
          if (status === 200) break;
          // a 4xx would be our bug, not the cluster's: fail on it
          expect([0, 500, 502, 503, 504], `request ${r} answered ${status}`).toContain(status);
          if (Date.now() > deadline) throw new Error(`request ${r} never acknowledged (last ${status})`);
          resent++;
          await new Promise((res) => setTimeout(res, Math.min(2000, 100 * 2 ** attempt)));
        }
        acknowledged += BATCH;
        if (killed) ackedAfterKill += BATCH;
        for (const e of requests[r]!.batch) expected.set(e.userId, (expected.get(e.userId) ?? 0) + 1);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    expect(killed).toBe(true);
    expect(acknowledged).toBe(REQUESTS * BATCH);
    expect(ackedAfterKill).toBeGreaterThan(REQUESTS * BATCH * 0.5);
    console.info(`kafka-cluster: ${acknowledged} events acknowledged, ${resent} requests resent`);

    const counts = async () => {
      const snap = await snapshotProfiles(redis, workspaceKeys(cfg.redis.prefix, WS));
      const got = new Map<string, number>();
      for (const [ids, state] of snap.people) {
        const user = /user:(u\d+)/.exec(ids)?.[1];
        const c = Object.values((state as { counts: Record<string, number> }).counts);
        if (user)
          got.set(
            user,
            c.reduce((a, b) => a + b, 0),
          );
      }
      return got;
    };
    // every acknowledged event arrives: wait until each person's count reaches it
    const got = await eventually(
      'every acknowledged Order counted',
      async () => {
        const g = await counts();
        if ([...expected].every(([u, n]) => (g.get(u) ?? 0) >= n)) return g;
        // the timeout's message says how far it got
        const have = [...g.values()].reduce((a, b) => a + b, 0);
        throw new Error(
          `${have} of ${acknowledged} counted, ${g.size} of ${expected.size} people; ${await lag()}`,
        );
      },
      180_000,
      1000,
    );
    expect(got.size).toBe(PEOPLE);
    // and exactly once: a resent request's events did not count twice
    for (const [u, n] of expected) expect(got.get(u), u).toBe(n);

    // the killed broker comes back on its data and rejoins: every partition has 3 in-sync
    // replicas again
    await cluster.restart(1);
    const admin = kafka().admin();
    await admin.connect();
    try {
      await eventually(
        'the restarted broker back in sync',
        async () => {
          const meta = await admin.fetchTopicMetadata({ topics: [topics(cfg.kafka.topicPrefix).events] });
          return meta.topics.every((tp) => tp.partitions.every((p) => p.isr.length === 3));
        },
        180_000,
        1000,
      );
    } finally {
      await admin.disconnect();
    }
  }, 420_000);
});
