// Seeding a counted condition's event times from history (seed-condition.lua): the
// processor reads the history (processor/seed-from-history.ts), this writes the times into
// the profiles the events resolve to now.
import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import type { Redis } from '../runtime/redis.ts';
import { withSurvivor } from './survivor.ts';

const SCRIPT = withSurvivor(readFileSync(new URL('./seed-condition.lua', import.meta.url), 'utf8'));

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cdpSeedCondition(tag: string, ...args: (string | number)[]): Result<number, Context>;
  }
}

export function defineSeedCondition(redis: Redis): void {
  redis.defineCommand('cdpSeedCondition', { numberOfKeys: 1, lua: SCRIPT });
}

/**
 * Adds a chunk of historical events to the condition's times (`tag`: workspaceKeys(...).tag;
 * `events` flat quadruples userId, anonymousId, messageId, timestamp ms). Returns how many
 * were added to a profile (a replayed one is not).
 */
export function seedCondition(
  redis: Redis,
  tag: string,
  conditionId: string,
  retentionMs: number,
  nowMs: number,
  events: readonly (string | number)[],
): Promise<number> {
  return redis.cdpSeedCondition(tag, conditionId, retentionMs, nowMs, ...events);
}
