// Bounded sends against the real broker, on both drivers: a message over the topic's
// max.message.bytes goes to the dead-letter topic with the reason (its start kept), the
// others are delivered; a plain send of the same messages is refused as a whole.
import { describe, expect, inject, it } from 'vitest';
import { DLQ_HEADERS } from '../../schemas/topics.ts';
import { eventually, uniqueId } from '../../test/harness.ts';
import { createLogger } from '../log.ts';
import { createKafka } from './index.ts';
import { isTooLargeError, sendOrDeadLetter, splitRequests } from './send-bounded.ts';
import type { IncomingMessage } from './types.ts';

const log = createLogger({ level: 'silent', name: 'test' });

describe('splitRequests', () => {
  it('keeps order and puts a message larger than the budget alone', () => {
    const m = (n: number) => ({ key: 'k', value: 'x'.repeat(n) });
    const parts = splitRequests([m(10), m(10), m(100), m(10)], 50);
    expect(parts.map((p) => p.map((x) => x.value.length))).toEqual([[10, 10], [100], [10]]);
  });
});

describe.each(['kafkajs', 'rdkafka'] as const)('sendOrDeadLetter on %s', (driver) => {
  it('dead-letters the message the broker refuses as too large and delivers the rest', async () => {
    const kafka = createKafka({ brokers: inject('kafkaBrokers').split(','), driver, clientId: 'test' }, log);
    const topic = uniqueId(`bounded-${driver}-`);
    const dlq = `${topic}.dlq`;
    const admin = kafka.admin();
    await admin.ensureTopics([
      { topic, partitions: 2, config: { 'max.message.bytes': '16384' } },
      { topic: dlq, partitions: 1 },
    ]);
    await admin.disconnect();
    const producer = kafka.producer();
    const messages = [
      { key: 'a', value: JSON.stringify({ i: 0 }) },
      { key: 'b', value: JSON.stringify({ i: 1, big: 'x'.repeat(40_000) }) },
      { key: 'c', value: JSON.stringify({ i: 2 }) },
    ];
    try {
      // what a send did before: the whole batch refused, every time
      const plain = await producer.send(topic, messages).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isTooLargeError(plain)).toBe(true);

      const dead = await sendOrDeadLetter(producer, topic, messages, {
        deadLetterTopic: dlq,
        stage: 'test.publish',
        log,
      });
      expect(dead.map((m) => m.key)).toEqual(['b']);

      const got: IncomingMessage[] = [];
      const consumer = kafka.consumer({ groupId: uniqueId('g-'), topics: [topic, dlq], fromBeginning: true });
      await consumer.run(async (b) => {
        got.push(...b.messages);
      });
      try {
        await eventually('two messages and one dead letter', () => got.length >= 3, 30_000);
        // (the plain send may have stored the small ones already: they can be there twice)
        const delivered = new Set(
          got.filter((m) => m.topic === topic).map((m) => JSON.parse(String(m.value)).i),
        );
        expect([...delivered].sort()).toEqual([0, 2]);
        expect(got.filter((m) => m.topic === dlq)).toHaveLength(1);
        const letter = got.find((m) => m.topic === dlq)!;
        expect(letter.key).toBe('b');
        expect(letter.headers[DLQ_HEADERS.stage]).toBe('test.publish');
        expect(letter.headers[DLQ_HEADERS.source]).toBe(topic);
        expect(letter.headers[DLQ_HEADERS.reason]).toMatch(
          /^refused by Kafka as too large \(40\d\d\d bytes\)/,
        );
      } finally {
        await consumer.disconnect();
      }
    } finally {
      await producer.disconnect();
    }
  }, 60_000);
});
