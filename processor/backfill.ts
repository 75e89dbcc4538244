// Backfill: a new segment (or a new version of one) is evaluated over the profiles that
// already exist. Streaming evaluates it from the moment the registry has it; the
// backfill covers everyone else. Both go through the same compare-and-set of membership
// epochs, so a profile reached by both enters once, and nobody is missed.
// One processor runs each backfill (a lock per segment version, refreshed while it runs;
// if its holder dies, another takes over when the lock expires and starts again:
// re-evaluation is idempotent).
import { randomUUID } from 'node:crypto';
import { scanProfileIds } from '../profiles/scan.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import { globalKeys, workspaceKeys } from '../schemas/redis-keys.ts';
import type { BackfillStatus, SegmentDefinition } from '../schemas/segment.ts';
import type { Touched } from './segment-registry.ts';

const LOCK_SECONDS = 60;

export function createBackfiller(opts: {
  redis: Redis;
  prefix: string;
  reevaluate(members: Array<{ workspaceId: string; profileId: string }>, touched: Touched): Promise<void>;
  /** Runs first: brings in what the segment needs from history (its counted conditions). */
  seed?(def: SegmentDefinition): Promise<void>;
  log: Logger;
  now?: () => Date;
  chunk?: number;
}) {
  const keys = globalKeys(opts.prefix);
  const owner = randomUUID();
  const now = opts.now ?? (() => new Date());
  const running = new Map<string, Promise<void>>();

  const run = async (def: SegmentDefinition, lock: string) => {
    const field = `${def.workspaceId}/${def.id}`;
    const status: BackfillStatus = {
      version: def.version,
      status: 'backfilling',
      scanned: 0,
      startedAt: now().toISOString(),
      finishedAt: null,
    };
    await opts.redis.hset(keys.backfills, field, JSON.stringify(status));
    await opts.seed?.(def);
    const tag = workspaceKeys(opts.prefix, def.workspaceId).tag;
    let cursor = '0';
    do {
      const page = await scanProfileIds(opts.redis, tag, cursor, opts.chunk ?? 1000);
      cursor = page.cursor;
      const members = page.ids.map((profileId) => ({ workspaceId: def.workspaceId, profileId }));
      // the segment and what reads it: the others are not changed by a new definition
      await opts.reevaluate(members, { segments: [def.id] });
      status.scanned += members.length;
      await opts.redis
        .multi()
        .hset(keys.backfills, field, JSON.stringify(status))
        .expire(lock, LOCK_SECONDS)
        .exec();
    } while (cursor !== '0');
    status.status = 'ready';
    status.finishedAt = now().toISOString();
    await opts.redis.hset(keys.backfills, field, JSON.stringify(status));
    opts.log.info(
      { segmentId: def.id, version: def.version, profiles: status.scanned },
      'segment_backfilled',
    );
  };

  return {
    /** Starts the backfills the definitions need and nobody else runs; returns at once. */
    async sync(defs: SegmentDefinition[]): Promise<void> {
      const statuses = await opts.redis.hgetall(keys.backfills);
      for (const def of defs) {
        if (def.status !== 'active') continue;
        const field = `${def.workspaceId}/${def.id}`;
        const known = statuses[field] ? (JSON.parse(statuses[field]) as BackfillStatus) : undefined;
        if (known && known.version >= def.version && known.status === 'ready') continue;
        const runKey = `${field}/${def.version}`;
        if (running.has(runKey)) continue;
        const lock = keys.backfillLock(def.workspaceId, def.id, def.version);
        if ((await opts.redis.set(lock, owner, 'EX', LOCK_SECONDS, 'NX')) !== 'OK') continue;
        const p = run(def, lock)
          .catch((err) =>
            opts.log.warn({ segmentId: def.id, err: (err as Error).message }, 'segment_backfill_failed'),
          )
          .finally(() => {
            running.delete(runKey);
            void opts.redis.del(lock).catch(() => {});
          });
        running.set(runKey, p);
      }
    },
    /** Resolves when every backfill this process started has finished. */
    async idle(): Promise<void> {
      while (running.size > 0) await Promise.all(running.values());
    },
  };
}
