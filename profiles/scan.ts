// Walking a workspace's profiles: one SCAN over its profile keys (`<tag>:p:*`, which also
// matches each profile's sub-keys), keeping the profile hashes' ids. Merged-away profiles
// are included; readers skip them (profiles/read.ts).
import type { Redis } from '../runtime/redis.ts';

/** The SCAN pattern of a workspace's profile keys (the hashes and their sub-keys). */
export const profileScanPattern = (tag: string): string => `${tag}:p:*`;

/** The profile id of a profile hash's key (`<tag>:p:<id>`); undefined for any other key (a sub-key). */
export function profileIdOfKey(tag: string, key: string): string | undefined {
  return profileKeyPattern(tag).exec(key)?.[1] || undefined;
}

/** One SCAN call over the workspace's profile keys (`tag`: workspaceKeys(...).tag). */
export async function scanProfileIds(
  redis: Redis,
  tag: string,
  cursor: string,
  count: number,
): Promise<{ cursor: string; ids: string[] }> {
  const [next, found] = await redis.scan(cursor, 'MATCH', profileScanPattern(tag), 'COUNT', count);
  const ids: string[] = [];
  for (const k of found) {
    const id = profileIdOfKey(tag, k);
    if (id) ids.push(id);
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
