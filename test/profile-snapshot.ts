// Every live profile of a workspace in Redis, keyed by its identifiers (profile ids are
// random, so two runs over the same events are compared person by person): traits,
// counted events per condition, computed-trait aggregates and score counters, current
// memberships; and each profile's epochs.
import type { Redis } from 'ioredis';

/** Every live profile, keyed by its identifiers: traits, counted events, memberships. */
export async function snapshotProfiles(redis: Redis, tag: string) {
  const head = new RegExp(`^${tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:p:([^:]+)$`);
  const pids: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${tag}:p:*`, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) {
      const m = head.exec(k);
      if (m?.[1]) pids.push(m[1]);
    }
  } while (cursor !== '0');
  const people = new Map<string, unknown>();
  const epochs = new Map<string, Record<string, number>>();
  for (const pid of pids) {
    const p = `${tag}:p:${pid}`;
    if (await redis.hget(p, 'mergedInto')) continue;
    const ids = (await redis.smembers(`${p}:ids`)).sort();
    const seg = await redis.hgetall(`${p}:seg`);
    const counts: Record<string, number> = {};
    for (const c of (await redis.smembers(`${p}:cs`)).sort()) counts[c] = await redis.zcard(`${p}:c:${c}`);
    // computed-trait buckets (without the trim bookkeeping) and lead-score counters
    const aggregates: Record<string, Record<string, string>> = {};
    for (const a of (await redis.smembers(`${p}:ags`)).sort()) {
      const { _o, ...fields } = await redis.hgetall(`${p}:ag:${a}`);
      aggregates[a] = fields;
    }
    const key = ids.join(',');
    people.set(key, {
      traits: await redis.hgetall(`${p}:t`),
      accounts: (await redis.smembers(`${p}:groups`)).sort(),
      counts,
      aggregates,
      scoreCounters: await redis.hgetall(`${p}:sc`),
      member: Object.entries(seg)
        .filter(([, e]) => Number(e) % 2 === 1)
        .map(([s]) => s)
        .sort(),
    });
    epochs.set(pid, Object.fromEntries(Object.entries(seg).map(([s, e]) => [s, Number(e)])));
  }
  return { people, epochs };
}
