// Windowed segment rules with an injected clock, against real Redis and Kafka: entry on
// the nth event, exit when the window passes with no new event (timer), property
// filters, replays, and timers that survive a processor restart.
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SegmentRegistry } from '../../processor/segment-registry.ts';
import { startTimerWorker } from '../../processor/timers.ts';
import type { Config } from '../../runtime/config.ts';
import type { Producer } from '../../runtime/kafka/index.ts';
import { createLogger } from '../../runtime/log.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import type { SegmentDefinition } from '../../schemas/segment.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';
import { topics } from '../../schemas/topics.ts';
import { BATCH_CTX, eventBatch, segmentDef, streamEvent } from '../fixtures.ts';
import { eventually, processorOutputs, testConfig, testProcessor } from '../harness.ts';

const log = createLogger({ level: 'silent', name: 'test' });
const T0 = Date.parse('2026-06-01T00:00:00Z');
let cfg: Config;
let redis: Redis;
let producer: Producer;
const changes: SegmentChange[] = [];
let stopConsumer: () => Promise<void>;

const seg = (id: string, rule: unknown): SegmentDefinition => segmentDef(id, rule);

const SEGMENTS = [
  seg('two_in_20s', { '>=': [{ event_count: ['Order', '20s'] }, 2] }),
  seg('big_order_1h', { '>=': [{ event_count: ['Order', '1h', { '>': [{ var: 'revenue' }, 100] }] }, 1] }),
];

function harness(clock: { t: number }) {
  const registry = new SegmentRegistry(log);
  registry.replace(SEGMENTS);
  const now = () => new Date(clock.t);
  const processor = testProcessor(cfg, { redis, producer, registry, log, now });
  const timers = startTimerWorker({
    redis,
    prefix: cfg.redis.prefix,
    reevaluate: processor.reevaluate,
    log,
    now,
    autostart: false,
  });
  let offset = 0;
  const send = async (e: Partial<NormalizedEvent>) => {
    const ev = streamEvent(e, clock.t);
    await processor.handleBatch(eventBatch([ev], offset++), BATCH_CTX);
    return ev;
  };
  return { send, timers };
}

/** Waits until `n` changes have arrived, then returns them as "segment:type" strings. */
async function changesUpTo(n: number): Promise<string[]> {
  await eventually(`${n} segment changes`, () => changes.length >= n, 15_000);
  await new Promise((r) => setTimeout(r, 150)); // and no more than n
  return changes.map((c) => `${c.segmentId}:${c.type}`);
}

beforeAll(async () => {
  cfg = testConfig();
  redis = new Redis(cfg.redis.url);
  producer = await processorOutputs(cfg, log);
  const reader = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING }).consumer({
    groupId: `${cfg.kafka.topicPrefix}-read`,
  });
  await reader.connect();
  await reader.subscribe({ topic: topics(cfg.kafka.topicPrefix).segmentChanges, fromBeginning: true });
  await reader.run({
    eachMessage: async ({ message }) => void changes.push(JSON.parse(String(message.value))),
  });
  stopConsumer = () => reader.disconnect();
});

afterAll(async () => {
  await stopConsumer?.();
  await producer?.disconnect();
  redis?.disconnect();
});

describe('windowed segments with an injected clock', () => {
  it('enter on the nth event, leave when the window passes, also across a restart', async () => {
    const clock = { t: T0 };
    const a = harness(clock);

    await a.send({ event: 'Order', properties: { revenue: 50 } });
    clock.t = T0 + 5_000;
    const replay = await a.send({ event: 'Order', properties: { revenue: 150 } });
    expect(await changesUpTo(2)).toEqual(['two_in_20s:entered', 'big_order_1h:entered']);
    expect(changes.every((c) => c.epoch === 1)).toBe(true);

    // replaying the second order changes nothing (dedup, and the count holds it once)
    clock.t = T0 + 6_000;
    await a.send({ ...replay });
    expect(await a.timers.tick()).toBe(0); // nothing due yet
    expect(await changesUpTo(2)).toHaveLength(2);

    // 20 s after the first order it leaves the window: the count drops to 1, no event needed
    clock.t = T0 + 19_999;
    expect(await a.timers.tick()).toBe(0);
    clock.t = T0 + 20_000;
    expect(await a.timers.tick()).toBe(1);
    expect((await changesUpTo(3)).slice(2)).toEqual(['two_in_20s:exited']);
    const exit = changes[2]!;
    expect(exit).toMatchObject({ epoch: 2, messageId: null });

    // a "restart": a new processor and timer worker; the pending timer is in Redis
    const b = harness(clock);
    clock.t = T0 + 5_000 + 3_600_000;
    expect(await b.timers.tick()).toBe(1);
    expect((await changesUpTo(4)).slice(3)).toEqual(['big_order_1h:exited']);

    // nothing left to fire
    clock.t += 86_400_000;
    expect(await b.timers.tick()).toBe(0);
  });
});
