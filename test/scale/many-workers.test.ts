// Two processors and two activation workers, each a separate `cdp start ...` process, in one
// consumer group each; mid-run one of each is SIGKILLed and a new one of each started.
// Afterwards every person is one profile with all their identifiers (merges right), every
// order counted once, every segment transition published with epochs 1..n (no gap, no
// duplicate transition), and every entry sent once: one distinct webhook-id per entered
// change, a repeated delivery only ever under the same webhook-id (a send in flight when
// its worker died, retried for the receiver to drop).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';
import { topics } from '../../schemas/topics.ts';
import { segmentDef } from '../fixtures.ts';
import { eventually, readTopic, serviceEnv, uniqueId } from '../harness.ts';
import { snapshotProfiles } from '../profile-snapshot.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

const WS = 'scale';
const PEOPLE = 240;
const WAVES = 6;
const PARTITIONS = 6;
const SENDS_IN_FLIGHT = 16;
const ROOT = new URL('../..', import.meta.url).pathname;
const prefix = uniqueId('mw');
const t = topics(prefix);
const env = serviceEnv(prefix, {
  CDP_TOPIC_PARTITIONS: String(PARTITIONS),
  CDP_DEFAULT_WORKSPACE: WS,
  // a send claimed by a killed worker is taken over after this
  CDP_ACTIVATION_CLAIM_LEASE_MS: '3000',
  // sends in flight per worker: the most a SIGKILLed worker can leave delivered but unrecorded
  CDP_ACTIVATION_CONCURRENCY: String(SENDS_IN_FLIGHT),
  CDP_WEBHOOK_TIMEOUT_MS: '2500',
  CDP_CHANNEL_TIMEOUT_MS: '2500',
});

let redis: Redis;
let kafka: Kafka;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  kafka = new Kafka({ brokers: inject('kafkaBrokers').split(','), logLevel: logLevel.NOTHING });
  receiver = await startWebhookReceiver();
  const defs = new DefinitionStore(redis, prefix);
  await defs.put(
    'segments',
    segmentDef('buyers', { '>=': [{ event_count: ['Order', '30d'] }, 1] }, { workspaceId: WS }),
  );
  const at = new Date().toISOString();
  await defs.put('campaigns', {
    id: 'cmp_scale',
    workspaceId: WS,
    name: 'scale',
    segmentId: 'buyers',
    on: 'enter',
    channel: 'webhook',
    webhook: { url: receiver.url, secret: 'whsec_AAAA' },
    status: 'active',
    version: 1,
    createdAt: at,
    updatedAt: at,
  });
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  redis?.disconnect();
  await receiver?.close();
});

