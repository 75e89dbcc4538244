// Starts a set of services in one process, sharing its clients, and stops them in
// reverse order: edges stop accepting first, consumers drain, clients close last.
import { startJourneys } from '../activation/journeys/start-journeys.ts';
import { startActivation, startLedger } from '../activation/main.ts';
import { startDestinations } from '../destinations/main.ts';
import { startIngest } from '../ingest/main.ts';
import { startProcessor, topicSpecs } from '../processor/main.ts';
import { startQuery } from '../query/main.ts';
import { createClients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { withTimeout } from '../runtime/http.ts';
import { TopicDurabilityError } from '../runtime/kafka/topic-durability.ts';
import type { Logger } from '../runtime/log.ts';
import { startMetricsServer } from '../runtime/metrics.ts';
import { migrateRedisKeys } from '../runtime/redis-migrate.ts';
import type { RunningService } from '../runtime/service.ts';
import { migrate } from '../schemas/migrations.ts';
import { startWarehouse } from '../warehouse/main.ts';

export const SERVICE_NAMES = [
  'processor',
  'activation',
  'journeys',
  'destinations',
  'warehouse',
  'ledger',
  'query',
  'ingest',
] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

const STARTERS = {
  processor: startProcessor,
  activation: startActivation,
  journeys: startJourneys,
  destinations: startDestinations,
  warehouse: startWarehouse,
  ledger: startLedger,
  query: startQuery,
  ingest: startIngest,
};
// the activation worker and ingest need only Kafka and Redis: with chDB they can run in
// processes of their own, next to the one that holds the data directory
const USES_CLICKHOUSE: ReadonlySet<ServiceName> = new Set(['processor', 'ledger', 'query']);

export interface RunningServices {
  services: RunningService[];
  urls: Partial<Record<ServiceName, string>>;
  /** The process's Prometheus `/metrics`, when CDP_METRICS_PORT is set. */
  metricsUrl?: string;
  stop(): Promise<void>;
}

export async function startServices(
  cfg: Config,
  names: readonly ServiceName[],
  log: Logger,
): Promise<RunningServices> {
  const clients = createClients(cfg, log);
  const started: RunningService[] = [];
  const stop = async () => {
    for (const s of [...started].reverse()) {
      const t0 = Date.now();
      try {
        await s.stop();
        log.info({ service: s.name, ms: Date.now() - t0 }, 'service_stopped');
      } catch (err) {
        log.warn({ service: s.name, err: (err as Error).message }, 'service_stop_failed');
      }
    }
    await clients.close().catch(() => {});
  };
  try {
    // global keys under their hash-tagged names before any worker reads them
    await migrateRedisKeys(clients.redis(), cfg.redis.prefix, log);
    if (names.some((n) => USES_CLICKHOUSE.has(n))) {
      const applied = await migrate(await clients.clickhouse());
      if (applied.length > 0) log.info({ applied }, 'clickhouse_migrated');
    }
    if (names.some((n) => n !== 'query')) {
      // Create topics once up front; if Kafka is not reachable yet, the consumers keep
      // trying on their own and the services start anyway. Replication settings this
      // cluster cannot meet are a configuration error: no start.
      const admin = clients.kafka().admin();
      await withTimeout(admin.ensureTopics(topicSpecs(cfg)), 15_000, 'creating topics')
        .catch((err) => {
          if (err instanceof TopicDurabilityError) throw err;
          log.warn({ err: (err as Error).message }, 'topics_not_ensured');
        })
        .finally(() => admin.disconnect().catch(() => {}));
    }
    if (cfg.metrics) {
      // one listener for every service of the process (they share its registry)
      const m = await startMetricsServer(cfg.metrics.host, cfg.metrics.port);
      started.push({ name: 'metrics', url: m.url, stop: m.close });
      log.info({ url: m.url }, 'metrics_listening');
    }
    for (const name of SERVICE_NAMES) {
      if (!names.includes(name)) continue;
      started.push(await STARTERS[name](cfg, clients, log.child({ service: name })));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const urls: Partial<Record<ServiceName, string>> = {};
  for (const s of started) if (s.url && s.name !== 'metrics') urls[s.name as ServiceName] = s.url;
  const metricsUrl = started.find((s) => s.name === 'metrics')?.url;
  return { services: started, urls, stop, ...(metricsUrl ? { metricsUrl } : {}) };
}

/** `cdp migrate`: Kafka topics, Redis key names (runtime/redis-migrate.ts) and ClickHouse schema. */
export async function migrateAll(cfg: Config, log: Logger): Promise<void> {
  const clients = createClients(cfg, log);
  const admin = clients.kafka().admin();
  try {
    await admin.ensureTopics(topicSpecs(cfg));
    await migrateRedisKeys(clients.redis(), cfg.redis.prefix, log);
    const applied = await migrate(await clients.clickhouse());
    log.info({ applied, topics: topicSpecs(cfg).map((t) => t.topic) }, 'migrated');
  } finally {
    await admin.disconnect().catch(() => {});
    await clients.close();
  }
}
