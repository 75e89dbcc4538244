// run-state.lua against a real redis-server: an erased person enters nothing (an entry
// read just before the erasure must not leave a run, with their profile id, after it).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { tombstoneMember } from '../../schemas/erasure.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { uniqueId } from '../../test/harness.ts';
import { runStore } from './run-state.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis.disconnect());

describe('run state', () => {
  it('refuses to enter a tombstoned (erased) profile id, and no one else', async () => {
    const prefix = uniqueId('rs');
    const k = workspaceKeys(prefix, 'ws');
    await redis.zadd(k.erased, Date.now(), tombstoneMember('profile', 'gone'));
    const runs = runStore(redis, prefix);
    const gone = { workspaceId: 'ws', journeyId: 'j', profileId: 'gone' };
    expect((await runs.enter(gone, 1, 'a', 1000)).result).toBe('erased');
    expect(await redis.exists(k.journeyRun('j', 'gone'))).toBe(0);
    expect(await redis.hget(k.journeyStats('j'), 'entered')).toBeNull();
    expect((await runs.enter({ ...gone, profileId: 'here' }, 1, 'a', 1000)).result).toBe('entered');
  });
});
