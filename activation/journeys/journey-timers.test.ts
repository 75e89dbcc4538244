// Journey timers against a real Redis, for an erased person (tombstoned profile id): no timer
// is set or parked for them, and one whose firing failed does not go back to the due set,
// while everyone else's does.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../runtime/log.ts';
import { tombstoneMember } from '../../schemas/erasure.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { uniqueId } from '../../test/harness.ts';
import { journeyTimers, timerMember } from './journey-timers.ts';

let redis: Redis;
const prefix = uniqueId('jt');
const ws = 'ws1';
const g = globalKeys(prefix);
const log = createLogger({ level: 'error', name: 'test' });

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  await redis.zadd(workspaceKeys(prefix, ws).erased, Date.now(), tombstoneMember('profile', 'gone'));
});
afterAll(() => redis.disconnect());

describe('journey timers of an erased person', () => {
  const gone = { workspaceId: ws, journeyId: 'j1', profileId: 'gone' };
  const here = { ...gone, profileId: 'here' };

  it('sets and parks no timer for them, and does for everyone else', async () => {
    const timers = journeyTimers({ redis, prefix, log, now: Date.now });
    for (const ref of [gone, here]) {
      await timers.schedule(ref, 1, 'w', Date.now() + 60_000);
      await timers.park(ref, 1, 'w', Date.now());
    }
    // the same profile id in another workspace is not erased
    await timers.schedule({ ...gone, workspaceId: 'ws2' }, 1, 'w', Date.now() + 60_000);
    expect(await redis.zrange(g.journeysDue, 0, -1)).toEqual(
      [timerMember(here, 1, 'w'), timerMember({ ...gone, workspaceId: 'ws2' }, 1, 'w')].sort(),
    );
    expect(await redis.zrange(g.journeysParked(ws, 'j1'), 0, -1)).toEqual([timerMember(here, 1, 'w')]);
    await redis.del(g.journeysDue, g.journeysParked(ws, 'j1'));
  });

  it('a timer whose firing failed goes back for the next round, unless its person was erased', async () => {
    const timers = journeyTimers({ redis, prefix, log, now: Date.now });
    // both claimable now (the erased person's set before the erasure)
    await redis.zadd(
      g.journeysDue,
      Date.now() - 1,
      timerMember(gone, 1, 'w'),
      Date.now() - 1,
      timerMember(here, 1, 'w'),
    );
    expect(
      await timers.tick(async () => {
        throw new Error('redis hiccup');
      }),
    ).toBe(2);
    expect(await redis.zrange(g.journeysDue, 0, -1)).toEqual([timerMember(here, 1, 'w')]);
    expect(await redis.zcard(g.journeysLease)).toBe(0);
  });
});
