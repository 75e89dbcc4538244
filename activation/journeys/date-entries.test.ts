// Date-trait entries after a merge, against a real redis-server: the survivor may now hold a
// date it did not have (the merged-away profile's, last write wins), and no call set it, so
// no signal came: the merge sets the survivor's timer.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../runtime/log.ts';
import type { JourneyDefinition } from '../../schemas/journey.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { uniqueId } from '../../test/harness.ts';
import { DATE_ENTRY_NODE, dateEntries } from './date-entries.ts';
import { JourneyRegistry } from './journey-registry.ts';
import type { RunRef } from './run-state.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis.disconnect());

describe('date-trait entries', () => {
  it('a merge sets the survivor’s timer for the date it now has', async () => {
    const prefix = uniqueId('de');
    const k = workspaceKeys(prefix, 'ws');
    const now = Date.parse('2027-01-10T00:00:00Z');
    const def: JourneyDefinition = {
      id: 'jd',
      workspaceId: 'ws',
      name: 'Renewal',
      entry: { dateTrait: 'renewal_date', offset: '-P1D', at: '09:00' },
      nodes: [{ id: 'x', type: 'exit' }],
      status: 'active',
      version: 1,
      createdAt: '',
      updatedAt: '',
    };
    const registry = new JourneyRegistry();
    registry.replace([def], [def]);
    const set: Array<[RunRef, string, number]> = [];
    const dates = dateEntries({
      redis,
      prefix,
      registry,
      timers: {
        schedule: async (ref, _run, node, due) => {
          set.push([ref, node, due]);
        },
        park: async () => {},
      },
      engine: { onTimeEntry: async () => true },
      now: () => now,
      defaultTimezone: 'UTC',
      log: createLogger({ level: 'silent', name: 'test' }),
    });
    // the survivor holds the date the merge brought; the merged-away profile points to it
    await redis.hset(k.profileTraits('survivor'), 'renewal_date', JSON.stringify('2027-02-01'));
    await redis.hset(k.profile('away'), 'mergedInto', 'survivor');
    const change = {
      workspaceId: 'ws',
      profileId: 'survivor',
      identifiers: ['user:u1'],
      mergedProfileIds: ['away'],
      version: 3,
      messageId: 'm1',
      occurredAt: new Date(now).toISOString(),
    };
    await dates.onIdentityChange(change);
    expect(set).toEqual([
      [
        { workspaceId: 'ws', journeyId: 'jd', profileId: 'survivor' },
        `${DATE_ENTRY_NODE}2027-02-01`,
        Date.parse('2027-01-31T09:00:00Z'),
      ],
    ]);
    // an identity change without a merge sets nothing
    await dates.onIdentityChange({ ...change, mergedProfileIds: [] });
    expect(set).toHaveLength(1);
  });
});
