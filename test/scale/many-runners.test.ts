// Two journey runners (`cdp start journeys`, separate processes) in one consumer group,
// sharing the timer queue; while the people's waits are ending, one is SIGKILLed and a
// third started. Every run ends once (the per-node counts are exact), every timer fires
// once (one send per person after the wait, under one webhook-id) and no timer is left.
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

const PEOPLE = 400;
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
  cfg = testConfig({ CDP_TOPIC_PARTITIONS: '6' });
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

describe('two journey runners, one killed while timers fire and one added', () => {
  it('ends every run once and fires every timer once', async () => {
    const ws = cfg.keys.workspace;
    const id = uniqueId('jrn_');
    const seg = uniqueId('seg_');
    const at = new Date().toISOString();
    const def: JourneyDefinition = {
      id,
      workspaceId: ws,
      name: 'scale',
      entry: { segment: seg, on: 'enter' },
      nodes: [
        { id: 'w1', type: 'wait', for: 'PT3S', next: 's1' },
        {
          id: 's1',
          type: 'send',
          channel: 'webhook',
          webhook: { url: `${receiver.url}?k=s1`, secret: 'whsec_AAAA' },
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

    const first = startRunner();
    startRunner();
    const producer = clients.kafka().producer();
    await producer.connect();
    try {
      // in two halves 1.5 s apart: the second half's waits end 1.5 s after the first's, so the
      // kill below (at the first ended wait) lands with work left however loaded the machine
      const entries = Array.from({ length: PEOPLE }, (_, i) => {
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
      });
      const segmentChanges = topics(cfg.kafka.topicPrefix).segmentChanges;
      await producer.send(segmentChanges, entries.slice(0, PEOPLE / 2));
      await new Promise((r) => setTimeout(r, 1500));
      await producer.send(segmentChanges, entries.slice(PEOPLE / 2));
    } finally {
      await producer.disconnect();
    }
    // once the first waits have ended: kill one runner while the rest fire
    await eventually('a first wait ended', async () => (await stat('passed:w1')) > 0, 120_000, 1);
    await kill(first);
    const waitedAtKill = await stat('passed:w1');
    startRunner();
    expect(waitedAtKill, `${waitedAtKill} waits had ended at the kill`).toBeLessThan(PEOPLE);

    await eventually(
      'every run completed',
      async () => (await stat('ended:completed')) === PEOPLE,
      180_000,
      250,
    );
    await eventually('every send delivered', () => receiver.deliveries.length >= PEOPLE, 60_000, 250);
    await new Promise((r) => setTimeout(r, 3000)); // a second firing would show now

    expect(await redis.hgetall(statsKey)).toMatchObject({
      entered: String(PEOPLE),
      'ended:completed': String(PEOPLE),
      'passed:w1': String(PEOPLE),
      'passed:s1': String(PEOPLE),
      'now:w1': '0',
      'now:s1': '0',
    });
    // one send per person after the wait, each under its own webhook-id; a repeat only
    // under the same id (a send in flight when its process died)
    const ids = new Map<string, Set<string>>();
    for (const d of receiver.deliveries) {
      const person = (JSON.parse(d.body) as { profileId: string }).profileId;
      const s = ids.get(person) ?? new Set<string>();
      s.add(String(d.headers['webhook-id']));
      ids.set(person, s);
    }
    expect(ids.size).toBe(PEOPLE);
    for (const [person, s] of ids) expect(s.size, person).toBe(1);
    for (let i = 0; i < PEOPLE; i++)
      expect(
        await redis.hmget(workspaceKeys(cfg.redis.prefix, ws).journeyRun(id, `p${i}`), 'run', 'state', 'end'),
      ).toEqual(['1', 'ended', 'completed']);
    expect(await redis.zcard(globalKeys(cfg.redis.prefix).journeysDue)).toBe(0);
    console.info(
      `many-runners: ${waitedAtKill} waits ended at the kill, ${receiver.deliveries.length} deliveries`,
    );
  }, 400_000);
});
