// Composition root of the activation worker.
import type { Clients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { superviseConsumer } from '../runtime/consume.ts';
import { DefinitionStore, watchDefinitions } from '../runtime/definitions.ts';
import type { Logger } from '../runtime/log.ts';
import type { RunningService } from '../runtime/service.ts';
import { topics } from '../schemas/topics.ts';
import { CampaignRegistry } from './campaign-registry.ts';
import { createActivationPipeline } from './pipeline.ts';

export async function startActivation(cfg: Config, clients: Clients, log: Logger): Promise<RunningService> {
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
  const pipeline = createActivationPipeline({
    redis,
    clickhouse,
    producer,
    deadLetterTopic: t.deadLetter,
    campaigns,
    redisPrefix: cfg.redis.prefix,
    policy: cfg.activation,
    log,
  });
  const consumer = superviseConsumer({
    kafka,
    admin,
    topics: [
      { topic: t.segmentChanges, partitions: cfg.kafka.partitions },
      { topic: t.deadLetter, partitions: 1 },
    ],
    consumer: {
      groupId: `${cfg.kafka.topicPrefix ? `${cfg.kafka.topicPrefix}.` : ''}cdp-activation`,
      topics: [t.segmentChanges],
      maxBatchSize: 200,
      concurrency: cfg.kafka.partitions,
    },
    handler: async (batch, ctx) => {
      await watcher.ready;
      await pipeline(batch, ctx);
    },
    log: log.child({ consumer: 'activation' }),
  });
  return {
    name: 'activation',
    async stop() {
      await consumer.stop();
      watcher.stop();
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
    },
  };
}
