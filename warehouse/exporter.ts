// One warehouse export at work: its own consumer group reads the topics of its datasets
// (events: cdp.events and the hot-key lane; identity: cdp.identity; segment_changes:
// cdp.segment-changes), keeps the export's workspace's rows, and writes a Parquet file per
// (dataset, day, topic partition) every `flushRows` rows or `flushMs`.
//
// Exactly once per file. Each topic partition is cut into consecutive offset ranges; a
// range's files are named from its first and last offsets (schemas/warehouse.ts fileKey).
// Before a range's files are written, the range is recorded in Redis as pending; once every
// file of it is durable, the range's last offset is recorded as done, and only then are the
// Kafka offsets committed (the batch's `effects`). After a crash:
//   - offsets up to `done` are skipped (their files exist: the committed Kafka offset may lag);
//   - a pending range is cut again at exactly its recorded last offset, so its files get the
//     same names and the same rows, and replace whatever part was written;
// so no row is in two files and none is missing. A target that fails (bucket unreachable, disk
// full) is retried with backoff: the range stays pending, nothing is committed, lag grows.
import type { GuardPolicy } from '../activation/webhook/address-guard.ts';
import { createErasedFilter } from '../processor/drop-erased.ts';
import { superviseConsumer } from '../runtime/consume.ts';
import { backoffDelayMs, errorMessage, realSleep } from '../runtime/errors.ts';
import type { Admin, IncomingMessage, KafkaClient, TopicSpec } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import type { Keyring } from '../runtime/secrets-key.ts';
import type { Topics } from '../schemas/topics.ts';
import {
  fileKey,
  type WarehouseDataset,
  type WarehouseExport,
  warehouseGroup,
  warehouseKeys,
} from '../schemas/warehouse.ts';
import { type Row, toParquet, toRow } from './rows.ts';
import { type Target, targetOf } from './targets.ts';

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
}
const deferred = (): Deferred => {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // a range abandoned at stop rejects; the consumer's commits stop there, nobody else waits
  promise.catch(() => {});
  return { promise, resolve, reject };
};

interface Buffer {
  from: bigint | undefined;
  last: bigint | undefined;
  rows: Row[];
  startedAt: number;
  durable: Deferred;
}

interface Lane {
  topic: string;
  partition: number;
  dataset: WarehouseDataset;
  lane: 'main' | 'overflow';
  /** Last offset whose files are durable (-1: none). */
  done: bigint;
  /**
   * Last offset taken into a range (buffered, being written or done): a batch delivered again
   * (a rebalance, a retried fetch) must not add its messages a second time.
   */
  seen: bigint;
  /** A range recorded as pending before a crash: cut again at exactly `to`. */
  pending: { from: bigint; to: bigint } | undefined;
  buf: Buffer;
  /** Ranges being written, one after the other. */
  chain: Promise<void>;
  writing: number;
}

const newBuffer = (now: number): Buffer => ({
  from: undefined,
  last: undefined,
  rows: [],
  startedAt: now,
  durable: deferred(),
});

interface Progress {
  done: string;
  pending: { from: string; to: string } | null;
}

export interface WarehouseExporter {
  started: Promise<void>;
  stop(): Promise<void>;
}

export interface ExporterDeps {
  kafka: KafkaClient;
  admin: Admin;
  redis: Redis;
  redisPrefix: string;
  topicPrefix: string;
  topics: Topics;
  topicSpecs: TopicSpec[];
  partitions: number;
  root: string;
  secrets: Keyring;
  policy: GuardPolicy;
  log: Logger;
  now?: () => number;
  /** Tests: the target files go to (default: the definition's). */
  target?: Target;
}

/** Topic → dataset and lane, for the datasets an export takes. */
export function sourcesOf(
  def: Pick<WarehouseExport, 'datasets'>,
  t: Topics,
): Map<string, { dataset: WarehouseDataset; lane: 'main' | 'overflow' }> {
  const m = new Map<string, { dataset: WarehouseDataset; lane: 'main' | 'overflow' }>();
  if (def.datasets.includes('events')) {
    m.set(t.events, { dataset: 'events', lane: 'main' });
    m.set(t.eventsOverflow, { dataset: 'events', lane: 'overflow' });
  }
  if (def.datasets.includes('identity')) m.set(t.identity, { dataset: 'identity', lane: 'main' });
  if (def.datasets.includes('segment_changes'))
    m.set(t.segmentChanges, { dataset: 'segment_changes', lane: 'main' });
  return m;
}

