// Settling, step 4: the decided transitions recorded (one compare-and-set call per profile,
// record-membership.lua) and the next time-driven evaluations scheduled, in one round trip.
// Answers the profiles to evaluate again.

import { queueRecordMembership } from '../../profiles/record-membership.ts';
import type { ProcessorDeps } from '../pipeline.ts';
import type { Decisions } from './decide-transitions.ts';
import { type Recheck, tagOf } from './shared.ts';

// the script is the profile model's; pipeline.ts defines it through this module
export { defineRecordMembership } from '../../profiles/record-membership.ts';

/**
 * `timers`: the timer set's key (globalKeys(prefix).timers, timers.ts).
 *
 * A profile whose membership moved while something else changed it since the read is
 * evaluated again on a fresh read: a concurrent batch (another partition) may have decided
 * on the state from before this record (an in_segment dependent, a trait it changed), and
 * the last one to record must see everything. Converges: each round reads after the
 * records it follows. A profile nothing else touched needs no second look.
 */
export async function recordMemberships(
  deps: Pick<ProcessorDeps, 'redis' | 'redisPrefix'>,
  timers: string,
  { changes, schedule }: Decisions,
  at: Date,
): Promise<Recheck[]> {
  if (changes.length === 0 && schedule.length === 0) return [];
  // one compare-and-set call per profile, with every transition decided for it
  const byProfile = new Map<string, { item: Recheck; revision: string; pairs: (string | number)[] }>();
  for (const { change, from, item, revision } of changes) {
    const key = `${item.ws}/${item.profileId}`;
    const entry = byProfile.get(key) ?? { item, revision, pairs: [] };
    byProfile.set(key, entry);
    entry.pairs.push(change.segmentId, from);
  }
  const rec = deps.redis.pipeline();
  for (const { item, revision, pairs } of byProfile.values())
    queueRecordMembership(
      rec,
      tagOf(deps.redisPrefix, item.ws),
      item.profileId,
      revision,
      at.getTime(),
      pairs,
    );
  // LT keeps the earliest: an early firing only re-evaluates and reschedules
  for (const [deadline, member] of schedule) rec.zadd(timers, 'LT', deadline, member);
  const replies = (await rec.exec()) ?? [];
  const stale: Recheck[] = [];
  [...byProfile.values()].forEach(({ item }, i) => {
    const [err, flags] = replies[i] ?? [null, []];
    if (err) throw err;
    const f = flags as number[];
    const moved = f.slice(0, -1).some((x) => x === 1);
    if (moved && f[f.length - 1] !== 1) stale.push(item);
  });
  return stale;
}
