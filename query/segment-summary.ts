// What the console's segment list shows for each segment: member count, backfill status
// and the latest entries, read from Redis in two pipelined round trips per workspace, and
// the latest exits, from the ClickHouse membership history (segment_membership_history).
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { DefinitionStore } from '../runtime/definitions.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import { globalKeys, workspaceKeys } from '../schemas/redis-keys.ts';
import type { BackfillStatus } from '../schemas/segment.ts';

export interface SegmentSummary {
  id: string;
  name: string;
  version: number;
  updatedAt: string;
  count: number;
  /** `backfilling` until the current version's backfill over existing profiles has finished. */
  status: 'backfilling' | 'ready';
  /** Profiles the backfill of the current version has scanned so far. */
  scanned: number;
  /** The latest entries still in the segment, newest first. */
  recentEntries: Array<{ profileId: string; userId: string | null; at: string }>;
  /** The latest exits recorded in the membership history, newest first (empty while it holds none). */
  recentExits: Array<{ profileId: string; userId: string | null; at: string }>;
}

export const RECENT_ENTRIES = 5;

export async function segmentSummaries(
  deps: {
    redis: Redis;
    defs: DefinitionStore;
    redisPrefix: string;
    /** Where exits are read from; without it (or while it fails) `recentExits` is empty. */
    clickhouse?: ClickHouseClient;
    log?: Logger;
  },
  ws: string,
): Promise<SegmentSummary[]> {
  const defs = await deps.defs.list('segments', ws);
  if (defs.length === 0) return [];
  let exits = new Map<string, Array<{ profileId: string; at: number }>>();
  if (deps.clickhouse)
    try {
      exits = await recentExits(
        deps.clickhouse,
        ws,
        defs.map((d) => d.id),
      );
    } catch (err) {
      // counts and entries (Redis) are still worth showing
      deps.log?.warn({ err: (err as Error).message }, 'segment_exits_unavailable');
    }
  const keys = workspaceKeys(deps.redisPrefix, ws);
  const pipe = deps.redis.pipeline();
  for (const d of defs) {
    pipe.zcard(keys.segmentMembers(d.id));
    pipe.zrevrange(keys.segmentMembers(d.id), 0, RECENT_ENTRIES - 1, 'WITHSCORES');
    pipe.hget(globalKeys(deps.redisPrefix).backfills, `${ws}/${d.id}`);
  }
  const res = ((await pipe.exec()) ?? []).map(([err, v]) => {
    if (err) throw err;
    return v;
  });
  const entries = defs.map((_, i) => {
    const flat = res[i * 3 + 1] as string[];
    const out: Array<{ profileId: string; at: number }> = [];
    for (let j = 0; j + 1 < flat.length; j += 2) out.push({ profileId: flat[j]!, at: Number(flat[j + 1]) });
    return out;
  });
  const userIds = await firstUserIds(deps.redis, keys, [
    ...new Set([...entries.flat(), ...[...exits.values()].flat()].map((e) => e.profileId)),
  ]);
  const show = (e: { profileId: string; at: number }) => ({
    profileId: e.profileId,
    userId: userIds.get(e.profileId) ?? null,
    at: new Date(e.at).toISOString(),
  });
  return defs.map((d, i) => {
    const raw = res[i * 3 + 2] as string | null;
    const b = raw ? (JSON.parse(raw) as BackfillStatus) : undefined;
    // a version whose backfill has not reported yet is still backfilling (as GET /v1/segments/{id})
    const current = b && b.version === d.version ? b : undefined;
    return {
      id: d.id,
      name: d.name,
      version: d.version,
      updatedAt: d.updatedAt,
      count: Number(res[i * 3]),
      status: current?.status ?? 'backfilling',
      scanned: current?.scanned ?? 0,
      recentEntries: entries[i]!.map(show),
      recentExits: (exits.get(d.id) ?? []).map(show),
    };
  });
}

/** The latest exits (even epochs) of each segment, a transition recorded twice counted once. */
async function recentExits(
  ch: ClickHouseClient,
  ws: string,
  segmentIds: string[],
): Promise<Map<string, Array<{ profileId: string; at: number }>>> {
  const rs = await ch.query({
    query: `SELECT segment_id, profile_id, toString(toUnixTimestamp64Milli(at)) AS ms FROM (
              SELECT segment_id, profile_id, epoch, at FROM segment_membership_history
              WHERE workspace_id = {ws:String} AND segment_id IN {ids:Array(String)} AND epoch % 2 = 0
              LIMIT 1 BY segment_id, profile_id, epoch)
            ORDER BY at DESC, profile_id
            LIMIT {n:UInt32} BY segment_id`,
    query_params: { ws, ids: segmentIds, n: RECENT_ENTRIES },
    format: 'JSONEachRow',
  });
  const out = new Map<string, Array<{ profileId: string; at: number }>>();
  for (const r of await rs.json<{ segment_id: string; profile_id: string; ms: string }>()) {
    const list = out.get(r.segment_id) ?? [];
    list.push({ profileId: r.profile_id, at: Number(r.ms) });
    out.set(r.segment_id, list);
  }
  return out;
}

/** The (alphabetically first) userId of each profile, for showing people by a known name. */
async function firstUserIds(
  redis: Redis,
  keys: ReturnType<typeof workspaceKeys>,
  ids: string[],
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (ids.length === 0) return out;
  const pipe = redis.pipeline();
  for (const id of ids) pipe.smembers(keys.profileIdentities(id));
  const res = (await pipe.exec()) ?? [];
  ids.forEach((id, i) => {
    const users = ((res[i]?.[1] ?? []) as string[])
      .filter((x) => x.startsWith('user:'))
      .map((x) => x.slice(5))
      .sort();
    if (users[0]) out.set(id, users[0]);
  });
  return out;
}