export function startExporter(def: WarehouseExport, deps: ExporterDeps): WarehouseExporter {
  const now = deps.now ?? Date.now;
  const log = deps.log.child({ exportId: def.id, workspaceId: def.workspaceId });
  const keys = warehouseKeys(deps.redisPrefix);
  const target =
    deps.target ?? targetOf(def, { root: deps.root, secrets: deps.secrets, policy: deps.policy });
  const sources = sourcesOf(def, deps.topics);
  const erased = createErasedFilter({ redis: deps.redis, redisPrefix: deps.redisPrefix, now });
  const lanes = new Map<string, Lane>();
  const loading = new Map<string, Promise<Lane>>();
  let stopped = false;

  const laneOf = (topic: string, partition: number): Promise<Lane> => {
    const id = `${topic}:${partition}`;
    const have = lanes.get(id);
    if (have) return Promise.resolve(have);
    let p = loading.get(id);
    if (!p) {
      p = (async () => {
        const raw = await deps.redis.hget(keys.progress(def.id), id);
        const progress = raw ? (JSON.parse(raw) as Progress) : { done: '-1', pending: null };
        const done = BigInt(progress.done);
        const pending =
          progress.pending && BigInt(progress.pending.to) > done
            ? { from: BigInt(progress.pending.from), to: BigInt(progress.pending.to) }
            : undefined;
        const src = sources.get(topic);
        if (!src) throw new Error(`no dataset for topic ${topic}`);
        const lane: Lane = {
          topic,
          partition,
          ...src,
          done,
          seen: done,
          pending,
          buf: newBuffer(now()),
          chain: Promise.resolve(),
          writing: 0,
        };
        lanes.set(id, lane);
        loading.delete(id);
        return lane;
      })();
      loading.set(id, p);
    }
    return p;
  };

  const stat = (fields: Record<string, number>, extra: Record<string, string> = {}) => {
    const p = deps.redis.pipeline();
    for (const [k, v] of Object.entries(fields)) if (v) p.hincrby(keys.stats(def.id), k, v);
    if (Object.keys(extra).length) p.hset(keys.stats(def.id), extra);
    return p.exec().catch(() => {});
  };

  /** Writes one range's files, retrying until they are durable or the exporter stops. */
  const writeRange = async (lane: Lane, from: bigint, to: bigint, rows: Row[]) => {
    const field = `${lane.topic}:${lane.partition}`;
    const byDay = new Map<string, Row[]>();
    for (const r of rows) {
      const list = byDay.get(r.day);
      if (list) list.push(r);
      else byDay.set(r.day, [r]);
    }
    for (let attempt = 0; !stopped; attempt++) {
      try {
        const pending: Progress = {
          done: lane.done.toString(),
          pending: { from: from.toString(), to: to.toString() },
        };
        await deps.redis.hset(keys.progress(def.id), field, JSON.stringify(pending));
        for (const [day, dayRows] of byDay) {
          const key = fileKey({
            dataset: lane.dataset,
            day,
            lane: lane.lane,
            partition: lane.partition,
            from: from.toString(),
            to: to.toString(),
          });
          await target.put(key, toParquet(lane.dataset, dayRows));
        }
        const done: Progress = { done: to.toString(), pending: null };
        await deps.redis.hset(keys.progress(def.id), field, JSON.stringify(done));
        lane.done = to;
        await stat({ rows: rows.length, files: byDay.size }, { lastFileAt: new Date(now()).toISOString() });
        return true;
      } catch (err) {
        const message = errorMessage(err);
        log.warn(
          { topic: lane.topic, partition: lane.partition, attempt, err: message },
          'warehouse_write_failed',
        );
        await stat(
          { errors: 1 },
          { lastError: message.slice(0, 500), lastErrorAt: new Date(now()).toISOString() },
        );
        await realSleep(backoffDelayMs(attempt, 250, 5));
      }
    }
    return false;
  };

  /** Closes the lane's buffer as a range ending at `to` (default: its last offset) and writes it. */
  const cut = (lane: Lane, to?: bigint) => {
    const buf = lane.buf;
    if (buf.from === undefined || buf.last === undefined) return;
    lane.buf = newBuffer(now());
    const last = to ?? buf.last;
    if (lane.pending && last >= lane.pending.to) lane.pending = undefined;
    lane.writing++;
    lane.chain = lane.chain.then(async () => {
      const ok = await writeRange(lane, buf.from!, last, buf.rows);
      lane.writing--;
      if (ok) buf.durable.resolve();
      else buf.durable.reject(new Error('exporter stopped'));
    });
  };

  /** Whether the lane's buffer may be cut now by rows or age (a pending range waits for its end). */
  const mayCut = (lane: Lane) =>
    lane.buf.from !== undefined && (lane.pending === undefined || lane.buf.last! >= lane.pending.to);

  /**
   * Resolves once every offset the lane has taken is durable: the open buffer's range when it
   * has one (written after every earlier range), else the last range cut.
   */
  const effectsOf = (lane: Lane): Promise<void> =>
    lane.buf.from !== undefined
      ? lane.buf.durable.promise
      : lane.chain.then(() => {
          if (stopped || lane.done < lane.seen) throw new Error('exporter stopped');
        });

  const keep = (dataset: WarehouseDataset, msgs: IncomingMessage[]): IncomingMessage[] =>
    dataset === 'events' ? erased.events(msgs) : dataset === 'identity' ? erased.identityChanges(msgs) : msgs;

  const consumer = superviseConsumer({
    kafka: deps.kafka,
    admin: deps.admin,
    topics: deps.topicSpecs,
    consumer: {
      groupId: warehouseGroup(deps.topicPrefix, def.id),
      topics: [...sources.keys()],
      fromBeginning: true,
      maxBatchSize: 1000,
      concurrency: deps.partitions,
    },
    log: log.child({ consumer: 'warehouse' }),
    handler: async (batch, ctx) => {
      const lane = await laneOf(batch.topic, batch.partition);
      await erased.refresh();
      const fresh = batch.messages.filter((m) => BigInt(m.offset) > lane.seen);
      // all taken already: committable once what holds them is durable, not before
      if (fresh.length === 0) return { effects: effectsOf(lane) };
      const kept = new Set(keep(lane.dataset, fresh));
      let skipped = 0;
      for (const m of fresh) {
        const off = BigInt(m.offset);
        // a pending range ends at its recorded offset, even where that offset is not delivered
        if (lane.pending && off > lane.pending.to && lane.buf.from !== undefined) cut(lane, lane.pending.to);
        if (lane.buf.from === undefined) {
          lane.buf.from = off;
          lane.buf.startedAt = now();
        }
        lane.buf.last = off;
        lane.seen = off;
        if (kept.has(m)) {
          const row = toRow(lane.dataset, m);
          if (typeof row === 'string') skipped++;
          else if (row.workspaceId === def.workspaceId) {
            // erased memberships are known by profile id (no event time to compare)
            if (
              lane.dataset !== 'segment_changes' ||
              erased.memberships([{ workspace_id: row.workspaceId, profile_id: String(row.values[1]) }])
                .length > 0
            )
              lane.buf.rows.push(row);
          }
        }
        if (lane.pending && off >= lane.pending.to) cut(lane, lane.pending.to);
        else if (lane.buf.rows.length >= def.flushRows && mayCut(lane)) cut(lane);
      }
      if (skipped) {
        log.warn({ topic: batch.topic, partition: batch.partition, skipped }, 'warehouse_rows_skipped');
        await stat({ skipped });
      }
      // bounded: a slow target holds the partition back instead of buffering without end
      while (lane.writing > 2 && ctx.isActive() && !stopped)
        await Promise.race([lane.chain, realSleep(1000)]);
      return { effects: effectsOf(lane) };
    },
  });

  const timer = setInterval(
    () => {
      const t = now();
      for (const lane of lanes.values()) if (mayCut(lane) && t - lane.buf.startedAt >= def.flushMs) cut(lane);
    },
    Math.max(100, Math.min(1000, Math.floor(def.flushMs / 4))),
  );
  timer.unref();

  return {
    started: consumer.started,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await consumer.stop();
      for (const lane of lanes.values()) lane.buf.durable.reject(new Error('exporter stopped'));
      await Promise.race([Promise.allSettled([...lanes.values()].map((l) => l.chain)), realSleep(10_000)]);
    },
  };
}
