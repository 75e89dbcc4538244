// The processor killed (SIGKILL) in the middle of its work and started again must end in
// the same state as a clean run over the same events: identities, traits, counted events
// (nothing counted twice), memberships; and every segment transition it recorded was
// published (the epochs on cdp.segment-changes have no gap).
//
// Two runs over identical events, each with its own topic and Redis prefix: a clean one,
// and one whose processor process is killed twice while it works. The processor runs as a
// real child process (`cdp start processor`), so the kill lands wherever it lands.
import { type ChildProcess, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import type { SegmentDefinition } from '../../schemas/segment.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';
import { topics } from '../../schemas/topics.ts';
import { segmentDef } from '../fixtures.ts';
import { eventually, readTopic, serviceEnv, uniqueId } from '../harness.ts';
import { snapshotProfiles } from '../profile-snapshot.ts';

const WS = 'crash';
const PEOPLE = 400;
const PARTITIONS = 4;
const ROOT = new URL('../..', import.meta.url).pathname;

let redis: Redis;
let kafka: Kafka;
const children = new Set<ChildProcess>();

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  kafka = new Kafka({ brokers: inject('kafkaBrokers').split(','), logLevel: logLevel.NOTHING });
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  redis.disconnect();
});

const seg = (id: string, rule: unknown): SegmentDefinition => segmentDef(id, rule, { workspaceId: WS });
const SEGMENTS = [
  seg('buyers', { '>=': [{ event_count: ['Order', '30d'] }, 2] }),
  seg('big', { '>=': [{ event_count: ['Order', '30d', { '>=': [{ var: 'revenue' }, 50] }] }, 1] }),
  seg('pro', { '==': [{ var: 'traits.plan' }, 'pro'] }),
  seg('pro_buyers', { and: [{ in_segment: ['pro'] }, { in_segment: ['buyers'] }] }),
];

/** The same events for both runs: two devices per person, orders, identifies, replays. */
function events(): Array<{ key: string; value: string }> {
  const out: Array<{ key: string; value: string }> = [];
  const t0 = Date.now() - 3_600_000;
  let n = 0;
  const add = (e: Record<string, unknown>, messageId = `m${n}`) => {
    // unique times: last-write-wins never ties, whatever order partitions interleave in
    const timestamp = new Date(t0 + n++ * 7).toISOString();
    const id = (e.userId ?? e.anonymousId) as string;
    const full = {
      workspaceId: WS,
      messageId,
      userId: null,
      anonymousId: null,
      properties: {},
      traits: {},
      context: {},
      integrations: {},
      timestamp,
      receivedAt: timestamp,
      ...e,
    };
    out.push({ key: `${WS}:${id}`, value: JSON.stringify(full) });
    return full;
  };
  for (let i = 0; i < PEOPLE; i++) {
    const [a, b, u] = [`a${i}-laptop`, `a${i}-phone`, `u${i}`];
    add({ type: 'page', anonymousId: a, name: 'Home' });
    add({ type: 'page', anonymousId: b, name: 'Home' });
    const order = add({ type: 'track', anonymousId: a, event: 'Order', properties: { revenue: i % 90 } });
    add({ type: 'identify', userId: u, anonymousId: a, traits: { plan: 'free', n: i } });
    if (i % 3 === 0) add({ type: 'track', anonymousId: b, event: 'Order', properties: { revenue: 10 } });
    add({ type: 'identify', userId: u, anonymousId: b, traits: { plan: i % 2 ? 'pro' : 'free' } });
    if (i % 4 === 0) add({ type: 'track', userId: u, event: 'Order', properties: { revenue: 70 } });
    // a replay of the first order (same messageId): must not count again
    out.push({ key: `${WS}:${a}`, value: JSON.stringify(order) });
  }
  return out;
}

interface Run {
  prefix: string;
  env: Record<string, string>;
}

