// Journey waits end on durable timers: a sorted set of (run, node) members scored by their
// deadline, claimed with a lease by any worker (a claimer that dies gives its timers back
// when the lease ends), so a wait ends within a poll interval of its deadline, once in
// effect (a timer whose run has moved on is ignored).
// A person who has been erased gets no timer: setting one (a wait, a parked wait, a date
// entry) checks the workspace's tombstones in the same atomic step, so a step that was under
// way while the erasure ran cannot put the erased profile id back into the timer sets after
// the erasure took its members out (query/erase-profile.ts).

import { createHash } from 'node:crypto';
import type { Logger } from '../../runtime/log.ts';
import { metrics } from '../../runtime/metrics.ts';
import { isCluster, type Redis } from '../../runtime/redis.ts';
import { parseTimerMember, timerMember } from '../../schemas/journey-timer.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import type { RunRef } from './run-state.ts';

export { parseTimerMember, timerMember };

const CLAIM = `
local now, leaseUntil, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], '-inf', now, 'BYSCORE', 'LIMIT', 0, 1000)) do
  redis.call('ZADD', KEYS[1], 'LT', now, m)
  redis.call('ZREM', KEYS[2], m)
end
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit, 'WITHSCORES')
for i = 1, #due, 2 do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('ZADD', KEYS[2], leaseUntil, due[i])
end
return due`;

const UNPARK = `
local m = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #m, 2 do redis.call('ZADD', KEYS[2], m[i + 1], m[i]) end
redis.call('DEL', KEYS[1])
return #m / 2`;

// Sets a timer unless the person was erased. KEYS: 1 timer set (due or parked), 2 the
// workspace's tombstones (schemas/erasure.ts). ARGV: due ms, member, profile id → 1 | 0
const SET = `
if redis.call('ZSCORE', KEYS[2], redis.sha1hex('profile:' .. ARGV[3])) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return 1`;

/**
 * SET on a Redis Cluster, where the timer sets (global tag) and the tombstones (workspace
 * tag) are on different slots, so no one script sees both: check, add, check again and take
 * the timer out if a tombstone came meanwhile. The erasure writes its tombstones before it
 * removes the person's timers (query/erase-profile.ts), so a timer added before the second
 * check saw a tombstone is removed by the erasure's later step, one added after it is
 * removed here: the erased id is never left in a timer set.
 */
async function setApart(
  redis: Redis,
  set: string,
  tombs: string,
  ref: RunRef,
  run: number,
  node: string,
  dueMs: number,
): Promise<number> {
  const tomb = createHash('sha1').update(`profile:${ref.profileId}`).digest('hex');
  if ((await redis.zscore(tombs, tomb)) !== null) return 0;
  const member = timerMember(ref, run, node);
  await redis.zadd(set, dueMs, member);
  if ((await redis.zscore(tombs, tomb)) === null) return 1;
  await redis.zrem(set, member);
  return 0;
}

export interface DueRun {
  ref: RunRef;
  run: number;
  node: string;
}

