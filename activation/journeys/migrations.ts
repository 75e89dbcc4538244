// Migrations: people in flight on an older version of a journey moved to its current one,
// when the user asks (POST /v1/journeys/{id}/migrate). The request is a record in Redis
// ({from, to, nodes, cursor, moved, skipped, done}); one runner at a time works it off,
// holding a lease, paging the journey's run hashes with SCAN and saving the cursor after
// each page, so a runner that dies is taken over where it stopped. Each person moves by
// compare-and-set (run-state.lua `migrate`), so a repeated page moves no one twice.

import type { Logger } from '../../runtime/log.ts';
import type { Redis } from '../../runtime/redis.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import type { JourneyEngine } from './journey-engine.ts';
import type { JourneyRegistry } from './journey-registry.ts';
import { takeLease, tickLoop } from './leased-work.ts';

export interface MigrationRecord {
  /** The version people are moved from, and to (the journey's version when asked). */
  from: number;
  to: number;
  /** Node of `from` → node of `to`; unmapped nodes go to the node of the same id. */
  nodes: Record<string, string>;
  status: 'pending' | 'done';
  /** SCAN cursor over the journey's run hashes ('0' before the first page). */
  cursor: string;
  moved: number;
  /**
   * People at a node the new version lacks (no mapping): they stay on `from`. Both counts
   * are saved per page: after a runner's crash, people moved on the page it was on are
   * moved (once) but may go uncounted.
   */
  skipped: number;
  requestedAt: string;
  finishedAt?: string;
}

export function journeyMigrations(opts: {
  redis: Redis;
  prefix: string;
  log: Logger;
  now: () => number;
  engine: Pick<JourneyEngine, 'migrate'>;
  /** The runner's definitions: a migration waits until they hold its target version. */
  registry: Pick<JourneyRegistry, 'version'>;
  page?: number;
  leaseMs?: number;
}) {
  const keys = globalKeys(opts.prefix);
  const page = opts.page ?? 500;
  const leaseMs = opts.leaseMs ?? 30_000;

  const read = async (field: string): Promise<MigrationRecord | undefined> => {
    const raw = await opts.redis.hget(keys.journeysMigrations, field);
    try {
      return raw ? (JSON.parse(raw) as MigrationRecord) : undefined;
    } catch {
      return undefined;
    }
  };

  /** Works off one journey's pending migration; the number of people it moved. */
  async function run(workspaceId: string, journeyId: string): Promise<number> {
    const field = `${workspaceId}/${journeyId}`;
    const first = await read(field);
    if (first?.status !== 'pending') return 0;
    if (!opts.registry.version(workspaceId, journeyId, first.to)) return 0; // not loaded here yet
    const lease = keys.journeysMigrationLease(workspaceId, journeyId);
    const held = await takeLease(opts.redis, lease, leaseMs);
    if (!held) return 0;
    let moved = 0;
    try {
      const k = workspaceKeys(opts.prefix, workspaceId);
      const head = k.journeyRun(journeyId, '');
      const match = `${head.replace(/[*?[\]\\]/g, '\\$&')}*`;
      for (;;) {
        // read again: a newer request (another version) replaces this one
        const m = await read(field);
        if (m?.status !== 'pending') break;
        const [cursor, found]: [string, string[]] = await opts.redis.scan(
          m.cursor,
          'MATCH',
          match,
          'COUNT',
          page,
        );
        let pageMoved = 0;
        let pageSkipped = 0;
        for (const key of found) {
          const ref = { workspaceId, journeyId, profileId: key.slice(head.length) };
          const r = await opts.engine.migrate(ref, m.from, m.to, m.nodes);
          if (r === 'moved') pageMoved++;
          else if (r === 'skipped') pageSkipped++;
        }
        moved += pageMoved;
        const after = await read(field);
        // replaced meanwhile by a newer request: leave it be
        if (after?.requestedAt !== m.requestedAt || after.from !== m.from) break;
        const next: MigrationRecord = {
          ...m,
          cursor,
          moved: m.moved + pageMoved,
          // a repeated page (after a crash) finds its people moved already: not counted twice
          skipped: m.skipped + pageSkipped,
          ...(cursor === '0' ? { status: 'done', finishedAt: new Date(opts.now()).toISOString() } : {}),
        };
        await opts.redis.hset(keys.journeysMigrations, field, JSON.stringify(next));
        if (cursor === '0') {
          opts.log.info(
            { workspaceId, journeyId, moved: next.moved, skipped: next.skipped },
            'journey_migration_done',
          );
          break;
        }
        if (!(await held.renew())) break; // lease lost
      }
    } finally {
      await held.release();
    }
    return moved;
  }

  const loop = tickLoop(() => api.tick());
  const api = {
    run,
    /** Every pending migration, once. */
    async tick(): Promise<number> {
      let n = 0;
      const all = await opts.redis.hgetall(keys.journeysMigrations);
      for (const [field, raw] of Object.entries(all)) {
        if (!raw.includes('"pending"')) continue;
        const at = field.indexOf('/');
        n += await run(field.slice(0, at), field.slice(at + 1)).catch((err) => {
          opts.log.warn({ field, err: (err as Error).message }, 'journey_migration_failed');
          return 0;
        });
      }
      return n;
    },
    /** Ticks every `intervalMs` until stopped, after `ready` (the definitions loaded). */
    start: (intervalMs: number, ready: () => Promise<unknown>) => loop.start(intervalMs, ready),
    stop: () => loop.stop(),
  };
  return api;
}
