// The Redis step of an erasure (erase-profile.lua): the person's profile and every profile
// id merged into it emptied, tombstones written, what the ClickHouse steps need recorded on
// the job, atomically. The job around it is the query service's (query/erasure-job.ts,
// query/erase-profile.ts).
import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import type { Redis } from '../runtime/redis.ts';
import { TOMBSTONE_RETENTION_MS } from '../schemas/erasure.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { withSurvivor } from './survivor.ts';

const SCRIPT = withSurvivor(readFileSync(new URL('./erase-profile.lua', import.meta.url), 'utf8'));
/** Cap logs are kept per channel and across channels (`all`). */
const CAP_CHANNELS = ['webhook', 'email', 'sms', 'push', 'all'];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cdpEraseProfile(
      tag: string,
      pid: string,
      jobId: string,
      nowMs: number,
      keepMs: number,
      campaigns: string,
      channels: string,
    ): Result<string, Context>;
  }
}

/**
 * Erases a profile (followed to its survivor) and the profiles merged into it from Redis,
 * for the erasure job `jobId` (its hash must exist). `campaignIds`: the workspace's, whose
 * re-entry records go too. Run again for the same job, it changes nothing.
 */
export async function eraseProfileState(
  redis: Redis,
  opts: {
    prefix: string;
    workspaceId: string;
    profileId: string;
    jobId: string;
    nowMs: number;
    campaignIds: string[];
  },
): Promise<void> {
  if (typeof (redis as { cdpEraseProfile?: unknown }).cdpEraseProfile !== 'function')
    redis.defineCommand('cdpEraseProfile', { numberOfKeys: 1, lua: SCRIPT });
  await redis.cdpEraseProfile(
    workspaceKeys(opts.prefix, opts.workspaceId).tag,
    opts.profileId,
    opts.jobId,
    opts.nowMs,
    TOMBSTONE_RETENTION_MS,
    JSON.stringify(opts.campaignIds),
    JSON.stringify(CAP_CHANNELS),
  );
}
