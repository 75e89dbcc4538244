// Seeding a counted condition's times from history (seed-condition.lua), against a real
// redis-server: events resolve to the profile they would now (userId first, merges
// followed), a replay adds nothing, old times are trimmed, the revision moves.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { uniqueId } from '../test/harness.ts';
import { defineSeedCondition, seedCondition } from './seed-condition.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  defineSeedCondition(redis);
});
afterAll(() => redis.disconnect());

const NOW = Date.parse('2026-03-01T10:00:00Z');
const DAY = 24 * 3600 * 1000;

describe('seedCondition', () => {
  it('adds times to the profile the event resolves to now, once, within the retention', async () => {
    const k = workspaceKeys(uniqueId('seed'), 'ws');
    await redis
      .multi()
      .set(k.identity('user', 'u1'), 'old')
      .set(k.identity('anon', 'a1'), 'p2')
      .hset(k.profile('old'), { id: 'old', mergedInto: 'p1' })
      .hset(k.profile('p1'), { id: 'p1', rev: '5' })
      .hset(k.profile('p2'), { id: 'p2' })
      .zadd(k.profileConditionTimes('p1', 'c1'), NOW - 40 * DAY, 'ancient')
      .exec();
    const events = [
      ['u1', 'a1', 'm1', NOW - DAY], // userId first: p1 (through the merge), not p2
      ['', 'a1', 'm2', NOW - 2 * DAY], // anonymous: p2
      ['u1', '', 'm3', NOW - 31 * DAY], // older than the retention: skipped
      ['nobody', '', 'm4', NOW - DAY], // no profile: skipped
    ].flat();
    expect(await seedCondition(redis, k.tag, 'c1', 30 * DAY, NOW, events)).toBe(2);
    expect(await redis.zrange(k.profileConditionTimes('p1', 'c1'), 0, -1)).toEqual(['m1']);
    expect(await redis.zrange(k.profileConditionTimes('p2', 'c1'), 0, -1)).toEqual(['m2']);
    expect(await redis.smembers(k.profileConditions('p1'))).toEqual(['c1']);
    expect(await redis.smembers(k.profileConditions('p2'))).toEqual(['c1']);
    expect(await redis.exists(k.profileConditionTimes('old', 'c1'))).toBe(0);
    expect(await redis.hget(k.profile('p1'), 'rev')).toBe('6');
    // a replay adds nothing and leaves the revision
    expect(await seedCondition(redis, k.tag, 'c1', 30 * DAY, NOW, events)).toBe(0);
    expect(await redis.hget(k.profile('p1'), 'rev')).toBe('6');
  });
});
