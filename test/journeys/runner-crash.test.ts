// The journey runner killed (SIGKILL) in the middle of its work, twice, and started again:
// once while it enters people (consuming segment changes), once while a batch of their
// timers fires. The runner is a real child process (`cdp start journeys`), so the kills
// land wherever they land; the activation worker runs in this process. Afterwards every
// run is accounted for: each person's waits ended once and each send step was delivered
// exactly once (one webhook per person and step), the per-node counts are exact and no
// run is left behind (none active, no timer pending).
//
// A kill while entering leaves people whose run was created but whose first step was not
// taken yet; the entry, delivered again to the next runner, must take it (it is not a new
// entry: the run is there already).
import { type ChildProcess, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { journeyTopicSpecs } from '../../activation/journeys/start-journeys.ts';
import { activationTopicSpecs, startActivation } from '../../activation/main.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { RunningService } from '../../runtime/service.ts';
import type { JourneyDefinition } from '../../schemas/journey.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, serviceEnv, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

const PEOPLE = 300;
const ROOT = new URL('../..', import.meta.url).pathname;

let cfg: Config;
let clients: Clients;
let redis: Redis;
let activation: RunningService;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
const children = new Set<ChildProcess>();

function startRunner(): ChildProcess {
  const child = spawn(process.execPath, ['bin/cdp.js', 'start', 'journeys'], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...serviceEnv(cfg.kafka.topicPrefix, {
        CDP_REDIS_PREFIX: cfg.redis.prefix,
        CDP_TOPIC_PARTITIONS: String(cfg.kafka.partitions),
        CDP_DEFAULT_WORKSPACE: cfg.keys.workspace,
        LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
      }),
    },
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

beforeAll(async () => {
  cfg = testConfig();
  const log = testLogger(cfg);
  clients = createClients(cfg, log);
  redis = new Redis(cfg.redis.url);
  receiver = await startWebhookReceiver();
  const admin = clients.kafka().admin();
  const specs = [...journeyTopicSpecs(cfg), ...activationTopicSpecs(cfg)];
  await admin.ensureTopics(specs.filter((s, i) => specs.findIndex((o) => o.topic === s.topic) === i));
  await admin.disconnect();
  activation = await startActivation(cfg, clients, log.child({ service: 'activation' }));
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await activation?.stop();
  await clients?.close();
  redis?.disconnect();
  await receiver?.close();
});

describe('journey runner killed mid-work', () => {
  it('kill -9 while entering and while timers fire: every wait ends once, every send goes once, no run lost', async () => {
    const ws = cfg.keys.workspace;
    const id = uniqueId('jrn_');
    const seg = uniqueId('seg_');
    const at = new Date().toISOString();
    const def: JourneyDefinition = {
      id,
      workspaceId: ws,
      name: 'crash',
      entry: { segment: seg, on: 'enter' },
      nodes: [
        // a send first: a kill while entering can land between its job and its move
        {
          id: 's0',
          type: 'send',
          channel: 'webhook',
          webhook: { url: `${receiver.url}?k=s0`, secret: 'whsec_AAAA' },
          next: 'w1',
        },
        { id: 'w1', type: 'wait', for: 'PT3S', next: 's1' },
        {
          id: 's1',
          type: 'send',
          channel: 'webhook',
          webhook: { url: `${receiver.url}?k=s1`, secret: 'whsec_AAAA' },
          next: 'w2',
        },
        { id: 'w2', type: 'wait', for: 'PT3S', next: 's2' },
        {
          id: 's2',
          type: 'send',
          channel: 'webhook',
          webhook: { url: `${receiver.url}?k=s2`, secret: 'whsec_AAAA' },
        },
      ],
      status: 'active',
      version: 1,
      createdAt: at,
      updatedAt: at,
    };
    await new DefinitionStore(redis, cfg.redis.prefix).putMany([
      { kind: 'journeys', def },
      { kind: 'journeyVersions', def, field: `${id}@1` },
    ]);
    const statsKey = workspaceKeys(cfg.redis.prefix, ws).journeyStats(id);
    const stat = async (f: string) => Number((await redis.hget(statsKey, f)) ?? 0);

    // first runner: killed while it enters people
    const first = startRunner();
    const producer = clients.kafka().producer();
    await producer.connect();
    try {
      await producer.send(
        topics(cfg.kafka.topicPrefix).segmentChanges,
        Array.from({ length: PEOPLE }, (_, i) => {
          const c: SegmentChange = {
            workspaceId: ws,
            profileId: `p${i}`,
            segmentId: seg,
            segmentVersion: 1,
            type: 'entered',
            epoch: 1,
            messageId: `m${i}`,
            occurredAt: at,
            userId: `u${i}`,
            traits: {},
          };
          return { key: `${ws}:p${i}`, value: JSON.stringify(c) };
        }),
      );
    } finally {
      await producer.disconnect();
    }
    // once the first sends arrive: people are entering, one wave after another
    await eventually('the first send', () => receiver.deliveries.length > 0, 90_000, 1);
    await kill(first);
    const enteredAtKill = await stat('entered');

    // second runner: killed while the first waits end (a batch of timers firing)
    const g = globalKeys(cfg.redis.prefix);
    const second = startRunner();
    // the first of a batch of waits has ended: the others are being worked on (their sends
    // produced, their moves not yet made)
    await eventually('a first wait ended', async () => (await stat('passed:w1')) > 0, 90_000, 1);
    await kill(second);
    const waitedAtKill = await stat('passed:w1');

    // the kills landed while there was work left (else this test would prove nothing):
    // people not yet entered, and timers claimed but not all fired
    expect(enteredAtKill, `${enteredAtKill} had entered`).toBeLessThan(PEOPLE);
    expect(waitedAtKill, `${waitedAtKill} waits had ended`).toBeLessThan(PEOPLE);

    // a third runner finishes (timers claimed by a dead runner come back when their lease
    // ends); a run lost shows in the counts below
    const third = startRunner();
    try {
      await eventually(
        'every run completed',
        async () => (await stat('ended:completed')) === PEOPLE,
        100_000,
        250,
      ).catch(() => {});
      await eventually('every send delivered', () => receiver.deliveries.length >= 3 * PEOPLE, 10_000).catch(
        () => {},
      );
      await new Promise((r) => setTimeout(r, 2000)); // a second delivery would come now
    } finally {
      await kill(third);
    }

    const stats = await redis.hgetall(statsKey);
    expect(stats).toMatchObject({
      entered: String(PEOPLE),
      'ended:completed': String(PEOPLE),
      ...Object.fromEntries(
        ['s0', 'w1', 's1', 'w2', 's2'].flatMap((n) => [
          [`passed:${n}`, String(PEOPLE)],
          [`now:${n}`, '0'],
        ]),
      ),
    });
    // one delivery per person and send step, each with its own webhook-id
    const seen = new Map<string, number>();
    for (const d of receiver.deliveries) {
      const k = `${(JSON.parse(d.body) as { profileId: string }).profileId} ${d.url?.split('k=')[1]}`;
      seen.set(k, (seen.get(k) ?? 0) + 1);
    }
    const want = Array.from({ length: PEOPLE }, (_, i) => [`p${i} s0`, `p${i} s1`, `p${i} s2`]).flat();
    expect([...seen.keys()].sort()).toEqual(want.sort());
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect(new Set(receiver.deliveries.map((d) => d.headers['webhook-id'])).size).toBe(3 * PEOPLE);
    // every run ended once, where it should; no timer left
    for (let i = 0; i < PEOPLE; i++)
      expect(
        await redis.hmget(workspaceKeys(cfg.redis.prefix, ws).journeyRun(id, `p${i}`), 'run', 'state', 'end'),
      ).toEqual(['1', 'ended', 'completed']);
    expect(await redis.zcard(g.journeysDue)).toBe(0);
  }, 300_000);
});
