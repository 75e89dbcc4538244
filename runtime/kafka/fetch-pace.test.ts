// fetchPaceMs (kafkajs driver) against the real broker: a caught-up consumer waits a moment
// before its next fetch, so a trickle arrives in fewer, fuller batches, while a backlog is
// read without pauses and nothing is lost or reordered.
import { describe, expect, inject, it } from 'vitest';
import { eventually, uniqueId } from '../../test/harness.ts';
import { createLogger } from '../log.ts';
import { createKafka } from './index.ts';
import type { IncomingMessage } from './types.ts';

const log = createLogger({ level: 'silent', name: 'test' });
const client = () =>
  createKafka({ brokers: inject('kafkaBrokers').split(','), driver: 'kafkajs', clientId: 'test' }, log);

const indexes = (ms: IncomingMessage[]) => ms.map((m) => (JSON.parse(String(m.value)) as { i: number }).i);

describe('kafkajs consumer fetch pace', () => {
  it('gathers a trickle into fewer batches, in order, nothing lost', async () => {
    const kafka = client();
    const topic = uniqueId('pace-');
    const admin = kafka.admin();
    await admin.ensureTopics([{ topic, partitions: 1 }]);
    const producer = kafka.producer();
    await producer.connect();
    const PACE = 100;
    const calls = { paced: 0, unpaced: 0 };
    const got: { paced: IncomingMessage[]; unpaced: IncomingMessage[] } = { paced: [], unpaced: [] };
    const consumers = (['paced', 'unpaced'] as const).map((k) => {
      const c = kafka.consumer({
        groupId: uniqueId(`g-${k}-`),
        topics: [topic],
        fetchPaceMs: k === 'paced' ? PACE : 0,
      });
      void c.run(async (batch) => {
        calls[k]++;
        got[k].push(...batch.messages);
      });
      return c;
    });
    // both members have joined once a first message reached both
    await producer.send(topic, [{ key: 'k', value: JSON.stringify({ i: 0 }) }]);
    await eventually('both consumers running', () => got.paced.length > 0 && got.unpaced.length > 0, 60_000);
    calls.paced = calls.unpaced = 0;

    // a trickle: one message at a time, for at least 2 s
    const N = 150;
    const started = Date.now();
    for (let i = 1; i <= N; i++) {
      await producer.send(topic, [{ key: 'k', value: JSON.stringify({ i }) }]);
      await new Promise((r) => setTimeout(r, 10));
    }
    const elapsed = Date.now() - started;
    for (const k of ['paced', 'unpaced'] as const)
      await eventually(`${k}: every message`, () => got[k].length === N + 1, 60_000);
    await Promise.all(consumers.map((c) => c.disconnect()));
    await producer.disconnect();
    await admin.disconnect();

    for (const k of ['paced', 'unpaced'] as const)
      expect(indexes(got[k])).toEqual(Array.from({ length: N + 1 }, (_, i) => i));
    // paced: a fetch at most every PACE ms while caught up (a batch that found more waiting
    // is not paced, and then took everything up to the end: at most as many again)
    expect(calls.paced).toBeLessThanOrEqual(2 * Math.ceil((elapsed + 5000) / PACE));
    expect(calls.paced).toBeLessThan(calls.unpaced);
  }, 120_000);

  it('reads a backlog without pausing between fetches', async () => {
    const kafka = client();
    const topic = uniqueId('pace-backlog-');
    const admin = kafka.admin();
    await admin.ensureTopics([{ topic, partitions: 1 }]);
    const producer = kafka.producer();
    const N = 4000;
    const pad = 'x'.repeat(200);
    // small sends: a fetch returns whole record batches, so these keep each fetch near its limit
    for (let i = 0; i < N; i += 20)
      await producer.send(
        topic,
        Array.from({ length: 20 }, (_, j) => ({ key: 'k', value: JSON.stringify({ i: i + j, pad }) })),
      );
    const got: IncomingMessage[] = [];
    let batches = 0;
    // ~16 KB per fetch: about 60 fetches for the backlog. Paced between each, 60 s.
    const consumer = kafka.consumer({
      groupId: uniqueId('g-backlog-'),
      topics: [topic],
      fetchPaceMs: 1000,
      maxBytesPerPartition: 16 * 1024,
    });
    const started = Date.now();
    void consumer.run(async (batch) => {
      batches++;
      got.push(...batch.messages);
    });
    await eventually('the whole backlog', () => got.length === N, 60_000);
    const took = Date.now() - started;
    await consumer.disconnect();
    await producer.disconnect();
    await admin.disconnect();
    expect(indexes(got)).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(batches).toBeGreaterThan(10); // it did take many fetches
    // only the last (caught-up) one may have paused: far less than one pause per fetch
    expect(took).toBeLessThan(batches * 1000 * 0.5);
  }, 120_000);
});
