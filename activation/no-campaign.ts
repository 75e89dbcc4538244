// Segment changes that no active campaign matched, counted per workspace, segment and
// direction, so "the profile entered and nothing was sent" is visible (GET /v1/segments/{id}
// shows it) rather than silent. One pipelined HINCRBY per distinct (segment, direction) of a
// batch; at-least-once like every follow-up (a redelivered batch may count again).
import type { Redis } from '../runtime/redis.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import type { SegmentChange } from '../schemas/segment-change.ts';

export interface NoCampaignCounter {
  add(changes: SegmentChange[]): Promise<void>;
}

export function noCampaignCounter(deps: { redis: Redis; redisPrefix: string }): NoCampaignCounter {
  return {
    async add(changes) {
      if (changes.length === 0) return;
      const counts = new Map<string, { key: string; field: string; n: number }>();
      for (const c of changes) {
        const key = workspaceKeys(deps.redisPrefix, c.workspaceId).noCampaign;
        const field = `${c.segmentId}:${c.type}`;
        const id = `${key}\u0000${field}`;
        const entry = counts.get(id) ?? { key, field, n: 0 };
        entry.n++;
        counts.set(id, entry);
      }
      const p = deps.redis.pipeline();
      for (const { key, field, n } of counts.values()) p.hincrby(key, field, n);
      const res = await p.exec();
      for (const [err] of res ?? []) if (err) throw err;
    },
  };
}
