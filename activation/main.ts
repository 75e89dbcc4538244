// Composition root of the activation worker: one consumer group on the segment-change and
// activation-retry topics, the delayed-send poller, and the channel adapters.
import { randomUUID } from 'node:crypto';
import type { Clients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { superviseConsumer } from '../runtime/consume.ts';
import { DefinitionStore, watchDefinitions } from '../runtime/definitions.ts';
import type { Logger } from '../runtime/log.ts';
import type { RunningService } from '../runtime/service.ts';
import { topics } from '../schemas/topics.ts';
import { CampaignRegistry } from './campaign-registry.ts';
import { createChannels } from './channels/index.ts';
import { sendClaims } from './claim-send.ts';
import { delayedSends, startDelayedPoller } from './delayed-sends.ts';
import { createActivationPipeline } from './pipeline.ts';
import { contactPolicy } from './policy/check-contact-policy.ts';

/** Activation's topics (the processor's topicSpecs creates them too). */
export function activationTopicSpecs(cfg: Config) {
  const t = topics(cfg.kafka.topicPrefix);
  return [
    { topic: t.segmentChanges, partitions: cfg.kafka.partitions },
    { topic: t.activationRetry, partitions: cfg.kafka.partitions },
    { topic: t.deadLetter, partitions: 1 },
  ];
}

export async function startActivation(
  cfg: Config,
  clients: Clients,
  log: Logger,
  opts: { now?: () => number } = {},
): Promise<RunningService> {
  const now = opts.now ?? Date.now;
  const kafka = clients.kafka();
  const redis = clients.redis();
  const clickhouse = await clients.clickhouse();
  const producer = kafka.producer();
  const admin = kafka.admin();
  const t = topics(cfg.kafka.topicPrefix);
  const campaigns = new CampaignRegistry();
  const store = new DefinitionStore(redis, cfg.redis.prefix);
  const watcher = watchDefinitions({
    store,
    log,
    load: async () => campaigns.replace(await store.list('campaigns')),
  });
  const channels = createChannels(cfg.channels, cfg.activation);
  const pipeline = createActivationPipeline({
    clickhouse,
    producer,
    topics: { retry: t.activationRetry, deadLetter: t.deadLetter },
    campaigns,
    claims: sendClaims(redis, randomUUID(), cfg.retries.claimLeaseMs),
    policy: contactPolicy({ redis, redisPrefix: cfg.redis.prefix, policy: cfg.contactPolicy }),
    channels,
    redisPrefix: cfg.redis.prefix,
    unsubscribe: cfg.unsubscribe,
    retries: cfg.retries,
    delayed: delayedSends({ redis, redisPrefix: cfg.redis.prefix }),
    concurrency: cfg.retries.concurrency,
    log,
    now,
  });
  const consumer = superviseConsumer({
    kafka,
    admin,
    topics: activationTopicSpecs(cfg),
    consumer: {
      groupId: `${cfg.kafka.topicPrefix ? `${cfg.kafka.topicPrefix}.` : ''}cdp-activation`,
      topics: [t.segmentChanges, t.activationRetry],
      maxBatchSize: 500,
      concurrency: cfg.kafka.partitions,
    },
    handler: async (batch, ctx) => {
      await watcher.ready;
      await pipeline(batch, ctx);
    },
    log: log.child({ consumer: 'activation' }),
  });
  const poller = startDelayedPoller({
    redis,
    redisPrefix: cfg.redis.prefix,
    producer,
    retryTopic: t.activationRetry,
    now,
    log: log.child({ component: 'delayed-sends' }),
  });
  return {
    name: 'activation',
    async stop() {
      await poller.stop();
      await consumer.stop();
      watcher.stop();
      for (const c of Object.values(channels)) await c.close?.().catch(() => {});
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
    },
  };
}