async function prepare(): Promise<Run> {
  const prefix = uniqueId('crash');
  const t = topics(prefix);
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic: t.events, numPartitions: PARTITIONS },
      { topic: t.segmentChanges, numPartitions: PARTITIONS },
      { topic: t.identity, numPartitions: PARTITIONS },
      { topic: t.deadLetter, numPartitions: 1 },
    ],
    waitForLeaders: true,
  });
  await admin.disconnect();
  const store = new DefinitionStore(redis, prefix);
  for (const s of SEGMENTS) await store.put('segments', s);
  const producer = kafka.producer();
  await producer.connect();
  const all = events();
  for (let i = 0; i < all.length; i += 500)
    await producer.send({ topic: t.events, messages: all.slice(i, i + 500), acks: -1 });
  await producer.disconnect();
  return {
    prefix,
    env: serviceEnv(prefix, { CDP_TOPIC_PARTITIONS: String(PARTITIONS), CDP_DEFAULT_WORKSPACE: WS }),
  };
}

function startProcessor(run: Run): ChildProcess {
  const child = spawn(process.execPath, ['bin/cdp.js', 'start', 'processor'], {
    cwd: ROOT,
    env: { ...process.env, ...run.env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** The identity-graph version: grows with every link the processor makes, never goes back. */
const progress = (run: Run) => redis.get(`${run.prefix}:{${WS}}:idv`).then(Number);

/** Waits until the processor's group has committed the end of every partition. */
async function drained(run: Run): Promise<void> {
  const t = topics(run.prefix);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(t.events);
    await eventually(
      'the processor to commit every event',
      async () => {
        const [committed] = await admin.fetchOffsets({
          groupId: `${run.prefix}.cdp-processor`,
          topics: [t.events],
        });
        return ends.every(
          (e) => committed?.partitions.find((p) => p.partition === e.partition)?.offset === e.offset,
        );
      },
      120_000,
      250,
    );
  } finally {
    await admin.disconnect();
  }
}

async function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

describe('processor crash', () => {
  it('killed mid-work and restarted, ends where a clean run ends, counting nothing twice', async () => {
    const [clean, crashed] = [await prepare(), await prepare()];

    const c = startProcessor(clean);
    await drained(clean);
    await stop(c, 'SIGTERM');
    const total = await progress(clean);

    // the second run is killed twice while it works (at a quarter and at 60% of the links
    // the clean run made), then left to finish
    const killedAt: number[] = [];
    for (const share of [0.25, 0.6]) {
      const p = startProcessor(crashed);
      await eventually('progress', async () => (await progress(crashed)) >= total * share, 60_000, 5);
      await stop(p, 'SIGKILL');
      killedAt.push(await progress(crashed));
    }
    const p = startProcessor(crashed);
    await drained(crashed);
    await stop(p, 'SIGTERM');
    // the kills landed while there was work left (else this test would prove nothing)
    for (const at of killedAt) expect(at).toBeLessThan(total);

    const a = await snapshotProfiles(redis, workspaceKeys(clean.prefix, WS));
    const b = await snapshotProfiles(redis, workspaceKeys(crashed.prefix, WS));
    expect(a.people.size).toBe(PEOPLE); // both devices and the user merged into one person each
    expect(b.people.size).toBe(PEOPLE);
    for (const [ids, state] of a.people) expect(b.people.get(ids), ids).toEqual(state);

    // every recorded transition of a live profile was published: epochs 1..n, no gap
    const changes = await readTopic<SegmentChange>(
      inject('kafkaBrokers').split(','),
      topics(crashed.prefix).segmentChanges,
      `${crashed.prefix}-verify`,
    );
    const expected = [...b.epochs.values()].reduce(
      (n, e) => n + Object.values(e).reduce((x, y) => x + y, 0),
      0,
    );
    const published = () => {
      const seen = new Map<string, Set<number>>();
      for (const { value } of changes.seen) {
        const k = `${value.profileId}/${value.segmentId}`;
        const s = seen.get(k) ?? new Set<number>();
        s.add(value.epoch);
        seen.set(k, s);
      }
      return seen;
    };
    await eventually(
      'the segment changes',
      () => [...published().values()].reduce((n, s) => n + s.size, 0) >= expected,
      30_000,
    );
    await changes.stop();
    const seen = published();
    for (const [pid, segs] of b.epochs)
      for (const [sid, epoch] of Object.entries(segs))
        expect(
          [...(seen.get(`${pid}/${sid}`) ?? [])].sort((x, y) => x - y),
          `${pid}/${sid}`,
        ).toEqual(Array.from({ length: epoch }, (_, i) => i + 1));
  }, 300_000);
});
