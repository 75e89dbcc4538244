// The history sink's filter for erased people (schemas/erasure.ts): events received before
// the erasure of their userId or anonymousId, and identity and membership rows of an erased
// profile id (profile ids are never reused, so those at any time), are dropped before they
// are handed to an insert, so nothing still in flight at the erasure reappears in ClickHouse.
//
// The tombstones are cached and re-read at most every TOMBSTONE_REFRESH_MS (one pipelined
// read per refresh, never one per event). A message produced well after the latest erasure
// of any workspace cannot be one received before it: it passes on its Kafka timestamp alone,
// unparsed, so a sink that keeps up parses nothing; only a backlog from before an erasure is
// read event by event.
import type { IncomingMessage } from '../runtime/kafka/index.ts';
import type { Redis } from '../runtime/redis.ts';
import {
  TOMBSTONE_REFRESH_MS,
  TOMBSTONE_RETENTION_MS,
  type TombstoneKind,
  tombstoneMember,
} from '../schemas/erasure.ts';
import { globalKeys, workspaceKeys } from '../schemas/redis-keys.ts';

/** Clock skew between hosts and time a message spends being produced, allowed for. */
const MARGIN_MS = 60_000;

export interface ErasedFilter {
  /** Re-reads the tombstones when the cached copy is older than the refresh interval. */
  refresh(): Promise<void>;
  events(msgs: IncomingMessage[]): IncomingMessage[];
  identityChanges(msgs: IncomingMessage[]): IncomingMessage[];
  memberships<R extends { workspace_id: string; profile_id: string }>(rows: R[]): R[];
  readonly dropped: number;
}

export function createErasedFilter(deps: {
  redis: Redis;
  redisPrefix: string;
  now?: () => number;
  refreshMs?: number;
}): ErasedFilter {
  const now = deps.now ?? Date.now;
  const refreshMs = deps.refreshMs ?? TOMBSTONE_REFRESH_MS;
  /** workspace → tombstone member → erasure time (ms) */
  const byWs = new Map<string, Map<string, number>>();
  let newest = Number.NEGATIVE_INFINITY;
  let readAt = Number.NEGATIVE_INFINITY;
  let reading: Promise<void> | undefined;
  let dropped = 0;

  /** Per workspace: the newest tombstone time read so far (the next read starts a margin before it). */
  const readUpTo = new Map<string, number>();
  let prunedAt = Number.NEGATIVE_INFINITY;

  // Incremental: each refresh reads only the tombstones written since the last one (with a
  // margin for erasures whose clocks lag), so its cost follows the erasures of the last
  // minute, not all those kept; what is past the retention is pruned once a minute.
  const read = async () => {
    const started = now();
    const since = started - TOMBSTONE_RETENTION_MS;
    const ws = await deps.redis.zrangebyscore(globalKeys(deps.redisPrefix).erasedWorkspaces, since, '+inf');
    if (ws.length > 0) {
      const p = deps.redis.pipeline();
      for (const w of ws) {
        const from = Math.max(since, (readUpTo.get(w) ?? Number.NEGATIVE_INFINITY) - MARGIN_MS);
        p.zrangebyscore(workspaceKeys(deps.redisPrefix, w).erased, from, '+inf', 'WITHSCORES');
      }
      const res = (await p.exec()) ?? [];
      ws.forEach((w, i) => {
        const [err, flat] = res[i] ?? [];
        if (err) throw err;
        const list = flat as string[];
        if (list.length === 0) return;
        const m = byWs.get(w) ?? new Map<string, number>();
        byWs.set(w, m);
        let upTo = readUpTo.get(w) ?? Number.NEGATIVE_INFINITY;
        for (let j = 0; j < list.length; j += 2) {
          const at = Number(list[j + 1]);
          m.set(list[j]!, at);
          if (at > upTo) upTo = at;
          if (at > newest) newest = at;
        }
        readUpTo.set(w, upTo);
      });
    }
    if (started - prunedAt >= 60_000) {
      prunedAt = started;
      const listed = new Set(ws);
      for (const [w, m] of byWs) {
        for (const [member, at] of m) if (at < since) m.delete(member);
        if (m.size === 0 || !listed.has(w)) {
          byWs.delete(w);
          readUpTo.delete(w);
        }
      }
    }
    readAt = started;
  };

  const erasedAt = (ws: string, kind: TombstoneKind, value: unknown): number | undefined => {
    if (typeof value !== 'string' || value === '') return undefined;
    return byWs.get(ws)?.get(tombstoneMember(kind, value));
  };
  /** Messages produced after the latest erasure (and its margin) need no look. */
  const mayMatter = (m: IncomingMessage) => byWs.size > 0 && m.timestamp <= newest + MARGIN_MS;
  const parsed = (m: IncomingMessage): Record<string, unknown> | undefined => {
    try {
      const v = JSON.parse(m.value?.toString('utf8') ?? '');
      return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
    } catch {
      return undefined; // the sink's own checks dead-letter it
    }
  };
  const keep = <T>(items: T[], erased: (item: T) => boolean): T[] => {
    const out = items.filter((i) => !erased(i));
    dropped += items.length - out.length;
    return out;
  };

  return {
    async refresh() {
      if (now() - readAt < refreshMs) return;
      reading ??= read().finally(() => {
        reading = undefined;
      });
      await reading;
    },
    events(msgs) {
      if (byWs.size === 0) return msgs;
      return keep(msgs, (m) => {
        if (!mayMatter(m)) return false;
        const e = parsed(m);
        if (!e || typeof e.workspaceId !== 'string') return false;
        const received = Date.parse(String(e.receivedAt));
        for (const at of [
          erasedAt(e.workspaceId, 'user', e.userId),
          erasedAt(e.workspaceId, 'anon', e.anonymousId),
        ])
          if (at !== undefined && !(received > at)) return true;
        return false;
      });
    },
    identityChanges(msgs) {
      if (byWs.size === 0) return msgs;
      return keep(msgs, (m) => {
        if (!mayMatter(m)) return false;
        const c = parsed(m);
        return (
          !!c &&
          typeof c.workspaceId === 'string' &&
          erasedAt(c.workspaceId, 'profile', c.profileId) !== undefined
        );
      });
    },
    memberships(rows) {
      if (byWs.size === 0) return rows;
      return keep(rows, (r) => erasedAt(r.workspace_id, 'profile', r.profile_id) !== undefined);
    },
    get dropped() {
      return dropped;
    },
  };
}
