// A workspace without segments evaluates nothing, so the processor asks Redis only for the
// state of profiles whose identity changed (their identifiers are published). Against real
// Redis and Kafka: what must still be read is read — an identity change in an earlier
// script call of the batch, and a segment defined while the batch was under way.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SegmentRegistry } from '../../processor/segment-registry.ts';
import type { Config } from '../../runtime/config.ts';
import type { OutgoingMessage, Producer } from '../../runtime/kafka/index.ts';
import { createLogger } from '../../runtime/log.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import type { IdentityChange } from '../../schemas/identity-change.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';
import { topics } from '../../schemas/topics.ts';
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

/** A processor publishing to Kafka, keeping what it published per topic. */
function processorFor(registry: SegmentRegistry) {
  const sent = new Map<string, OutgoingMessage[]>();
  const producer: Producer = {
    connect: () => kafkaProducer.connect(),
    disconnect: async () => {},
    async send(topic, messages) {
      await kafkaProducer.send(topic, messages);
      sent.set(topic, [...(sent.get(topic) ?? []), ...messages]);
    },
  };
  const processor = testProcessor(cfg, { redis, producer, registry, log, now: () => new Date(T0) });
  const published = <T>(topic: string): T[] =>
    (sent.get(topic) ?? []).map((m) => JSON.parse(String(m.value)) as T);
  return { processor, published };
}

let offset = 0;
function batchOf(ws: string, events: Array<Partial<NormalizedEvent>>) {
  const batch = eventBatch(
    events.map((e) => streamEvent({ workspaceId: ws, event: 'Viewed', ...e }, T0)),
    offset,
  );
  offset += events.length;
  return batch;
}
const t = () => topics(cfg.kafka.topicPrefix);

describe('a workspace without segments', () => {
  it('publishes the identifiers of a profile whose identity changed in an earlier call of the batch', async () => {
    const ws = uniqueId('ws');
    const { processor, published } = processorFor(new SegmentRegistry(log));
    // the first event creates the profile (an identity change); the 149 after it, in the
    // batch's later script calls (100 events each), change nothing of it
    const events: Array<Partial<NormalizedEvent>> = [
      { type: 'identify', anonymousId: 'a1', traits: { plan: 'pro' } },
    ];
    for (let i = 0; i < 149; i++) events.push({});
    await processor.handleBatch(batchOf(ws, events), BATCH_CTX);
    const changes = published<IdentityChange>(t().identity);
    expect(changes).toHaveLength(1);
    expect(changes[0]!.identifiers.sort()).toEqual(['anon:a1', 'user:u1']);
    expect(changes[0]!.version).toBeGreaterThan(0);
    expect(published(t().segmentChanges)).toEqual([]);
  });

  it('evaluates a profile on a fresh read when a segment was defined while its batch was applied', async () => {
    const ws = uniqueId('ws');
    const pro = segmentDef('pro', { '==': [{ var: 'traits.plan' }, 'pro'] }, { workspaceId: ws });
    // the registry has no segment when the batch's calls are queued, and has one afterwards
    class LateRegistry extends SegmentRegistry {
      calls = 0;
      override forWorkspace(id: string) {
        this.calls++;
        if (this.calls === 1) return [];
        return super.forWorkspace(id);
      }
    }
    const registry = new LateRegistry(log);
    registry.replace([pro]);
    const { processor, published } = processorFor(registry);
    await processor.handleBatch(batchOf(ws, [{ type: 'identify', traits: { plan: 'pro' } }]), BATCH_CTX);
    // the profile was new: created (an identity change), so its state came back anyway; the
    // next event changes no identity, and its state is read after the call
    registry.calls = 0;
    await processor.handleBatch(batchOf(ws, [{ type: 'identify', traits: { plan: 'team' } }]), BATCH_CTX);
    expect(registry.calls).toBeGreaterThan(1);
    const changes = published<SegmentChange>(t().segmentChanges);
    expect(changes.map((c) => [c.segmentId, c.type])).toEqual([
      ['pro', 'entered'],
      ['pro', 'exited'],
    ]);
    expect(changes[1]!.traits).toEqual({ plan: 'team' });
  });
});
