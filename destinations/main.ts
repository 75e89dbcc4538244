// The destinations service (`cdp start destinations`; `all` and `npm start` include it):
// one worker per active destination (worker.ts), each on its own consumer group, started,
// updated and stopped as definitions change (the definitions revision, as activation
// watches it). An archived workspace's destinations stop like paused ones (nothing delivered,
// nothing dead-lettered) and go on from their offsets when it is un-archived, as warehouse
// exports do. It needs Kafka and Redis only.
import type { Clients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { DefinitionStore, watchDefinitions } from '../runtime/definitions.ts';
import { errorMessage } from '../runtime/errors.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import type { RunningService } from '../runtime/service.ts';
import { workspacesArchivedKey } from '../runtime/workspaces.ts';
import type { DestinationDefinition } from '../schemas/destination.ts';
import { topics } from '../schemas/topics.ts';
import type { BreakerOptions } from './circuit-breaker.ts';
import { retrySet } from './retry-set.ts';
import { type DestinationWorker, startDestinationWorker } from './worker.ts';

export interface DestinationsOptions {
  breaker: BreakerOptions;
  retryPollMs: number;
  maxRetryBacklog: number;
  inFlightItems: number;
  /** How long a provider's spent API limit holds a destination when its answer names no time (Salesforce). */
  limitWaitMs: number;
}

const positive = (env: NodeJS.ProcessEnv, name: string, fallback: number): number => {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}: a positive integer, not "${raw}"`);
  return n;
};

/** CDP_DESTINATION_* (documented in the README's Configuration). */
export function destinationsOptions(env: NodeJS.ProcessEnv = process.env): DestinationsOptions {
  return {
    breaker: {
      failures: positive(env, 'CDP_DESTINATION_BREAKER_FAILURES', 5),
      cooldownMs: positive(env, 'CDP_DESTINATION_BREAKER_COOLDOWN_MS', 5000),
      maxCooldownMs: positive(env, 'CDP_DESTINATION_BREAKER_MAX_COOLDOWN_MS', 60_000),
    },
    retryPollMs: positive(env, 'CDP_DESTINATION_RETRY_POLL_MS', 250),
    maxRetryBacklog: positive(env, 'CDP_DESTINATION_MAX_RETRY_BACKLOG', 100_000),
    inFlightItems: positive(env, 'CDP_DESTINATION_IN_FLIGHT_ITEMS', 1000),
    limitWaitMs: positive(env, 'CDP_DESTINATION_LIMIT_WAIT_MS', 60_000),
  };
}

/**
 * The definitions, with the archived workspaces in the revision: archiving or un-archiving a
 * workspace moves no definition, yet stops or starts its destinations.
 */
class ArchiveAwareStore extends DefinitionStore {
  private readonly client: Redis;
  private readonly archivedKey: string;
  constructor(redis: Redis, prefix: string) {
    super(redis, prefix);
    this.client = redis;
    this.archivedKey = workspacesArchivedKey(prefix);
  }
  override async revision(): Promise<string> {
    const [rev, archived] = await Promise.all([super.revision(), this.archived()]);
    return `${rev}|${[...archived].sort().join(',')}`;
  }
  async archived(): Promise<Set<string>> {
    return new Set(await this.client.smembers(this.archivedKey));
  }
}

export interface RunningDestinations extends RunningService {
  /** The worker of an active destination (tests wait on its `started`). */
  worker(id: string): DestinationWorker | undefined;
}

export async function startDestinations(
  cfg: Config,
  clients: Clients,
  log: Logger,
  opts: { options?: Partial<DestinationsOptions>; now?: () => number } = {},
): Promise<RunningDestinations> {
  const options = { ...destinationsOptions(), ...opts.options };
  const now = opts.now ?? Date.now;
  const kafka = clients.kafka();
  const redis = clients.redis().duplicate({ connectionName: 'cdp-destinations' });
  const producer = kafka.producer({ lingerMs: 5 });
  const admin = kafka.admin();
  const t = topics(cfg.kafka.topicPrefix);
  const topicSpecs = [
    { topic: t.events, partitions: cfg.kafka.partitions },
    { topic: t.eventsOverflow, partitions: cfg.kafka.partitions },
    { topic: t.segmentChanges, partitions: cfg.kafka.partitions },
    { topic: t.activationLedger, partitions: cfg.kafka.partitions },
    { topic: t.deadLetter, partitions: 1 },
  ];
  const workers = new Map<string, { worker: DestinationWorker; source: string }>();
  /** Every destination id the last load saw, active or paused: one gone was deleted. */
  let known = new Set<string>();
  const stopping = new Set<Promise<void>>();
  const stopWorker = (id: string, clear: boolean) => {
    const w = workers.get(id);
    if (!w) return;
    workers.delete(id);
    // in the background: a stopping worker may wait out an attempt's deadline
    const p = w.worker
      .stop()
      .then(() => (clear ? retrySet(redis, cfg.redis.prefix, id).clear() : undefined))
      .catch((err) => log.warn({ destinationId: id, err: errorMessage(err) }, 'destination_stop_failed'))
      .finally(() => stopping.delete(p));
    stopping.add(p);
  };
  const start = (def: DestinationDefinition) => {
    const worker = startDestinationWorker(def, {
      kafka,
      admin,
      producer,
      redis,
      redisPrefix: cfg.redis.prefix,
      topicPrefix: cfg.kafka.topicPrefix,
      topics: {
        // the hot-key lane too: a person sending past CDP_HOT_KEY_RATE has the excess there
        sources: def.source.kind === 'events' ? [t.events, t.eventsOverflow] : [t.segmentChanges],
        ledger: t.activationLedger,
        deadLetter: t.deadLetter,
      },
      topicSpecs,
      partitions: cfg.kafka.partitions,
      addressPolicy: {
        allowLoopback: cfg.activation.allowLoopback,
        allowPrivate: cfg.activation.allowPrivate,
      },
      breaker: options.breaker,
      retryPollMs: options.retryPollMs,
      maxRetryBacklog: options.maxRetryBacklog,
      inFlightItems: options.inFlightItems,
      limitWaitMs: options.limitWaitMs,
      log,
      now,
      secrets: cfg.channels.secrets,
    });
    workers.set(def.id, { worker, source: def.source.kind });
    log.info({ destinationId: def.id, source: def.source.kind }, 'destination_started');
  };
  const store = new ArchiveAwareStore(redis, cfg.redis.prefix);
  const watcher = watchDefinitions({
    store,
    log,
    intervalMs: cfg.definitions.pollMs,
    load: async () => {
      const archived = await store.archived();
      const defs = await store.list('destinations');
      const seen = new Set<string>();
      for (const def of defs) {
        seen.add(def.id);
        const w = workers.get(def.id);
        // paused, or its workspace archived: the group keeps its offsets and the retry set its
        // entries; resuming (un-archiving) goes on from there
        if (def.status !== 'active' || archived.has(def.workspaceId)) {
          stopWorker(def.id, false);
          continue;
        }
        if (w && w.source !== def.source.kind) stopWorker(def.id, false);
        const current = workers.get(def.id);
        if (current) current.worker.update(def);
        else start(def);
      }
      for (const id of known) {
        if (seen.has(id)) continue;
        // deleted: its parked retries go too
        if (workers.has(id)) stopWorker(id, true);
        else await retrySet(redis, cfg.redis.prefix, id).clear();
      }
      known = seen;
    },
  });
  await watcher.ready;
  return {
    name: 'destinations',
    worker: (id) => workers.get(id)?.worker,
    async stop() {
      watcher.stop();
      for (const id of [...workers.keys()]) stopWorker(id, false);
      await Promise.allSettled([...stopping]);
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
      redis.disconnect();
    },
  };
}
