// Both Kafka drivers against the real broker, through the one interface the services use.
import { describe, expect, inject, it } from 'vitest';
import { eventually, uniqueId } from '../../test/harness.ts';
import { createLogger } from '../log.ts';
import { createKafka } from './index.ts';
import type { IncomingMessage } from './types.ts';

const log = createLogger({ level: 'silent', name: 'test' });
const client = (driver: 'kafkajs' | 'rdkafka') =>
  createKafka({ brokers: inject('kafkaBrokers').split(','), driver, clientId: 'test' }, log);

describe.each(['kafkajs', 'rdkafka'] as const)('%s driver', (driver) => {
  it('fails its ping within a bounded time when no broker answers', async () => {
    const dead = createKafka({ brokers: ['127.0.0.1:1'], driver, clientId: 'test' }, log).admin();
    const started = Date.now();
    await expect(
      Promise.race([dead.ping(), new Promise((_, r) => setTimeout(() => r(new Error('hung')), 8000))]),
    ).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(8000);
    await dead.disconnect().catch(() => {});
  }, 20_000);

  it('produces with acks, consumes in batches, retries a failed batch and commits after it', async () => {
    const kafka = client(driver);
    const topic = uniqueId(`drv-${driver}-`);
    const admin = kafka.admin();
    await admin.ping(); // what /readyz calls
    await admin.ensureTopics([{ topic, partitions: 3 }]);
    await admin.ensureTopics([{ topic, partitions: 3 }]); // idempotent
    const producer = kafka.producer();
    await producer.send(
      topic,
      Array.from({ length: 60 }, (_, i) => ({
        key: `k${i % 7}`,
        value: JSON.stringify({ i }),
        headers: { h: `v${i}` },
      })),
    );

    const group = uniqueId('g-');
    const got: IncomingMessage[] = [];
    let failures = 0;
    const consumer = kafka.consumer({ groupId: group, topics: [topic], maxBatchSize: 10 });
    await consumer.run(async (batch) => {
      if (failures === 0) {
        failures++;
        throw new Error('transient'); // the same batch must come again
      }
      got.push(...batch.messages);
    });
    await eventually(
      'all 60 messages',
      () => new Set(got.map((m) => JSON.parse(String(m.value)).i)).size === 60,
      30_000,
    );
    expect(failures).toBe(1);
    const first = got.find((m) => JSON.parse(String(m.value)).i === 5)!;
    expect(first.key).toBe('k5');
    expect(first.headers.h).toBe('v5');
    // one key, one partition
    const byKey = new Map<string, Set<number>>();
    for (const m of got) byKey.set(m.key!, (byKey.get(m.key!) ?? new Set()).add(m.partition));
    for (const parts of byKey.values()) expect(parts.size).toBe(1);
    await consumer.disconnect();

    // committed: a new member of the group sees only what comes after
    const later: IncomingMessage[] = [];
    const again = kafka.consumer({ groupId: group, topics: [topic] });
    await again.run(async (batch) => {
      later.push(...batch.messages);
    });
    await producer.send(topic, [{ key: 'k1', value: JSON.stringify({ i: 999 }) }]);
    await eventually(
      'the new message',
      () => later.some((m) => JSON.parse(String(m.value)).i === 999),
      30_000,
    );
    expect(later.filter((m) => JSON.parse(String(m.value)).i !== 999)).toEqual([]);
    await again.disconnect();
    await producer.disconnect();
    await admin.disconnect();
  }, 90_000);

  it('reads on while a batch answered with effects is under way, and commits only what they finished', async () => {
    const kafka = client(driver);
    const topic = uniqueId(`drv-effects-${driver}-`);
    const admin = kafka.admin();
    await admin.ensureTopics([{ topic, partitions: 1 }]);
    const producer = kafka.producer();
    await producer.send(
      topic,
      Array.from({ length: 30 }, (_, i) => ({ key: 'k', value: JSON.stringify({ i }) })),
    );
    const group = uniqueId('g-');
    const handled: number[] = [];
    let firstBatchEnd = -1;
    const consumer = kafka.consumer({ groupId: group, topics: [topic], maxBatchSize: 10 });
    await consumer.run(async (batch) => {
      const ids = batch.messages.map((m) => JSON.parse(String(m.value)).i as number);
      handled.push(...ids);
      // the first batch's effects are done; every later batch's never finish
      if (firstBatchEnd === -1) {
        firstBatchEnd = ids.at(-1)!;
        return { effects: Promise.resolve() };
      }
      return { effects: new Promise<void>(() => {}) };
    });
    // handed over without waiting for the earlier batches' effects
    await eventually('all 30 handed over', () => handled.length >= 30, 30_000);
    expect(firstBatchEnd).toBeLessThan(29);
    await consumer.disconnect();

    const again: number[] = [];
    const next = kafka.consumer({ groupId: group, topics: [topic] });
    await next.run(async (batch) => {
      again.push(...batch.messages.map((m) => JSON.parse(String(m.value)).i as number));
    });
    await eventually('the uncommitted rest again', () => again.includes(29), 30_000);
    // everything after the first batch comes again, nothing of it
    expect(Math.min(...again)).toBe(firstBatchEnd + 1);
    await next.disconnect();
    await producer.disconnect();
    await admin.disconnect();
  }, 90_000);

  it('hands over a trickle as it comes, without waiting for a batch to fill', async () => {
    const kafka = client(driver);
    const topic = uniqueId(`drv-trickle-${driver}-`);
    const admin = kafka.admin();
    await admin.ensureTopics([{ topic, partitions: 1 }]);
    const producer = kafka.producer();
    await producer.connect();
    const handled: number[] = [];
    const consumer = kafka.consumer({ groupId: uniqueId('g-'), topics: [topic], maxBatchSize: 1000 });
    await consumer.run(async (batch) => {
      for (const m of batch.messages) handled.push(JSON.parse(String(m.value)).i);
    });
    await producer.send(topic, [{ key: 'k', value: JSON.stringify({ i: -1 }) }]);
    await eventually('the consumer is assigned and reading', () => handled.includes(-1), 30_000);
    // one message every 20 ms for 3 s: far fewer than a batch of 1000. The first of them must
    // be handled while the trickle still runs (rdkafka's consume(n) used to wait a timeout per
    // message until n had arrived)
    let produced = 0;
    let handledWhileProducing = 0;
    for (; produced < 150; produced++) {
      await producer.send(topic, [{ key: 'k', value: JSON.stringify({ i: produced }) }]);
      if (produced === 100) handledWhileProducing = handled.filter((i) => i >= 0).length;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(handledWhileProducing).toBeGreaterThan(50);
    await eventually('all of the trickle', () => handled.filter((i) => i >= 0).length === 150, 30_000);
    await consumer.disconnect();
    await producer.disconnect();
    await admin.disconnect();
  }, 90_000);
});

it('both drivers put a key on the same partition', async () => {
  const topic = uniqueId('drv-both-');
  const js = client('kafkajs');
  const rd = client('rdkafka');
  const admin = js.admin();
  await admin.ensureTopics([{ topic, partitions: 8 }]);
  const keys = Array.from({ length: 20 }, (_, i) => `ws:user-${i}`);
  const pj = js.producer();
  const pr = rd.producer();
  await pj.send(
    topic,
    keys.map((k) => ({ key: k, value: 'js' })),
  );
  await pr.send(
    topic,
    keys.map((k) => ({ key: k, value: 'rd' })),
  );
  const got: IncomingMessage[] = [];
  const c = js.consumer({ groupId: uniqueId('g-'), topics: [topic] });
  await c.run(async (b) => {
    got.push(...b.messages);
  });
  await eventually('40 messages', () => got.length >= 40, 30_000).catch((e) => {
    throw new Error(
      `${e.message}: got ${got.length}: ${JSON.stringify(got.map((m) => [m.key, String(m.value), m.partition]))}`,
    );
  });
  for (const k of keys) {
    const parts = new Set(got.filter((m) => m.key === k).map((m) => m.partition));
    expect(parts.size, k).toBe(1);
  }
  await c.disconnect();
  await pj.disconnect();
  await pr.disconnect();
  await admin.disconnect();
}, 90_000);

it('kafkajs keeps its group membership through a batch longer than the session timeout', async () => {
  const kafka = client('kafkajs');
  const topic = uniqueId('drv-slow-');
  const admin = kafka.admin();
  await admin.ensureTopics([{ topic, partitions: 1 }]);
  const producer = kafka.producer();
  await producer.send(topic, [{ key: 'k', value: 'slow' }]);
  const seen: string[] = [];
  const consumer = kafka.consumer({ groupId: uniqueId('g-'), topics: [topic] });
  await consumer.run(async (batch) => {
    for (const m of batch.messages) seen.push(m.offset);
    if (seen.length === 1) await new Promise((r) => setTimeout(r, 12_000)); // session timeout is 10 s
  });
  await eventually('the slow batch', () => seen.length >= 1, 30_000);
  await new Promise((r) => setTimeout(r, 14_000));
  await producer.send(topic, [{ key: 'k', value: 'after' }]);
  await eventually('the next message', () => seen.length >= 2, 30_000);
  // evicted mid-batch, the commit would fail and the slow message come again
  expect(seen).toEqual(['0', '1']);
  await consumer.disconnect();
  await producer.disconnect();
  await admin.disconnect();
}, 90_000);
