// A profile's push devices as senders read and prune them (list-devices.lua,
// remove-device.lua); the processor records them (apply-event.lua). Activation's
// store (activation/push-devices.ts) parses and orders what these answer.
import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import type { Redis } from '../runtime/redis.ts';
import { withSurvivor } from './survivor.ts';

const lua = (name: string) => readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');
const LIST = withSurvivor(lua('list-devices.lua'));
const REMOVE = withSurvivor(lua('remove-device.lua'));

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cdpPushDevices(tag: string, pid: string): Result<string[], Context>;
    cdpPushDeviceRemove(tag: string, pid: string, key: string, token: string): Result<number, Context>;
  }
}

/** Defines the two scripts on the client, once. */
export function defineDeviceCommands(redis: Redis): void {
  if (typeof (redis as { cdpPushDevices?: unknown }).cdpPushDevices === 'function') return;
  redis.defineCommand('cdpPushDevices', { numberOfKeys: 1, lua: LIST });
  redis.defineCommand('cdpPushDeviceRemove', { numberOfKeys: 1, lua: REMOVE });
}

/**
 * The profile's devices (at its merge survivor) not suppressed, one call: the survivor's id,
 * then device key, stored value pairs, flat (`tag`: workspaceKeys(...).tag).
 */
export function listDeviceEntries(redis: Redis, tag: string, profileId: string): Promise<string[]> {
  return redis.cdpPushDevices(tag, profileId);
}

/** Removes the device's token from the profile (at its survivor) if it still has it; true if removed. */
export async function removeDeviceToken(
  redis: Redis,
  tag: string,
  profileId: string,
  deviceKey: string,
  token: string,
): Promise<boolean> {
  return (await redis.cdpPushDeviceRemove(tag, profileId, deviceKey, token)) === 1;
}
