// Composition root of the processor: the profile/segment consumer and the history sink.
import type { Clients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { superviseConsumer } from '../runtime/consume.ts';
import { DefinitionStore, watchDefinitions } from '../runtime/definitions.ts';
import { realSleep } from '../runtime/errors.ts';
import { coalesceBatches } from '../runtime/kafka/coalesce.ts';
import type { Logger } from '../runtime/log.ts';
import { redisDurability } from '../runtime/redis-durability.ts';
import type { RunningService } from '../runtime/service.ts';
import { replayConsentLog } from '../schemas/consent-log.ts';
import { journeyEventNames } from '../schemas/journey.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { compileRule } from '../schemas/rules.ts';
import { topicSpecs as allTopicSpecs, consumerGroup, topics } from '../schemas/topics.ts';
import { createBackfiller } from './backfill.ts';
import { ComputedRegistry } from './computed-registry.ts';
import { createErasedFilter } from './drop-erased.ts';
import { createHistorySink } from './history-sink.ts';
import { createProcessor } from './pipeline.ts';
import { rebuildFromHistory } from './rebuild.ts';
import { defineSeedCondition, seedFromHistory } from './seed-from-history.ts';
import { SegmentRegistry } from './segment-registry.ts';
import { startTimerWorker } from './timers.ts';

/** Every topic of the pipeline (the processor and `cdp migrate` create them all). */
export function topicSpecs(cfg: Config) {
  return allTopicSpecs(cfg.kafka.topicPrefix, cfg.kafka.partitions);
}

const applyOptions = (cfg: Config) => ({
  dedupTtlSeconds: cfg.processor.dedupTtlSeconds,
  maxIdentities: cfg.processor.maxIdentities,
  junkIds: new Set(cfg.processor.junkIds),
  externalIdTypes: new Set(cfg.processor.externalIdTypes),
  clientKeys: cfg.processor.clientKeys,
  protectedTraits: cfg.processor.protectedTraits,
  maxTraits: cfg.profileLimits.maxTraits,
  maxTraitBytes: cfg.profileLimits.maxTraitBytes,
});

/** `cdp rebuild`: profile state from ClickHouse history (processor/rebuild.ts). */
export async function runRebuild(
  cfg: Config,
  clients: Clients,
  log: Logger,
  workspaceId?: string,
): Promise<{ events: number; consent: { applied: number; skipped: number } }> {
  const redis = clients.redis();
  const kafka = clients.kafka();
  const producer = kafka.producer({ lingerMs: 1 });
  const admin = kafka.admin();
  try {
    await admin.ensureTopics(topicSpecs(cfg));
    const registry = new SegmentRegistry(log);
    const store = new DefinitionStore(redis, cfg.redis.prefix);
    registry.replace(await store.list('segments'));
    // computed traits and lead scores are recomputed from the same history
    const computed = new ComputedRegistry(log);
    computed.replace(await store.list('computedTraits'), await store.list('scores'));
    const processor = createProcessor({
      redis,
      producer,
      topics: topics(cfg.kafka.topicPrefix),
      registry,
      computed,
      redisPrefix: cfg.redis.prefix,
      apply: applyOptions(cfg),
      log,
      publishSegmentChanges: false,
    });
    const clickhouse = await clients.clickhouse();
    const rebuilt = await rebuildFromHistory({
      clickhouse,
      processor,
      ...(workspaceId ? { workspaceId } : {}),
      log,
    });
    // consent lives in its own log: back onto the rebuilt people, found by their identifiers
    const consent = await replayConsentLog({
      clickhouse,
      redis,
      prefix: cfg.redis.prefix,
      ...(workspaceId ? { workspaceId } : {}),
    });
    log.info({ workspaceId: workspaceId ?? '*', ...consent }, 'consent_replayed');
    return { ...rebuilt, consent };
  } finally {
    await producer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}

export async function startProcessor(cfg: Config, clients: Clients, log: Logger): Promise<RunningService> {
  const kafka = clients.kafka();
  const redis = clients.redis();
  // a durability mode the server cannot honour stops the start here (CDP_REDIS_DURABILITY)
  const durable = await redisDurability(redis, cfg.redis, log);
  const clickhouse = await clients.clickhouse();
  // segment changes, identity changes and dead letters of concurrent partitions share requests
  const producer = kafka.producer({ lingerMs: 1 });
  const admin = kafka.admin();
  const t = topics(cfg.kafka.topicPrefix);

  const registry = new SegmentRegistry(log);
  const computed = new ComputedRegistry(log);
  let journeyEvents: ReadonlySet<string> = new Set();
  const store = new DefinitionStore(redis, cfg.redis.prefix);
  // the backfiller re-evaluates through the processor, which is built below
  let backfiller: ReturnType<typeof createBackfiller> | undefined;
  const watcher = watchDefinitions({
    store,
    log,
    intervalMs: cfg.definitions.pollMs,
    load: async () => {
      const [defs, traits, scores, journeys, journeyVersions] = await Promise.all([
        store.list('segments'),
        store.list('computedTraits'),
        store.list('scores'),
        store.list('journeys'),
        store.list('journeyVersions'),
      ]);
      registry.replace(defs);
      computed.replace(traits, scores);
      journeyEvents = journeyEventNames(journeys, journeyVersions);
      await backfiller?.sync(defs);
    },
  });

  // events still in flight at an erasure make no profile and no history (drop-erased.ts)
  const erased = createErasedFilter({ redis, redisPrefix: cfg.redis.prefix });
  const processor = createProcessor({
    redis,
    producer,
    topics: t,
    registry,
    computed,
    redisPrefix: cfg.redis.prefix,
    apply: applyOptions(cfg),
    log,
    erased,
    journeyEvents: () => journeyEvents,
  });
  // Segment evaluation needs the definitions: wait for the first load before consuming.
  const profiles = superviseConsumer({
    kafka,
    admin,
    topics: topicSpecs(cfg),
    consumer: {
      ...consumerGroup(cfg.kafka.topicPrefix, 'processor'),
      maxBatchSize: 500,
      // partitions run side by side, like separate consumers (the Redis steps are atomic
      // per event and memberships are compare-and-set)
      concurrency: cfg.kafka.partitions,
    },
    // and the partitions' batches of one fetch go through as one, one round of Redis and
    // Kafka calls for all (runtime/kafka/coalesce.ts); a group under way does not hold the
    // next: batches that arrive meanwhile form their own
    handler: coalesceBatches(async (batch, ctx) => {
      // definitions saved before these events were sent (a segment created a moment ago)
      // must apply to them: one GET of the revision, a reload only when it moved
      await watcher.current();
      await processor.handleBatch(batch, ctx);
      // the batch's Redis writes reach the disk before its offsets are committed (one
      // WAITAOF per batch where configured; nothing in the default mode)
      await durable();
    }),
    log: log.child({ consumer: 'processor' }),
  });

  // the hot-key lane (ingest moves a flooding person's excess here): its own group, so its
  // backlog never holds cdp.events; the same handler (events are deduplicated by messageId
  // and applied atomically per person, whichever lane brought them)
  const overflow = superviseConsumer({
    kafka,
    admin,
    topics: topicSpecs(cfg),
    consumer: {
      ...consumerGroup(cfg.kafka.topicPrefix, 'processorOverflow'),
      maxBatchSize: 500,
      concurrency: cfg.kafka.partitions,
    },
    handler: coalesceBatches(async (batch, ctx) => {
      await watcher.current();
      await processor.handleBatch(batch, ctx);
      await durable();
    }),
    log: log.child({ consumer: 'processor-overflow' }),
  });

  const sink = createHistorySink({
    clickhouse,
    producer,
    topics: t,
    log: log.child({ consumer: 'history' }),
    ...cfg.history,
    // what was on its way at an erasure does not reappear (query/erasure-job.ts)
    erased,
  });
  const history = superviseConsumer({
    kafka,
    admin,
    topics: topicSpecs(cfg),
    consumer: {
      ...consumerGroup(cfg.kafka.topicPrefix, 'history'),
      maxBatchSize: 10_000,
      concurrency: cfg.kafka.partitions,
      maxBytesPerPartition: 8 * 1024 * 1024,
      // it buffers for its flush anyway: fewer, fuller fetches (at most FETCH_MAX_WAIT_MS later)
      minBytes: 1024 * 1024,
    },
    handler: sink.handler,
    log: log.child({ consumer: 'history' }),
  });

  defineSeedCondition(redis);
  backfiller = createBackfiller({
    redis,
    prefix: cfg.redis.prefix,
    reevaluate: processor.reevaluate,
    async seed(def) {
      const rule = compileRule(def.rule);
      if (rule.counts.length === 0) return;
      // events processed just before the registry had the segment reach ClickHouse with
      // the sink's next flush: wait for it, so they are counted from history
      await realSleep(cfg.history.flushMs + 1000);
      await seedFromHistory({
        clickhouse,
        redis,
        tag: workspaceKeys(cfg.redis.prefix, def.workspaceId).tag,
        workspaceId: def.workspaceId,
        counts: rule.counts,
        nowMs: Date.now(),
        log,
      });
    },
    log,
  });
  void watcher.ready.then(async () => backfiller?.sync(await store.list('segments'))).catch(() => {});

  // Windowed rules change truth as time passes: re-evaluate profiles at their deadlines.
  const timers = startTimerWorker({
    redis,
    prefix: cfg.redis.prefix,
    reevaluate: async (members) => {
      await watcher.current();
      await processor.reevaluate(members);
    },
    log,
    now: () => new Date(),
  });

  return {
    name: 'processor',
    async stop() {
      await timers.stop();
      // the sink flushes while its consumer stops: the consumer waits for the inserts of
      // what it handed over (its effects) before its last commit
      await Promise.all([profiles.stop(), overflow.stop(), history.stop(), sink.flush()]);
      await sink.flush();
      watcher.stop();
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
    },
  };
}
