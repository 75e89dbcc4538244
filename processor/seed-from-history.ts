// A new segment's counted conditions start empty in Redis: the processor records event
// times only for conditions that exist. Before its backfill evaluates anyone, a new
// segment's conditions are seeded from the ClickHouse history of the window (deduplicated
// by messageId), so "bought in the last 30 days" counts purchases made before the segment
// was saved. Seeding is idempotent and runs next to streaming without double counting.
// The writes to the profiles are profiles/seed-condition.ts's.
import { seedCondition } from '../profiles/seed-condition.ts';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import type { WindowedCount } from '../schemas/rules.ts';

const CHUNK = 1000;

interface HistoryRow {
  user_id: string;
  anonymous_id: string;
  message_id: string;
  ts: string;
  properties?: string;
}

/** The script the seeding calls (profiles/seed-condition.ts), defined once per client. */
export { defineSeedCondition } from '../profiles/seed-condition.ts';

/**
 * Seeds each condition over the longest window that reads it. Returns the number of
 * historical events added to profiles.
 */
export async function seedFromHistory(opts: {
  clickhouse: ClickHouseClient;
  redis: Redis;
  tag: string;
  workspaceId: string;
  counts: readonly WindowedCount[];
  nowMs: number;
  log: Logger;
}): Promise<number> {
  const longest = new Map<string, WindowedCount>();
  for (const c of opts.counts) {
    const known = longest.get(c.condition.id);
    if (!known || known.windowMs < c.windowMs) longest.set(c.condition.id, c);
  }
  let added = 0;
  for (const { condition, windowMs } of longest.values()) {
    const filtered = condition.filter !== null;
    const rs = await opts.clickhouse.query({
      query: `SELECT user_id, anonymous_id, message_id, toString(toUnixTimestamp64Milli(timestamp)) AS ts
                ${filtered ? ', properties' : ''}
              FROM events
              WHERE workspace_id = {ws:String} AND type = 'track' AND event = {event:String}
                AND timestamp > fromUnixTimestamp64Milli({since:Int64})
              LIMIT 1 BY message_id`,
      query_params: { ws: opts.workspaceId, event: condition.event, since: opts.nowMs - windowMs },
      format: 'JSONEachRow',
    });
    let args: (string | number)[] = [];
    const flush = async () => {
      if (args.length === 0) return;
      added += await seedCondition(opts.redis, opts.tag, condition.id, windowMs, opts.nowMs, args);
      args = [];
    };
    for await (const rows of rs.stream<HistoryRow>()) {
      for (const r of rows) {
        const row = r.json();
        if (filtered && !condition.matches(parseProperties(row.properties))) continue;
        args.push(row.user_id, row.anonymous_id, row.message_id, row.ts);
        if (args.length >= CHUNK * 4) await flush();
      }
    }
    await flush();
  }
  if (added > 0)
    opts.log.info({ workspaceId: opts.workspaceId, events: added }, 'conditions_seeded_from_history');
  return added;
}

function parseProperties(s: string | undefined): Record<string, unknown> {
  try {
    const v = JSON.parse(s ?? '{}') as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
