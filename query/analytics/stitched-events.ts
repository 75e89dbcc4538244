// The one place analytics read `events`: deduplicated by message_id (the table is a
// ReplacingMergeTree, so a replayed message may sit in two parts until they merge) and
// resolved to a person through identity_links: the latest profile of the event's userId,
// else of its anonymousId, else 'u:'+userId / 'a:'+anonymousId. A merged person is one
// profile id, so it counts once, with the events of every identifier it holds.
import type { SqlParams } from './sql-params.ts';

export interface StitchedOptions {
  workspaceId: string;
  fromMs: number;
  toMs: number;
  /** Only these event names (the filter runs before dedup, on the sorting key). */
  events?: string[];
  /** Extra columns computed on each event: alias → SQL over the `events` columns. */
  columns: Record<string, string>;
  /** An extra condition on the event (a compiled `where`). */
  where?: string;
  /** Resolve persons (skip when only events are counted). */
  persons: boolean;
}

/**
 * A subquery with `ts` (epoch ms, Int64), `message_id`, `person` (when asked) and the
 * requested columns. Dedup keeps one row per message_id with LIMIT 1 BY: duplicates are
 * the same message, so which copy is kept does not matter; it needs one hash set of the
 * message ids in range, cheaper than FINAL over every part of the month partitions.
 */
export function stitchedEvents(o: StitchedOptions, params: SqlParams): string {
  const ws = params.bind(o.workspaceId, 'String');
  const cols = Object.entries(o.columns);
  const inner = `SELECT message_id, toUnixTimestamp64Milli(timestamp) AS ts, user_id, anonymous_id${cols
    .map(([alias, sql]) => `, ${sql} AS ${alias}`)
    .join('')}
    FROM events
    WHERE workspace_id = ${ws}
      AND timestamp >= fromUnixTimestamp64Milli(${params.bind(o.fromMs, 'Int64')})
      AND timestamp < fromUnixTimestamp64Milli(${params.bind(o.toMs, 'Int64')})
      ${o.events ? `AND event IN ${params.bind(o.events, 'Array(String)')}` : ''}
      ${o.where ? `AND ${o.where}` : ''}
    LIMIT 1 BY message_id`;
  const outerCols = cols.map(([alias]) => `, e.${alias} AS ${alias}`).join('');
  if (!o.persons) return `(SELECT e.message_id AS message_id, e.ts AS ts${outerCols} FROM (${inner}) AS e)`;
  const links = (kind: string) => `(SELECT id_value, argMax(profile_id, version) AS pid
      FROM identity_links WHERE workspace_id = ${ws} AND id_type = '${kind}' GROUP BY id_value)`;
  return `(SELECT e.message_id AS message_id, e.ts AS ts${outerCols},
      multiIf(ul.pid != '', ul.pid, al.pid != '', al.pid,
              e.user_id != '', concat('u:', e.user_id), concat('a:', e.anonymous_id)) AS person
    FROM (${inner}) AS e
    LEFT JOIN ${links('user')} AS ul ON ul.id_value = e.user_id
    LEFT JOIN ${links('anon')} AS al ON al.id_value = e.anonymous_id)`;
}
