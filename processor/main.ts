// Composition root of the processor: the profile/segment consumer and the history sink.
import type { Clients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { superviseConsumer } from '../runtime/consume.ts';
import { DefinitionStore, watchDefinitions } from '../runtime/definitions.ts';
import type { Logger } from '../runtime/log.ts';
import type { RunningService } from '../runtime/service.ts';
import { topics } from '../schemas/topics.ts';
import { createBackfiller } from './backfill.ts';
import { createHistorySink } from './history-sink.ts';
import { createProcessor } from './pipeline.ts';
import { SegmentRegistry } from './segment-registry.ts';
import { startTimerWorker } from './timers.ts';

export function topicSpecs(cfg: Config) {
  const t = topics(cfg.kafka.topicPrefix);
  return [
    { topic: t.events, partitions: cfg.kafka.partitions },
    { topic: t.segmentChanges, partitions: cfg.kafka.partitions },
    { topic: t.identity, partitions: cfg.kafka.partitions },
    { topic: t.deadLetter, partitions: 1 },
  ];
}

export async function startProcessor(cfg: Config, clients: Clients, log: Logger): Promise<RunningService> {
  const kafka = clients.kafka();
  const redis = clients.redis();
  const clickhouse = await clients.clickhouse();
  const producer = kafka.producer();
  const admin = kafka.admin();
  const t = topics(cfg.kafka.topicPrefix);
  const group = (name: string) => `${cfg.kafka.topicPrefix ? `${cfg.kafka.topicPrefix}.` : ''}${name}`;

  const registry = new SegmentRegistry(log);
  const store = new DefinitionStore(redis, cfg.redis.prefix);
  // the backfiller re-evaluates through the processor, which is built below
  let backfiller: ReturnType<typeof createBackfiller> | undefined;
  const watcher = watchDefinitions({
    store,
    log,
    load: async () => {
      const defs = await store.list('segments');
      registry.replace(defs);
      await backfiller?.sync(defs);
    },
  });

  const processor = createProcessor({
    redis,
    producer,
    topics: t,
    registry,
    redisPrefix: cfg.redis.prefix,
    apply: { dedupTtlSeconds: cfg.processor.dedupTtlSeconds, maxIdentities: 100 },
    log,
  });
  // Segment evaluation needs the definitions: wait for the first load before consuming.
  const profiles = superviseConsumer({
    kafka,
    admin,
    topics: topicSpecs(cfg),
    consumer: { groupId: group('cdp-processor'), topics: [t.events], maxBatchSize: 500 },
    handler: async (batch, ctx) => {
      await watcher.ready;
      await processor.handleBatch(batch, ctx);
    },
    log: log.child({ consumer: 'processor' }),
  });

  const sink = createHistorySink({
    clickhouse,
    producer,
    topics: t,
    log: log.child({ consumer: 'history' }),
    ...cfg.history,
  });
  const history = superviseConsumer({
    kafka,
    admin,
    topics: topicSpecs(cfg),
    consumer: {
      groupId: group('cdp-history'),
      topics: [t.events, t.identity],
      maxBatchSize: 10_000,
      concurrency: cfg.kafka.partitions,
      maxBytesPerPartition: 8 * 1024 * 1024,
    },
    handler: sink.handler,
    log: log.child({ consumer: 'history' }),
  });

  backfiller = createBackfiller({
    redis,
    prefix: cfg.redis.prefix,
    reevaluate: processor.reevaluate,
    log,
  });
  void watcher.ready.then(async () => backfiller?.sync(await store.list('segments'))).catch(() => {});

  // Windowed rules change truth as time passes: re-evaluate profiles at their deadlines.
  const timers = startTimerWorker({
    redis,
    prefix: cfg.redis.prefix,
    reevaluate: async (members) => {
      await watcher.ready;
      await processor.reevaluate(members);
    },
    log,
    now: () => new Date(),
  });

  return {
    name: 'processor',
    async stop() {
      await timers.stop();
      await Promise.all([profiles.stop(), history.stop()]);
      await sink.flush();
      watcher.stop();
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
    },
  };
}
