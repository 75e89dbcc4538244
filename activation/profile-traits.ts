// A profile's traits as Redis holds them now (hash trait → JSON value, schemas/redis-keys.ts
// profileTraits), for a segment change that carries only part of them (`traitsTruncated`:
// a huge profile's change is bounded, schemas/segment-change.ts). One HGETALL, only for
// such changes; an empty answer (the profile was erased or merged away since) leaves the
// change's own traits.
import type { Redis } from '../runtime/redis.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';

export type ProfileTraitsReader = (
  workspaceId: string,
  profileId: string,
) => Promise<Record<string, unknown>>;

export function profileTraitsReader(redis: Redis, redisPrefix: string): ProfileTraitsReader {
  return async (workspaceId, profileId) => {
    const flat = await redis.hgetall(workspaceKeys(redisPrefix, workspaceId).profileTraits(profileId));
    const traits: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(flat)) {
      if (k === '__proto__') continue;
      try {
        traits[k] = JSON.parse(v);
      } catch {
        traits[k] = v;
      }
    }
    return traits;
  };
}
