// A broadcast at each member's local time, against a real Redis and the real run state: the
// segment is paged when the earliest zone (UTC+14) reaches the time; members whose time has
// come enter at once, the others get a timer at their own instant, which enters them (once)
// when it fires; a zone moved later since makes a new timer; a paused journey parks it.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../runtime/log.ts';
import type { JourneyDefinition } from '../../schemas/journey.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { uniqueId } from '../../test/harness.ts';
import { JourneyRegistry } from './journey-registry.ts';
import { type RunRef, runStore } from './run-state.ts';
import { LOCAL_BROADCAST_NODE, timeEntries } from './time-entries.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis.disconnect());

describe('a broadcast at each member’s local time', () => {
  it('enters each member at their own wall-clock time, once', async () => {
    const prefix = uniqueId('lb');
    const k = workspaceKeys(prefix, 'ws');
    const wall = Date.parse('2027-03-01T09:00:00Z'); // 09:00 local, wherever
    const def: JourneyDefinition = {
      id: 'jl',
      workspaceId: 'ws',
      name: 'Local',
      entry: { broadcast: { segment: 'seg', at: '2027-03-01T09:00', localTime: true } },
      reEntry: 'after_exit',
      nodes: [{ id: 's', type: 'exit' }],
      version: 1,
      status: 'active',
      createdAt: '',
      updatedAt: '',
    };
    const registry = new JourneyRegistry();
    registry.replace([def], [def]);
    const zones: Record<string, string> = {
      kiri: 'Pacific/Kiritimati', // UTC+14: 09:00 local is 19:00Z the day before
      tokyo: 'Asia/Tokyo', // UTC+9: 00:00Z
      utc: 'UTC', // 09:00Z
      la: 'America/Los_Angeles', // UTC-8 in March before DST: 17:00Z
    };
    for (const [pid, tz] of Object.entries(zones)) {
      await redis.hset(k.profileTraits(pid), 'timezone', JSON.stringify(tz));
      await redis.zadd(k.segmentMembers('seg'), 1, pid);
    }
    let now = Date.parse('2027-02-28T19:00:00Z'); // Kiritimati's 09:00
    const runs = runStore(redis, prefix);
    const entered: string[] = [];
    const timers: Array<[string, string, number]> = [];
    const parked: string[] = [];
    const entries = timeEntries({
      redis,
      prefix,
      log: createLogger({ level: 'silent', name: 'test' }),
      now: () => now,
      registry,
      defaultTimezone: 'UTC',
      timers: {
        schedule: async (ref, _run, node, due) => {
          timers.push([ref.profileId, node, due]);
        },
        park: async (ref) => {
          parked.push(ref.profileId);
        },
      },
      engine: {
        async onTimeEntry(ref: RunRef, occurrence: string) {
          const r = await runs.enter(ref, 1, 's', now, 'after_exit', occurrence);
          if (r.result !== 'entered') return false;
          await runs.move(ref, r.run, 's', '', now, 'completed');
          entered.push(`${ref.profileId} ${occurrence}`);
          return true;
        },
      },
    });
    // an hour before the earliest zone's time: nothing
    now -= 3600_000;
    expect(await entries.run(registry.get('ws', 'jl')!)).toBe(0);
    expect(timers).toEqual([]);
    now += 3600_000;
    expect(await entries.run(registry.get('ws', 'jl')!)).toBe(1);
    const occurrence = 'broadcast@2027-03-01T09:00:00 local';
    expect(entered).toEqual([`kiri ${occurrence}`]);
    const node = `${LOCAL_BROADCAST_NODE}${wall}`;
    expect(timers.sort()).toEqual(
      [
        ['la', node, Date.parse('2027-03-01T17:00:00Z')],
        ['tokyo', node, Date.parse('2027-03-01T00:00:00Z')],
        ['utc', node, Date.parse('2027-03-01T09:00:00Z')],
      ].sort(),
    );
    // the broadcast is done: paging again enters no one
    expect(await entries.run(registry.get('ws', 'jl')!)).toBe(0);
    const ref = (pid: string) => ({ workspaceId: 'ws', journeyId: 'jl', profileId: pid });
    // Tokyo's timer fires: entered; fired again (a repeat), not entered twice
    now = Date.parse('2027-03-01T00:00:00Z');
    await entries.onLocalDue({ ref: ref('tokyo'), run: 0, node });
    await entries.onLocalDue({ ref: ref('tokyo'), run: 0, node });
    expect(entered).toEqual([`kiri ${occurrence}`, `tokyo ${occurrence}`]);
    // UTC's person moved to New York meanwhile: their 09:00 is later, a new timer
    await redis.hset(k.profileTraits('utc'), 'timezone', JSON.stringify('America/New_York'));
    now = Date.parse('2027-03-01T09:00:00Z');
    timers.length = 0;
    await entries.onLocalDue({ ref: ref('utc'), run: 0, node });
    expect(timers).toEqual([['utc', node, Date.parse('2027-03-01T14:00:00Z')]]);
    // a timer of another broadcast time (the entry was edited since) does nothing
    await entries.onLocalDue({ ref: ref('la'), run: 0, node: `${LOCAL_BROADCAST_NODE}${wall + 1000}` });
    expect(entered).toHaveLength(2);
    // paused: the timer is set aside
    registry.replace([{ ...def, status: 'paused' }], [def]);
    now = Date.parse('2027-03-01T17:00:00Z');
    await entries.onLocalDue({ ref: ref('la'), run: 0, node });
    expect(parked).toEqual(['la']);
    expect(entered).toHaveLength(2);
  });
});
