// The destinations service killed (SIGKILL) mid-stream, in its own process, and started
// again: it resumes from its group's committed offsets, so every event reaches the receiver
// (at least once), a repeat carries the same `webhook-id` as the first delivery (receivers
// dedupe on it), and only what was under way or not yet committed at the kill is repeated,
// not the stream from its start.
import { type ChildProcess, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { webhookIdOf } from '../../destinations/worker.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { type DestinationDefinition, generateDestinationSecret } from '../../schemas/destination.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, serviceEnv, uniqueId } from '../harness.ts';
import { produceEvents, receiver } from './peers.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const WS = uniqueId('ws_');
let redis: Redis;
let kafka: Kafka;
const children = new Set<ChildProcess>();

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  kafka = new Kafka({ brokers: inject('kafkaBrokers').split(','), logLevel: logLevel.NOTHING });
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  redis?.disconnect();
});

function startService(env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['bin/cdp.js', 'start', 'destinations'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

async function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

describe('destinations service crash', () => {
  it('killed mid-stream and restarted, delivers every event, repeats with the same webhook-id', async () => {
    const prefix = uniqueId('t');
    const t = topics(prefix);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        { topic: t.events, numPartitions: 4 },
        { topic: t.activationLedger, numPartitions: 4 },
        { topic: t.deadLetter, numPartitions: 1 },
      ],
      waitForLeaders: true,
    });
    await admin.disconnect();
    const r = await receiver(200);
    const at = new Date().toISOString();
    const def: DestinationDefinition = {
      id: uniqueId('dst_'),
      workspaceId: WS,
      name: 'crash',
      type: 'http',
      source: { kind: 'events' },
      mapping: { user: 'userId', seq: 'properties.seq' },
      http: { url: r.url, secret: generateDestinationSecret(), timeoutMs: 2000 },
      status: 'active',
      version: 1,
      createdAt: at,
      updatedAt: at,
    };
    await new DefinitionStore(redis, prefix).put('destinations', def);
    const env = serviceEnv(prefix, {
      CDP_TOPIC_PARTITIONS: '4',
      CDP_DEFAULT_WORKSPACE: WS,
      CDP_WEBHOOK_ALLOW_LOOPBACK: 'true',
    });
    const producer = kafka.producer();
    await producer.connect();
    try {
      let service = startService(env);
      // the service consuming before the stream starts, so the kill lands on a flowing stream
      await eventually(
        'the service delivering',
        async () => {
          await produceEvents(producer, t.events, WS, [{ user: 'warm', event: 'Warm', properties: {} }]);
          return r.arrivals.length > 0;
        },
        90_000,
        1000,
      );
      const warm = r.arrivals.length;
      const USERS = 8;
      const ROUNDS = 40;
      const ids: string[] = [];
      const flow = (async () => {
        for (let seq = 0; seq < ROUNDS; seq++) {
          ids.push(
            ...(await produceEvents(
              producer,
              t.events,
              WS,
              Array.from({ length: USERS }, (_, u) => ({
                user: `c${u}`,
                event: 'Crash',
                properties: { seq },
              })),
            )),
          );
          await new Promise((res) => setTimeout(res, 100));
        }
      })();
      await eventually('a part delivered', () => r.arrivals.length >= warm + 200, 60_000, 10);
      const killedAt = Date.now();
      await kill(service, 'SIGKILL');
      const beforeKill = r.arrivals.length - warm;
      service = startService(env);
      await flow;
      const total = USERS * ROUNDS;
      await eventually(
        'every event delivered',
        () => new Set(r.arrivals.map((a) => (JSON.parse(a.body) as { id: string }).id)).size >= total,
        90_000,
      );
      await new Promise((res) => setTimeout(res, 1000));
      await kill(service, 'SIGTERM');
      // the kill landed mid-stream
      expect(beforeKill).toBeLessThan(total);

      const hooks = new Map<string, Set<string>>();
      const firstAt = new Map<string, number>();
      const stream = r.arrivals.filter((a) => !a.body.includes('"user":"warm"'));
      for (const a of stream) {
        const id = (JSON.parse(a.body) as { id: string }).id;
        hooks.set(id, (hooks.get(id) ?? new Set()).add(a.id));
        if (!firstAt.has(id)) firstAt.set(id, a.at);
      }
      expect(new Set(hooks.keys())).toEqual(new Set(ids));
      for (const [id, set] of hooks) expect([...set]).toEqual([webhookIdOf(def.id, [id])]);
      // repeats are of what the killed process had not committed (offsets go once a second)
      const counts = new Map<string, number>();
      for (const a of stream) counts.set(a.id, (counts.get(a.id) ?? 0) + 1);
      const repeated = [...hooks.keys()].filter((id) => (counts.get(webhookIdOf(def.id, [id])) ?? 0) > 1);
      for (const id of repeated) expect(firstAt.get(id)!).toBeGreaterThan(killedAt - 3000);
      expect(repeated.length).toBeLessThan(beforeKill);
      console.log(
        `crash: ${stream.length} deliveries of ${total} events, ${repeated.length} repeated (same webhook-id), ${beforeKill} before the kill`,
      );
    } finally {
      await producer.disconnect();
      await r.close();
    }
  }, 180_000);
});
