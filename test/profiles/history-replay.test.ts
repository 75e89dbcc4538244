// A history dead letter that `cdp dlq replay` put back on cdp.events (header
// `cdp-replay-for: history`) is for the history sink only: the processor handled the
// original when it first read it, so the replay changes no profile and publishes nothing,
// even when its messageId is no longer remembered. Against real Redis and Kafka.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SegmentRegistry } from '../../processor/segment-registry.ts';
import type { Config } from '../../runtime/config.ts';
import type { OutgoingMessage, Producer } from '../../runtime/kafka/index.ts';
import { createLogger } from '../../runtime/log.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { REPLAY_HEADER } from '../../schemas/topics.ts';
import { BATCH_CTX, eventBatch, segmentDef, streamEvent } from '../fixtures.ts';
import { processorOutputs, testConfig, testProcessor, uniqueId } from '../harness.ts';

const log = createLogger({ level: 'silent', name: 'test' });
const T0 = Date.parse('2026-06-01T00:00:00Z');
let cfg: Config;
let redis: Redis;
let kafkaProducer: Producer;

beforeAll(async () => {
  cfg = testConfig();
  redis = new Redis(cfg.redis.url);
  kafkaProducer = await processorOutputs(cfg, log);
  await kafkaProducer.connect();
});

afterAll(async () => {
  await kafkaProducer?.disconnect();
  redis?.disconnect();
});

describe('a replayed history dead letter', () => {
  it('is skipped by the processor; the same event without the header is applied', async () => {
    const ws = uniqueId('ws');
    const registry = new SegmentRegistry(log);
    registry.replace([segmentDef('pro', { '==': [{ var: 'traits.plan' }, 'pro'] }, { workspaceId: ws })]);
    const sent: OutgoingMessage[] = [];
    const producer: Producer = {
      connect: () => kafkaProducer.connect(),
      disconnect: async () => {},
      async send(topic, messages) {
        await kafkaProducer.send(topic, messages);
        sent.push(...messages);
      },
    };
    const processor = testProcessor(cfg, { redis, producer, registry, log, now: () => new Date(T0) });
    const event = streamEvent(
      { workspaceId: ws, type: 'identify', userId: 'replayed', traits: { plan: 'pro' } },
      T0,
    );
    const keys = workspaceKeys(cfg.redis.prefix, ws);

    const replayed = eventBatch([event], 0);
    replayed.messages[0]!.headers = { [REPLAY_HEADER]: 'history' };
    await processor.handleBatch(replayed, BATCH_CTX);
    expect(await redis.get(keys.identity('user', 'replayed'))).toBeNull();
    expect(sent).toEqual([]);

    // the control: the same message as first read is applied and enters the segment
    await processor.handleBatch(eventBatch([event], 1), BATCH_CTX);
    expect(await redis.get(keys.identity('user', 'replayed'))).not.toBeNull();
    expect(sent.length).toBeGreaterThan(0);
  });
});
