// Recording segment memberships (record-membership.lua): one compare-and-set call per
// profile with the transitions an evaluation decided, each moving an epoch by one if it is
// still the one decided on. The processor decides and calls (processor/pipeline/record-memberships.ts).
import { readFileSync } from 'node:fs';
import type { ChainableCommander, Result } from 'ioredis';
import type { Redis } from '../runtime/redis.ts';

const RECORD = readFileSync(new URL('./record-membership.lua', import.meta.url), 'utf8');

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** args: revision read, nowMs, then (segmentId, fromEpoch) pairs; see record-membership.lua */
    cdpRecordMembership(tag: string, pid: string, ...args: (string | number)[]): Result<number[], Context>;
  }
}

export function defineRecordMembership(redis: Redis): void {
  redis.defineCommand('cdpRecordMembership', { numberOfKeys: 1, lua: RECORD });
}

/**
 * Queues one profile's record: `revision` the profile's when its state was read
 * (ProfileState.revision), `pairs` (segmentId, fromEpoch) flat. Its reply: one 1/0 per pair
 * (applied or not), then 1 if the revision was still the one read.
 */
export function queueRecordMembership(
  pipe: ChainableCommander,
  tag: string,
  profileId: string,
  revision: string,
  nowMs: number,
  pairs: readonly (string | number)[],
): void {
  (pipe as unknown as Redis).cdpRecordMembership(tag, profileId, revision, nowMs, ...pairs);
}