export function journeyTimers(opts: {
  redis: Redis;
  prefix: string;
  log: Logger;
  now: () => number;
  leaseMs?: number;
  batch?: number;
}) {
  const keys = globalKeys(opts.prefix);
  type Claim = (due: string, lease: string, now: number, until: number, limit: number) => Promise<string[]>;
  const r = opts.redis as unknown as { cdpClaimJourneyTimers?: Claim };
  if (typeof r.cdpClaimJourneyTimers !== 'function')
    opts.redis.defineCommand('cdpClaimJourneyTimers', { numberOfKeys: 2, lua: CLAIM });
  if (typeof (opts.redis as unknown as Record<string, unknown>).cdpUnparkJourneyTimers !== 'function')
    opts.redis.defineCommand('cdpUnparkJourneyTimers', { numberOfKeys: 2, lua: UNPARK });
  const claim: Claim = (...a) =>
    (opts.redis as unknown as { cdpClaimJourneyTimers: Claim }).cdpClaimJourneyTimers(...a);
  type SetTimer = (set: string, tombs: string, dueMs: number, member: string, pid: string) => Promise<number>;
  if (typeof (opts.redis as unknown as Record<string, unknown>).cdpSetJourneyTimer !== 'function')
    opts.redis.defineCommand('cdpSetJourneyTimer', { numberOfKeys: 2, lua: SET });
  const set = isCluster(opts.redis)
    ? (key: string, ref: RunRef, run: number, node: string, dueMs: number) =>
        setApart(opts.redis, key, workspaceKeys(opts.prefix, ref.workspaceId).erased, ref, run, node, dueMs)
    : (key: string, ref: RunRef, run: number, node: string, dueMs: number) =>
        (opts.redis as unknown as { cdpSetJourneyTimer: SetTimer }).cdpSetJourneyTimer(
          key,
          workspaceKeys(opts.prefix, ref.workspaceId).erased,
          dueMs,
          timerMember(ref, run, node),
          ref.profileId,
        );
  return {
    /** Sets the run's timer at `node` (none for an erased person). */
    async schedule(ref: RunRef, run: number, node: string, dueMs: number): Promise<void> {
      await set(keys.journeysDue, ref, run, node, dueMs);
    },
    /** A paused journey's timer waits aside until the journey resumes (unpark). */
    async park(ref: RunRef, run: number, node: string, dueMs: number): Promise<void> {
      await set(keys.journeysParked(ref.workspaceId, ref.journeyId), ref, run, node, dueMs);
    },
    /** Puts a resumed journey's parked timers back (those past due fire at once). */
    async unpark(workspaceId: string, journeyId: string): Promise<number> {
      return Number(
        await (
          opts.redis as unknown as { cdpUnparkJourneyTimers: (a: string, b: string) => Promise<number> }
        ).cdpUnparkJourneyTimers(keys.journeysParked(workspaceId, journeyId), keys.journeysDue),
      );
    },
    /**
     * Claims due timers and hands them to `fire` (all at once; it settles each); a timer
     * whose handling failed goes back to the due set for the next round.
     */
    async tick(fire: (due: DueRun) => Promise<void>): Promise<number> {
      const now = opts.now();
      // member, due time, member, due time, …
      const pairs = await claim(
        keys.journeysDue,
        keys.journeysLease,
        now,
        now + (opts.leaseMs ?? 30_000),
        opts.batch ?? 2000,
      );
      if (pairs.length === 0) return 0;
      const members: string[] = [];
      for (let i = 0; i < pairs.length; i += 2) {
        members.push(pairs[i]!);
        metrics.timerLateness.observe(Math.max(0, now - Number(pairs[i + 1])) / 1000);
      }
      metrics.timersFired.inc(members.length);
      const settled = await Promise.allSettled(
        members.map(async (m) => {
          const due = parseTimerMember(m);
          if (due) await fire(due);
        }),
      );
      const failed = members.filter((_, i) => settled[i]!.status === 'rejected');
      for (const [i, s] of settled.entries())
        if (s.status === 'rejected')
          opts.log.warn({ member: members[i], err: (s.reason as Error).message }, 'journey_timer_failed');
      // back for the next round (unless the person was erased meanwhile), then out of the lease
      await Promise.all(
        failed.map((m) => {
          const t = parseTimerMember(m)!;
          return set(keys.journeysDue, t.ref, t.run, t.node, now + 1000);
        }),
      );
      await opts.redis.zrem(keys.journeysLease, ...members);
      return members.length;
    },
    size: () => opts.redis.zcard(keys.journeysDue),
    /** Timers claimed per tick at most: a tick that got this many should be followed at once. */
    batch: opts.batch ?? 2000,
  };
}
export type JourneyTimers = ReturnType<typeof journeyTimers>;
