// A profile's push devices as activation reads and prunes them. The processor records them
// (profiles/apply-event.lua, from `context.device.token`): device key → last seen, type,
// token, at most 20 per profile, each device on one profile at a time. The reads and writes
// of the profile's keys are profiles/devices.ts's scripts. Here:
// - list: the devices of a profile (followed to its merge survivor), newest first, one per
//   token, without tokens on the workspace's suppression list (`device:<token>`);
// - remove: a token the provider called gone leaves the profile (only if the device still has
//   that token: a device that registered a new one since keeps it);
// - done / markDone / forget: the devices one send (by send key) reached, kept between its
//   attempts (TTL), so a retry after a partial failure only tries the rest.
import { defineDeviceCommands, listDeviceEntries, removeDeviceToken } from '../profiles/devices.ts';
import type { Redis } from '../runtime/redis.ts';
import { parseDevice } from '../schemas/push-device.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import type { PushDevice } from './channels/channel.ts';

/** How long a send's reached devices are kept: longer than its retries take. */
export const PUSH_DONE_TTL_MS = 7 * 24 * 3600 * 1000;

export function pushDeviceStore(redis: Redis, redisPrefix: string) {
  defineDeviceCommands(redis);
  const keys = (ws: string) => workspaceKeys(redisPrefix, ws);
  return {
    async list(workspaceId: string, profileId: string): Promise<PushDevice[]> {
      const flat = await listDeviceEntries(redis, keys(workspaceId).tag, profileId);
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
      return removeDeviceToken(redis, keys(workspaceId).tag, profileId, device.key, device.token);
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
