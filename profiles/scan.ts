// Walking a workspace's profiles: one SCAN over its profile keys (`<tag>:p:*`, which also
// matches each profile's sub-keys), keeping the profile hashes' ids. Merged-away profiles
// are included; readers skip them (profiles/read.ts).
import type { Redis } from '../runtime/redis.ts';

/** One SCAN call over the workspace's profile keys (`tag`: workspaceKeys(...).tag). */
export async function scanProfileIds(
  redis: Redis,
  tag: string,
  cursor: string,
  count: number,
): Promise<{ cursor: string; ids: string[] }> {
  const [next, found] = await redis.scan(cursor, 'MATCH', `${tag}:p:*`, 'COUNT', count);
  const head = profileKeyPattern(tag);
  const ids: string[] = [];
  for (const k of found) {
    const m = head.exec(k);
    if (m?.[1]) ids.push(m[1]);
  }
  return { cursor: next, ids };
}

/** `<tag>:p:<id>` exactly (the profile hash, not its sub-keys), capturing the id. */
function profileKeyPattern(tag: string): RegExp {
  let re = patterns.get(tag);
  if (!re) {
    if (patterns.size >= 1000) patterns.clear();
    re = new RegExp(`^${tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:p:([^:]+)$`);
    patterns.set(tag, re);
  }
  return re;
}
const patterns = new Map<string, RegExp>();
