// The warehouse service (`cdp start warehouse`; `all` includes it): one exporter per active
// warehouse export of a workspace that is not archived (exporter.ts), each on its own
// consumer group, started, restarted on a new version and stopped as the definitions in
// Redis (and the archived workspaces) change. It needs Kafka and Redis only
// (Parquet is written in process), and the warehouse root for directory exports.
import type { Clients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { errorMessage } from '../runtime/errors.ts';
import type { Logger } from '../runtime/log.ts';
import type { RunningService } from '../runtime/service.ts';
import { workspacesArchivedKey } from '../runtime/workspaces.ts';
import { topics } from '../schemas/topics.ts';
import { type WarehouseExport, WarehouseStore, warehouseOptions } from '../schemas/warehouse.ts';
import { startExporter, type WarehouseExporter } from './exporter.ts';
import type { Target } from './targets.ts';

export interface RunningWarehouse extends RunningService {
  /** The exporter of an active export (tests wait on its `started`). */
  exporter(id: string): WarehouseExporter | undefined;
}

export async function startWarehouse(
  cfg: Config,
  clients: Clients,
  log: Logger,
  opts: { now?: () => number; targets?: (def: WarehouseExport) => Target | undefined } = {},
): Promise<RunningWarehouse> {
  const options = warehouseOptions(cfg.dataDir);
  const kafka = clients.kafka();
  const redis = clients.redis().duplicate({ connectionName: 'cdp-warehouse' });
  const admin = kafka.admin();
  const t = topics(cfg.kafka.topicPrefix);
  const topicSpecs = [t.events, t.eventsOverflow, t.identity, t.segmentChanges].map((topic) => ({
    topic,
    partitions: cfg.kafka.partitions,
  }));
  const store = new WarehouseStore(redis, cfg.redis.prefix);
  const running = new Map<string, { exporter: WarehouseExporter; version: number }>();
  const stopping = new Set<Promise<void>>();

  const stopOne = (id: string) => {
    const r = running.get(id);
    if (!r) return;
    running.delete(id);
    const p = r.exporter
      .stop()
      .catch((err) => log.warn({ exportId: id, err: errorMessage(err) }, 'warehouse_stop_failed'))
      .finally(() => stopping.delete(p));
    stopping.add(p);
  };

  const startOne = (def: WarehouseExport) => {
    try {
      const exporter = startExporter(def, {
        kafka,
        admin,
        redis,
        redisPrefix: cfg.redis.prefix,
        topicPrefix: cfg.kafka.topicPrefix,
        topics: t,
        topicSpecs,
        partitions: cfg.kafka.partitions,
        root: options.root,
        secrets: cfg.channels.secrets,
        policy: { allowLoopback: cfg.activation.allowLoopback, allowPrivate: cfg.activation.allowPrivate },
        log,
        ...(opts.now ? { now: opts.now } : {}),
        ...(opts.targets?.(def) ? { target: opts.targets(def) } : {}),
      });
      running.set(def.id, { exporter, version: def.version });
      log.info(
        { exportId: def.id, kind: def.target.kind, datasets: def.datasets },
        'warehouse_export_started',
      );
    } catch (err) {
      // a definition that cannot run (a root moved, a secret unreadable) does not stop the others
      log.error({ exportId: def.id, err: errorMessage(err) }, 'warehouse_export_unusable');
    }
  };

  let lastRevision: string | undefined;
  const load = async () => {
    // an archived workspace's exports stop, and start again from their offsets when it is
    // un-archived: the archive is part of what is compared
    const archived = (await redis.smembers(workspacesArchivedKey(cfg.redis.prefix))).sort();
    const rev = `${await store.revision()}|${archived.join(',')}`;
    if (rev === lastRevision) return;
    const defs = await store.list();
    const seen = new Set<string>();
    for (const def of defs) {
      seen.add(def.id);
      const r = running.get(def.id);
      if (def.status !== 'active' || archived.includes(def.workspaceId)) {
        stopOne(def.id);
        continue;
      }
      if (r && r.version === def.version) continue;
      if (r) {
        // a new version: the old exporter finishes (or abandons) its ranges first; the
        // pending ones are cut again by the new one at the same offsets
        stopOne(def.id);
        await Promise.allSettled([...stopping]);
      }
      startOne(def);
    }
    for (const id of [...running.keys()]) if (!seen.has(id)) stopOne(id);
    lastRevision = rev;
  };
  await load();
  let timer: NodeJS.Timeout | undefined;
  let loading: Promise<void> = Promise.resolve();
  const tick = () => {
    loading = load()
      .catch((err) => log.warn({ err: errorMessage(err) }, 'warehouse_load_failed'))
      .finally(() => {
        timer = setTimeout(tick, options.pollMs);
      });
  };
  timer = setTimeout(tick, options.pollMs);

  return {
    name: 'warehouse',
    exporter: (id) => running.get(id)?.exporter,
    async stop() {
      if (timer) clearTimeout(timer);
      await loading;
      if (timer) clearTimeout(timer);
      for (const id of [...running.keys()]) stopOne(id);
      await Promise.allSettled([...stopping]);
      await admin.disconnect().catch(() => {});
      redis.disconnect();
    },
  };
}