function start(service: 'processor' | 'activation'): ChildProcess {
  const child = spawn(process.execPath, ['bin/cdp.js', 'start', service], {
    cwd: ROOT,
    // each process its own data directory (chDB takes one process per directory)
    env: { ...process.env, ...env, CDP_DATA_DIR: mkdtempSync(join(tmpdir(), 'cdp-scale-')) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

const groups = { processor: `${prefix}.cdp-processor`, activation: `${prefix}.cdp-activation` };

/** Waits until `n` members hold the group's partitions (a stable group, every member assigned). */
async function members(group: string, n: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await eventually(
      `${n} members in ${group}`,
      async () => {
        const {
          groups: [g],
        } = await admin.describeGroups([group]);
        return g?.state === 'Stable' && g.members.length === n;
      },
      120_000,
      500,
    );
  } finally {
    await admin.disconnect();
  }
}

/** Messages of the processor's input not yet committed by its group. */
async function backlog(): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(t.events);
    const [committed] = await admin.fetchOffsets({ groupId: groups.processor, topics: [t.events] });
    return ends.reduce((sum, e) => {
      const c = Number(committed?.partitions.find((p) => p.partition === e.partition)?.offset ?? -1);
      return sum + Number(e.offset) - Math.max(0, c);
    }, 0);
  } finally {
    await admin.disconnect();
  }
}

/** Person i's events, spread over the waves: two devices, orders, identifies (merges), a replay. */
function wave(w: number): Array<{ key: string; value: string }> {
  const out: Array<{ key: string; value: string }> = [];
  const t0 = Date.now() - 3_600_000;
  for (let i = w; i < PEOPLE; i += WAVES) {
    const [a, b, u] = [`a${i}`, `b${i}`, `u${i}`];
    let n = 0;
    const add = (e: Record<string, unknown>, messageId = `m${i}-${n}`) => {
      const timestamp = new Date(t0 + i * 100 + n++).toISOString();
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
      out.push({ key: `${WS}:${(e.userId ?? e.anonymousId) as string}`, value: JSON.stringify(full) });
      return full;
    };
    add({ type: 'page', anonymousId: a, name: 'Home' });
    const order = add({ type: 'track', anonymousId: a, event: 'Order', properties: { revenue: 5 } });
    add({ type: 'page', anonymousId: b, name: 'Home' });
    if (i % 2 === 0) add({ type: 'track', anonymousId: b, event: 'Order', properties: { revenue: 7 } });
    add({ type: 'identify', userId: u, anonymousId: a, traits: { n: i } });
    add({ type: 'identify', userId: u, anonymousId: b, traits: {} });
    if (i % 3 === 0) add({ type: 'track', userId: u, event: 'Order', properties: { revenue: 9 } });
    out.push({ key: `${WS}:${a}`, value: JSON.stringify(order) }); // a replay: counts once
  }
  return out;
}

const ordersOf = (i: number) => 1 + (i % 2 === 0 ? 1 : 0) + (i % 3 === 0 ? 1 : 0);

describe('two processors and two activation workers, one of each killed and one added', () => {
  it('ends with merges, counts, epochs and sends exactly right', async () => {
    const p1 = start('processor');
    start('processor');
    const a1 = start('activation');
    start('activation');
    await members(groups.processor, 2);
    await members(groups.activation, 2);

    const producer = kafka.producer();
    await producer.connect();
    try {
      for (let w = 0; w < WAVES / 2; w++)
        await producer.send({ topic: t.events, acks: -1, messages: wave(w) });
      // kill one of each while the first half is being worked on
      await eventually('the first sends', () => receiver.deliveries.length > 0, 120_000, 20);
      const left = await backlog();
      await Promise.all([kill(p1), kill(a1)]);
      start('processor');
      start('activation');
      for (let w = WAVES / 2; w < WAVES; w++)
        await producer.send({ topic: t.events, acks: -1, messages: wave(w) });
      await members(groups.processor, 2);
      await members(groups.activation, 2);
      console.info(`many-workers: killed with ${left} events not committed by the processors`);
      expect(left, 'the kill landed while there was work left').toBeGreaterThan(0);
    } finally {
      await producer.disconnect();
    }
    await eventually(
      'the processors to commit every event',
      async () => (await backlog()) === 0,
      180_000,
      500,
    );

    // merges and counts: one profile per person, all identifiers, every order once
    const snap = await eventually(
      'every person merged and counted',
      async () => {
        const s = await snapshotProfiles(redis, workspaceKeys(prefix, WS));
        return s.people.size === PEOPLE ? s : undefined;
      },
      60_000,
      1000,
    );
    for (let i = 0; i < PEOPLE; i++) {
      const ids = [...snap.people.keys()].find((k) => k.split(',').includes(`user:u${i}`));
      expect(ids, `person ${i}`).toBeDefined();
      expect(
        ids!
          .split(',')
          .filter((x) => /^(anon|user):/.test(x))
          .sort(),
        `person ${i}`,
      ).toEqual([`anon:a${i}`, `anon:b${i}`, `user:u${i}`].sort());
      const state = snap.people.get(ids!) as { counts: Record<string, number>; member: string[] };
      expect(
        Object.values(state.counts).reduce((x, y) => x + y, 0),
        `person ${i} orders`,
      ).toBe(ordersOf(i));
      expect(state.member, `person ${i}`).toEqual(['buyers']);
    }

    // epochs: every transition of every profile published, 1..n, none twice in a different way
    const changes = await readTopic<SegmentChange>(
      inject('kafkaBrokers').split(','),
      t.segmentChanges,
      uniqueId('mw-read'),
    );
    let entered: Set<string>;
    try {
      entered = await eventually(
        'the segment changes',
        () => {
          const byProfile = new Map<string, Map<number, string>>();
          for (const { value: c } of changes.seen) {
            if (c.segmentId !== 'buyers') continue;
            const m = byProfile.get(c.profileId) ?? new Map<number, string>();
            const seen = m.get(c.epoch);
            if (seen !== undefined && seen !== c.type)
              throw new Error(`epoch ${c.epoch} of ${c.profileId} is ${seen} and ${c.type}`);
            m.set(c.epoch, c.type);
            byProfile.set(c.profileId, m);
          }
          for (const [pid, epochs] of snap.epochs) {
            const e = epochs.buyers ?? 0;
            const got = byProfile.get(pid);
            for (let k = 1; k <= e; k++) if (!got?.has(k)) return false;
          }
          const out = new Set<string>();
          for (const [pid, m] of byProfile)
            for (const [epoch, type] of m) if (type === 'entered') out.add(`${pid}:${epoch}`);
          return out;
        },
        60_000,
        500,
      );
    } finally {
      await changes.stop();
    }

    // sends: one distinct webhook-id per entered change, nothing more
    await eventually(
      'a delivery per entry',
      () => new Set(receiver.deliveries.map((d) => d.headers['webhook-id'])).size >= entered.size,
      120_000,
      500,
    );
    await new Promise((r) => setTimeout(r, 3000)); // nothing more may arrive (a fixed wait can only miss extras)
    const perId = new Map<string, Set<string>>();
    for (const d of receiver.deliveries) {
      const id = String(d.headers['webhook-id']);
      const bodies = perId.get(id) ?? new Set<string>();
      bodies.add(JSON.parse(d.body).profile?.id ?? JSON.parse(d.body).profileId ?? d.body);
      perId.set(id, bodies);
    }
    expect(perId.size).toBe(entered.size);
    for (const [id, bodies] of perId) expect(bodies.size, `webhook ${id} carried one send`).toBe(1);
    const repeated = receiver.deliveries.length - perId.size;
    console.info(
      `many-workers: ${entered.size} entries, ${receiver.deliveries.length} deliveries (${repeated} repeats under the same id)`,
    );
    // only a send in flight at the kill may be repeated: delivered, its claim not yet marked
    // sent (a loaded machine can have all of the killed worker's slots in that state; seen: 16
    // of 16), plus the rare send on a live worker that outlasted its 3 s claim lease
    expect(repeated).toBeLessThanOrEqual(SENDS_IN_FLIGHT + 4);
  }, 600_000);
});
