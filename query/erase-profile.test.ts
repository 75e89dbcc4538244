// The journey part of an erasure against a real Redis: the runs of the erased profile ids in
// every journey end in one call per profile id (per 200 journeys), their timers go from the
// due, claimed and parked sets, and everyone else's runs and timers stay. The erased ids also
// leave the member snapshots of the workspace's segment exports.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { DefinitionStore } from '../runtime/definitions.ts';
import { timerMember } from '../schemas/journey-timer.ts';
import { globalKeys, workspaceKeys } from '../schemas/redis-keys.ts';
import { uniqueId } from '../test/harness.ts';
import { type EraseDeps, forgetExportMembers, forgetJourneys } from './erase-profile.ts';

let redis: Redis;
const prefix = uniqueId('er');
const ws = 'ws1';
const k = workspaceKeys(prefix, ws);
const g = globalKeys(prefix);

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis.disconnect());

describe('erasure of journey state', () => {
  it('ends every run of the erased ids in one call per id, and takes their timers from every set', async () => {
    const journeys = Array.from({ length: 250 }, (_, i) => `j${i}`);
    const erased = ['pid-a', 'pid-b']; // a person and a profile merged into them
    const others = ['pid-c', 'pid-a2'];
    const p = redis.pipeline();
    for (const pid of [...erased, ...others])
      for (const [i, j] of journeys.entries()) {
        const ref = { workspaceId: ws, journeyId: j, profileId: pid };
        // every other run is active at its wait, the rest ended
        p.hset(
          k.journeyRun(j, pid),
          'run',
          2,
          'v',
          1,
          'node',
          i % 2 ? 'w' : '',
          'state',
          i % 2 ? 'active' : 'ended',
        );
        if (i % 2) p.hincrby(k.journeyStats(j), 'now:w', 1);
        if (i % 10 === 1) {
          // the current wait's timer, a stale one of an earlier node, a date entry
          p.zadd(g.journeysDue, Date.now() + 60_000, timerMember(ref, 2, 'w'));
          p.zadd(g.journeysDue, Date.now() + 60_000, timerMember(ref, 2, 'before'));
          p.zadd(g.journeysDue, Date.now() + 60_000, timerMember(ref, 0, '$date:2030-01-01'));
        }
        if (i === 3) p.zadd(g.journeysLease, Date.now() + 30_000, timerMember(ref, 2, 'w'));
        if (i === 5) p.zadd(g.journeysParked(ws, j), Date.now(), timerMember(ref, 2, 'w'));
      }
    // the same profile id in another workspace is someone else
    p.zadd(
      g.journeysDue,
      1,
      timerMember({ workspaceId: 'ws2', journeyId: 'j1', profileId: 'pid-a' }, 1, 'w'),
    );
    await p.exec();

    let evals = 0;
    const counted = new Proxy(redis, {
      get(target, name) {
        const v = Reflect.get(target, name, target) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (name === 'eval' || name === 'evalsha') evals++;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const defs = { list: async () => journeys.map((id) => ({ id })) } as unknown as DefinitionStore;
    const deps = { redis: counted, defs, redisPrefix: prefix } as unknown as EraseDeps;
    const res = await forgetJourneys(deps, ws, erased);
    expect(res).toEqual({ runs: 2 * 250, timers: 2 * (25 * 3 + 2) });
    expect(evals).toBe(2 * Math.ceil(250 / 200));

    const pids = async (set: string) => (await redis.zrange(set, 0, -1)).map((m) => m.split('\u001f')[2]);
    const allTimers = [
      ...(await pids(g.journeysDue)),
      ...(await pids(g.journeysLease)),
      ...(await pids(g.journeysParked(ws, 'j5'))),
    ];
    expect(allTimers.filter((x) => erased.includes(x!))).toEqual(['pid-a']); // ws2's
    expect(allTimers.filter((x) => others.includes(x!))).toHaveLength(2 * (25 * 3 + 2));
    for (const j of ['j0', 'j1', 'j249']) {
      for (const pid of erased) expect(await redis.exists(k.journeyRun(j, pid))).toBe(0);
      for (const pid of others) expect(await redis.exists(k.journeyRun(j, pid))).toBe(1);
    }
    // an active run left its node, counted as erased
    expect(await redis.hgetall(k.journeyStats('j1'))).toEqual({
      'now:w': '2',
      'exited:w': '2',
      'ended:erased': '2',
    });
    expect(await redis.hgetall(k.journeyStats('j2'))).toEqual({});
    // again (the sweep): nothing more to do
    expect(await forgetJourneys(deps, ws, erased)).toEqual({ runs: 0, timers: 0 });
  });

  it('takes the erased profile ids out of every export member snapshot of the workspace', async () => {
    const deps = { redis, redisPrefix: prefix } as unknown as EraseDeps;
    const other = workspaceKeys(prefix, 'ws2');
    const jobs = Array.from({ length: 205 }, (_, i) => `exp_${String(i).padStart(32, '0')}`);
    const p = redis.pipeline();
    for (const [i, id] of jobs.entries()) {
      p.zadd(k.exports, i, id);
      // some jobs have no snapshot (not a segment export, or finished)
      if (i % 3 === 0) p.zadd(k.exportMembers(id), 1, 'pid-a', 2, 'pid-b', 3, 'pid-c');
    }
    // the same profile id in another workspace is someone else
    p.zadd(other.exports, 1, jobs[0]!);
    p.zadd(other.exportMembers(jobs[0]!), 1, 'pid-a');
    await p.exec();
    const snapshots = jobs.filter((_, i) => i % 3 === 0);
    expect(await forgetExportMembers(deps, ws, ['pid-a', 'pid-b'])).toBe(2 * snapshots.length);
    for (const id of [snapshots[0]!, snapshots.at(-1)!])
      expect(await redis.zrange(k.exportMembers(id), 0, -1)).toEqual(['pid-c']);
    expect(await redis.zrange(other.exportMembers(jobs[0]!), 0, -1)).toEqual(['pid-a']);
    // again (the sweep): nothing more to do
    expect(await forgetExportMembers(deps, ws, ['pid-a', 'pid-b'])).toBe(0);
  });
});
