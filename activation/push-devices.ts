// A profile's push devices as activation reads and prunes them. The processor records them
// (profiles/apply-event.lua, from `context.device.token`): device key → last seen, type,
// token, at most 20 per profile, each device on one profile at a time. Here:
// - list: the devices of a profile (followed to its merge survivor), newest first, one per
//   token, without tokens on the workspace's suppression list (`device:<token>`);
// - remove: a token the provider called gone leaves the profile (only if the device still has
//   that token: a device that registered a new one since keeps it);
// - done / markDone / forget: the devices one send (by send key) reached, kept between its
//   attempts (TTL), so a retry after a partial failure only tries the rest.
import type { Result } from 'ioredis';
import type { Redis } from '../runtime/redis.ts';
import { parseDevice } from '../schemas/push-device.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import type { PushDevice } from './channels/channel.ts';

/** How long a send's reached devices are kept: longer than its retries take. */
export const PUSH_DONE_TTL_MS = 7 * 24 * 3600 * 1000;

const FOLLOW = `
local pid = ARGV[1]
for _ = 1, 64 do
  local m = redis.call('HGET', KEYS[1] .. ':p:' .. pid, 'mergedInto')
  if not m then break end
  pid = m
end
`;

// KEYS[1] workspace tag; ARGV[1] profile id. Returns {pid, key, value, key, value...}.
const LIST = `${FOLLOW}
local out = { pid }
local all = redis.call('HGETALL', KEYS[1] .. ':p:' .. pid .. ':dev')
for i = 1, #all, 2 do
  local token = string.match(all[i + 1], '^%d+|[^|]*|(.*)$')
  if token and redis.call('SISMEMBER', KEYS[1] .. ':suppress', 'device:' .. token) == 0 then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out`;

// KEYS[1] workspace tag; ARGV: profile id, device key, token. Returns 1 if it was removed.
const REMOVE = `${FOLLOW}
local dkey = KEYS[1] .. ':p:' .. pid .. ':dev'
local cur = redis.call('HGET', dkey, ARGV[2])
if not cur or string.match(cur, '^%d+|[^|]*|(.*)$') ~= ARGV[3] then return 0 end
redis.call('HDEL', dkey, ARGV[2])
local owner = KEYS[1] .. ':dev:' .. ARGV[2]
if redis.call('GET', owner) == pid then redis.call('DEL', owner) end
local tk = KEYS[1] .. ':devtok:' .. ARGV[3]
if redis.call('GET', tk) == ARGV[2] then redis.call('DEL', tk) end
return 1`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cdpPushDevices(tag: string, pid: string): Result<string[], Context>;
    cdpPushDeviceRemove(tag: string, pid: string, key: string, token: string): Result<number, Context>;
  }
}

export function pushDeviceStore(redis: Redis, redisPrefix: string) {
  if (typeof (redis as { cdpPushDevices?: unknown }).cdpPushDevices !== 'function') {
    redis.defineCommand('cdpPushDevices', { numberOfKeys: 1, lua: LIST });
    redis.defineCommand('cdpPushDeviceRemove', { numberOfKeys: 1, lua: REMOVE });
  }
  const keys = (ws: string) => workspaceKeys(redisPrefix, ws);
  return {
    async list(workspaceId: string, profileId: string): Promise<PushDevice[]> {
      const flat = await redis.cdpPushDevices(keys(workspaceId).tag, profileId);
      const out: PushDevice[] = [];
      for (let i = 1; i < flat.length; i += 2) {
        const d = parseDevice(flat[i]!, flat[i + 1]!);
        if (d) out.push(d);
      }
      // newest first; a token registered under two keys (with and without an id) once
      out.sort((a, b) => b.seenMs - a.seenMs || (a.key < b.key ? -1 : 1));
      const seen = new Set<string>();
      return out.filter((d) => !seen.has(d.token) && seen.add(d.token));
    },

    async remove(workspaceId: string, profileId: string, device: PushDevice): Promise<boolean> {
      return (
        (await redis.cdpPushDeviceRemove(keys(workspaceId).tag, profileId, device.key, device.token)) === 1
      );
    },

    async done(workspaceId: string, sendKey: string): Promise<Set<string>> {
      return new Set(await redis.smembers(keys(workspaceId).pushDone(sendKey)));
    },

    async markDone(workspaceId: string, sendKey: string, deviceKeys: string[]): Promise<void> {
      if (deviceKeys.length === 0) return;
      const k = keys(workspaceId).pushDone(sendKey);
      await redis
        .multi()
        .sadd(k, ...deviceKeys)
        .pexpire(k, PUSH_DONE_TTL_MS)
        .exec();
    },

    async forget(workspaceId: string, sendKey: string): Promise<void> {
      await redis.del(keys(workspaceId).pushDone(sendKey));
    },
  };
}
export type PushDeviceStore = ReturnType<typeof pushDeviceStore>;
