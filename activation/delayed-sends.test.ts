// The delayed set against real Redis and Kafka: due sends move to the retry topic; one the
// broker refuses as too large goes to the dead-letter topic and leaves the set, instead of
// failing every poll (and holding back every send due with it) forever.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../runtime/config.ts';
import {
  createKafka,
  type IncomingMessage,
  type KafkaClient,
  type Producer,
} from '../runtime/kafka/index.ts';
import type { ActivationJob } from '../schemas/activation-job.ts';
import { DLQ_HEADERS, topics } from '../schemas/topics.ts';
import { eventually, testConfig, testLogger } from '../test/harness.ts';
import { delayedSends, startDelayedPoller } from './delayed-sends.ts';

let cfg: Config;
let redis: Redis;
let kafka: KafkaClient;
let producer: Producer;

beforeAll(async () => {
  cfg = testConfig();
  redis = new Redis(cfg.redis.url);
  kafka = createKafka(cfg.kafka, testLogger(cfg));
  const t = topics(cfg.kafka.topicPrefix);
  const admin = kafka.admin();
  await admin.ensureTopics([
    // a retry topic that takes less than a large job
    { topic: t.activationRetry, partitions: 1, config: { 'max.message.bytes': '65536' } },
    { topic: t.deadLetter, partitions: 1 },
  ]);
  await admin.disconnect();
  producer = kafka.producer();
});

afterAll(async () => {
  await producer?.disconnect();
  redis?.disconnect();
});

const job = (profileId: string, traits: Record<string, unknown>): ActivationJob => ({
  campaignId: 'c1',
  change: {
    workspaceId: cfg.keys.workspace,
    profileId,
    segmentId: 's1',
    segmentVersion: 1,
    type: 'entered',
    epoch: 1,
    messageId: null,
    occurredAt: new Date().toISOString(),
    userId: null,
    traits,
  },
});

describe('delayed sends', () => {
  it('moves due sends to the retry topic; one too large for it is dead-lettered and leaves the set', async () => {
    const t = topics(cfg.kafka.topicPrefix);
    const delayed = delayedSends({ redis, redisPrefix: cfg.redis.prefix });
    const due = Date.now() - 1000;
    await delayed.add([
      {
        job: job('p-small-1', { plan: 'a' }),
        attempt: 1,
        firstSeen: due,
        reason: 'quiet_hours',
        notBefore: due,
      },
      {
        job: job('p-large', { blob: 'x'.repeat(100_000) }),
        attempt: 1,
        firstSeen: due,
        reason: 'quiet_hours',
        notBefore: due,
      },
      {
        job: job('p-small-2', { plan: 'b' }),
        attempt: 1,
        firstSeen: due,
        reason: 'quiet_hours',
        notBefore: due,
      },
    ]);
    const poller = startDelayedPoller({
      redis,
      redisPrefix: cfg.redis.prefix,
      producer,
      retryTopic: t.activationRetry,
      deadLetterTopic: t.deadLetter,
      now: Date.now,
      log: testLogger(cfg),
      intervalMs: 100,
    });
    const got: IncomingMessage[] = [];
    const consumer = kafka.consumer({
      groupId: `${cfg.kafka.topicPrefix}.reader`,
      topics: [t.activationRetry, t.deadLetter],
      fromBeginning: true,
    });
    await consumer.run(async (b) => {
      got.push(...b.messages);
    });
    try {
      await eventually('the delayed set emptied', async () => (await delayed.size()) === 0, 30_000);
      await eventually('two retries and a dead letter', () => got.length >= 3, 30_000);
      const retried = got.filter((m) => m.topic === t.activationRetry).map((m) => m.key);
      expect(new Set(retried)).toEqual(
        new Set([`${cfg.keys.workspace}:p-small-1`, `${cfg.keys.workspace}:p-small-2`]),
      );
      const dead = got.filter((m) => m.topic === t.deadLetter);
      expect(dead.map((m) => m.key)).toEqual([`${cfg.keys.workspace}:p-large`]);
      expect(dead[0]!.headers[DLQ_HEADERS.stage]).toBe('activation.delayed');
      expect(dead[0]!.headers[DLQ_HEADERS.reason]).toMatch(/too large/);
    } finally {
      await poller.stop();
      await consumer.disconnect();
    }
  }, 60_000);
});
