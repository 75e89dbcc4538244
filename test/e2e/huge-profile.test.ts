// One huge profile must not stop a partition. A person with ~1.5 MB of traits (built from
// events each under the 32 KB ingest limit) enters a segment on the one partition of the
// topics, together with other people: their segment changes arrive and their webhooks go
// out, the huge person's change stays bounded (traits cut to the budget, flagged), and the
// huge person's webhook still carries every trait, read from Redis by activation. Before,
// the change carried every trait, the broker refused it as too large, and the processor
// retried the batch forever: nobody behind it on the partition got anything.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { SEGMENT_CHANGE_MAX_BYTES, type SegmentChange } from '../../schemas/segment-change.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, readTopic, testConfig, testLogger } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let redis: Redis;

const basic = () => `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`;
const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });

async function ingestBatch(batch: unknown[]) {
  const res = await fetch(`${running.urls.ingest}/v1/batch`, {
    method: 'POST',
    headers: { authorization: basic(), 'content-type': 'application/json' },
    body: JSON.stringify({ batch }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
}

async function post(path: string, body: unknown) {
  const res = await fetch(`${running.urls.query}${path}`, {
    method: 'POST',
    headers: admin(),
    body: JSON.stringify(body),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as { id: string };
}

const TRAIT_EVENTS = 60;
const TRAIT_CHARS = 25_000;

beforeAll(async () => {
  cfg = testConfig({
    // one partition: the huge person and everyone else share it
    CDP_TOPIC_PARTITIONS: '1',
    // room for the huge profile under the per-profile traits cap
    CDP_PROFILE_MAX_TRAIT_BYTES: String(8 * 1024 * 1024),
  });
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  redis = new Redis(cfg.redis.url);
});

afterAll(async () => {
  await running?.stop();
  await receiver?.close();
  redis?.disconnect();
});

describe('a huge profile', () => {
  it('enters a segment without stalling its partition, and its send still gets every trait', async () => {
    const segment = await post('/v1/segments', {
      name: 'Big plan',
      rule: { '==': [{ var: 'traits.plan' }, 'big'] },
    });
    await post('/v1/campaigns', {
      name: 'Welcome big',
      segmentId: segment.id,
      on: 'enter',
      channel: 'webhook',
      webhook: { url: receiver.url },
    });

    // ~1.5 MB of traits, 25 KB per event, 15 events per request
    const traitEvents = Array.from({ length: TRAIT_EVENTS }, (_, i) => ({
      type: 'identify',
      userId: 'huge',
      messageId: `huge-${i}`,
      traits: { [`blob_${i}`]: `${i}:`.padEnd(TRAIT_CHARS, 'x') },
    }));
    for (let i = 0; i < traitEvents.length; i += 15) await ingestBatch(traitEvents.slice(i, i + 15));
    const changes = await readTopic<SegmentChange>(
      cfg.kafka.brokers,
      topics(cfg.kafka.topicPrefix).segmentChanges,
      `${cfg.kafka.topicPrefix}-verify-changes`,
    );
    try {
      // the huge person enters along with three others, all in one request (one partition)
      const others = ['small-1', 'small-2', 'small-3'];
      await ingestBatch([
        ...others.slice(0, 2).map((userId) => ({
          type: 'identify',
          userId,
          traits: { plan: 'big', email: `${userId}@example.com` },
        })),
        { type: 'identify', userId: 'huge', traits: { plan: 'big', email: 'huge@example.com' } },
        { type: 'identify', userId: 'small-3', traits: { plan: 'big', email: 'small-3@example.com' } },
      ]);
      // and someone after them on the same partition
      await ingestBatch([{ type: 'identify', userId: 'small-4', traits: { plan: 'big' } }]);

      const entered = await eventually(
        'five segment changes, the huge one among them',
        () => {
          const users = new Set(changes.seen.map((c) => c.value.userId));
          return users.size >= 5 ? changes.seen : undefined;
        },
        90_000,
        200,
      );
      expect(new Set(entered.map((c) => c.value.userId))).toEqual(
        new Set(['huge', 'small-1', 'small-2', 'small-3', 'small-4']),
      );
      const huge = entered.find((c) => c.value.userId === 'huge')!.value;
      expect(huge.traitsTruncated).toBe(true);
      expect(Buffer.byteLength(JSON.stringify(huge))).toBeLessThanOrEqual(SEGMENT_CHANGE_MAX_BYTES);
      // contact traits are kept first
      expect(huge.traits).toMatchObject({ email: 'huge@example.com', plan: 'big' });
      for (const c of entered.filter((c) => c.value.userId !== 'huge'))
        expect(c.value.traitsTruncated).toBeUndefined();

      // every entrant's webhook; the huge one with all its traits, from Redis
      const bodies = await eventually(
        'five webhooks',
        () => {
          const b = receiver.deliveries.map(
            (d) => JSON.parse(d.body) as { userId: string; traits: Record<string, unknown> },
          );
          return new Set(b.map((x) => x.userId)).size >= 5 ? b : undefined;
        },
        90_000,
        200,
      );
      const hugeBody = bodies.find((b) => b.userId === 'huge')!;
      expect(hugeBody.traits.email).toBe('huge@example.com');
      const blobs = Object.keys(hugeBody.traits).filter((k) => k.startsWith('blob_'));
      expect(blobs).toHaveLength(TRAIT_EVENTS);
      expect(hugeBody.traits.blob_59).toBe('59:'.padEnd(TRAIT_CHARS, 'x'));
      expect(bodies.find((b) => b.userId === 'small-1')!.traits).toEqual({
        plan: 'big',
        email: 'small-1@example.com',
      });
    } finally {
      await changes.stop();
    }
  }, 240_000);
});
