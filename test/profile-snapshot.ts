// Every live profile of a workspace in Redis, keyed by its identifiers (profile ids are
// random, so two runs over the same events are compared person by person): traits,
// counted events per condition, computed-trait aggregates and score counters, current
// memberships; and each profile's epochs. Keys: schemas/redis-keys.ts; the walk: profiles/scan.ts.
import type { Redis } from 'ioredis';
import { decodeEpochs, memberSegments } from '../profiles/read.ts';
import { scanProfileIds } from '../profiles/scan.ts';
import type { WorkspaceKeys } from '../schemas/redis-keys.ts';

/** Every live profile, keyed by its identifiers: traits, counted events, memberships. */
export async function snapshotProfiles(redis: Redis, keys: WorkspaceKeys) {
  const pids: string[] = [];
  let cursor = '0';
  do {
    const page = await scanProfileIds(redis, keys.tag, cursor, 1000);
    cursor = page.cursor;
    pids.push(...page.ids);
  } while (cursor !== '0');
  const people = new Map<string, unknown>();
  const epochs = new Map<string, Record<string, number>>();
  for (const pid of pids) {
    if (await redis.hget(keys.profile(pid), 'mergedInto')) continue;
    const ids = (await redis.smembers(keys.profileIdentities(pid))).sort();
    const seg = decodeEpochs(await redis.hgetall(keys.profileSegments(pid)));
    const counts: Record<string, number> = {};
    for (const c of (await redis.smembers(keys.profileConditions(pid))).sort())
      counts[c] = await redis.zcard(keys.profileConditionTimes(pid, c));
    // computed-trait buckets (without the trim bookkeeping) and lead-score counters
    const aggregates: Record<string, Record<string, string>> = {};
    for (const a of (await redis.smembers(keys.profileAggregates(pid))).sort()) {
      const { _o, ...fields } = await redis.hgetall(keys.profileAggregate(pid, a));
      aggregates[a] = fields;
    }
    people.set(ids.join(','), {
      traits: await redis.hgetall(keys.profileTraits(pid)),
      accounts: (await redis.smembers(keys.profileGroups(pid))).sort(),
      counts,
      aggregates,
      scoreCounters: await redis.hgetall(keys.profileScoreCounters(pid)),
      member: memberSegments(seg).sort(),
    });
    epochs.set(pid, seg);
  }
  return { people, epochs };
}
