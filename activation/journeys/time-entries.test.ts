// The time-entry scheduler against a real Redis and the real run state (run-state.lua):
// two schedulers share a broadcast's pages through the lease (each page once); a scheduler
// that fails mid-page leaves its page to the next, which enters nobody twice; a schedule
// on an injected clock enters at each tick of its cron, in its zone, and not between.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../runtime/log.ts';
import type { JourneyDefinition, JourneyEntry } from '../../schemas/journey.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { uniqueId } from '../../test/harness.ts';
import { JourneyRegistry } from './journey-registry.ts';
import { type RunRef, runStore } from './run-state.ts';
import { timeEntries } from './time-entries.ts';

let redis: Redis;
const prefix = uniqueId('te');
const ws = 'ws1';
const log = createLogger({ level: 'warn', name: 'test' });

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis.disconnect());

function registryWith(id: string, entry: JourneyEntry): JourneyRegistry {
  const def: JourneyDefinition = {
    id,
    workspaceId: ws,
    name: id,
    entry,
    reEntry: 'after_exit',
    nodes: [{ id: 's', type: 'exit' }],
    version: 1,
    status: 'active',
    createdAt: '',
    updatedAt: '',
  };
  const r = new JourneyRegistry();
  r.replace([def], [def]);
  return r;
}

/** Enters with the real run state and ends the run at once: only the occurrence stops a second entry. */
function recorder(opts: { failAfter?: number; delayMs?: number } = {}) {
  const runs = runStore(redis, prefix);
  const out = { calls: 0, entered: [] as string[] };
  return {
    out,
    engine: {
      async onTimeEntry(ref: RunRef, occurrence: string): Promise<boolean> {
        if (opts.failAfter !== undefined && out.calls >= opts.failAfter) throw new Error('runner died');
        out.calls++;
        if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
        const res = await runs.enter(ref, 1, 's', Date.now(), 'after_exit', occurrence);
        if (res.result !== 'entered') return false;
        await runs.move(ref, res.run, 's', '', Date.now(), 'completed');
        out.entered.push(`${ref.profileId} ${occurrence}`);
        return true;
      },
    },
  };
}

async function seedMembers(segment: string, n: number): Promise<string[]> {
  const pids = Array.from({ length: n }, (_, i) => `p${i}`);
  const key = workspaceKeys(prefix, ws).segmentMembers(segment);
  for (let i = 0; i < n; i += 500) await redis.zadd(key, ...pids.slice(i, i + 500).flatMap((p) => [1, p]));
  return pids;
}

describe('time entries', () => {
  it('two schedulers: a broadcast’s pages are entered once each, every member once', async () => {
    const pids = await seedMembers('seg_a', 1200);
    const registry = registryWith('j_a', {
      broadcast: { segment: 'seg_a', at: new Date(Date.now() - 1000).toISOString() },
    });
    const a = recorder({ delayMs: 1 });
    const b = recorder({ delayMs: 1 });
    const make = (engine: ReturnType<typeof recorder>['engine']) =>
      timeEntries({ redis, prefix, log, now: Date.now, registry, engine, defaultTimezone: 'UTC', page: 100 });
    const [sa, sb] = [make(a.engine), make(b.engine)];
    // both at once, again and again until done
    for (let i = 0; i < 20; i++) await Promise.all([sa.tick(), sb.tick()]);
    const all = [...a.out.entered, ...b.out.entered];
    expect(all).toHaveLength(1200);
    expect(new Set(all.map((e) => e.split(' ')[0]))).toEqual(new Set(pids));
    // the lease: no page was read by both (ZSCAN pages of a large set hold about `page` members)
    expect(a.out.calls + b.out.calls).toBe(1200);
    expect(await sa.tick()).toBe(0);
  });

  it('a scheduler that fails mid-page: the next takes over from the saved cursor, entering no one twice', async () => {
    const pids = await seedMembers('seg_b', 1000);
    const registry = registryWith('j_b', {
      broadcast: { segment: 'seg_b', at: new Date(Date.now() - 1000).toISOString() },
    });
    const dying = recorder({ failAfter: 250 });
    const next = recorder();
    const opts = { redis, prefix, log, now: Date.now, registry, defaultTimezone: 'UTC', page: 100 };
    const first = timeEntries({ ...opts, engine: dying.engine, concurrency: 1 });
    await first.tick(); // fails (logged) in its third page
    expect(dying.out.entered).toHaveLength(250);
    const second = timeEntries({ ...opts, engine: next.engine });
    for (let i = 0; i < 5; i++) await second.tick();
    // the failed page was read again: more calls than people left, yet nobody entered twice
    expect(next.out.calls).toBeGreaterThan(750);
    const all = [...dying.out.entered, ...next.out.entered];
    expect(all).toHaveLength(1000);
    expect(new Set(all.map((e) => e.split(' ')[0]))).toEqual(new Set(pids));
  });

  it('a broadcast paused mid-page waits where it was and goes on when resumed, entering no one twice', async () => {
    const pids = await seedMembers('seg_d', 600);
    const entry = { broadcast: { segment: 'seg_d', at: new Date(Date.now() - 1000).toISOString() } };
    const registry = registryWith('j_d', entry);
    const def = registry.get(ws, 'j_d')!.def;
    const set = (status: JourneyDefinition['status']) => {
      const d = { ...def, status };
      registry.replace([d], [d]);
    };
    const rec = recorder();
    // the journey is paused while its second page is being entered
    let paused = false;
    const engine = {
      async onTimeEntry(ref: RunRef, occurrence: string) {
        if (rec.out.calls === 150 && !paused) {
          paused = true;
          set('paused');
        }
        return registry.get(ws, 'j_d')!.def.status === 'active' && rec.engine.onTimeEntry(ref, occurrence);
      },
    };
    const s = timeEntries({
      redis,
      prefix,
      log,
      now: Date.now,
      registry,
      engine,
      defaultTimezone: 'UTC',
      page: 100,
      concurrency: 1,
    });
    await s.tick();
    expect(rec.out.entered.length).toBeGreaterThanOrEqual(100);
    expect(rec.out.entered.length).toBeLessThan(600);
    expect(await s.tick()).toBe(0); // paused: nothing
    set('active');
    for (let i = 0; i < 10; i++) await s.tick();
    expect(rec.out.entered).toHaveLength(600);
    expect(new Set(rec.out.entered.map((e) => e.split(' ')[0]))).toEqual(new Set(pids));
  });

  it('a date-trait backfill: every profile of its workspace and no one else’s, in few round trips among many other keys, resumed after a crash', async () => {
    // the workspace's people: a profile hash, traits and their times each, and keys under
    // the profile that a looser match would take for a traits hash (a condition `t`)
    const dk = workspaceKeys(prefix, 'ws_dates');
    const people = Array.from({ length: 45 }, (_, i) => `0c1d${i}-dt`);
    const own = redis.pipeline();
    for (const pid of people) {
      own.hset(dk.profile(pid), 'id', pid);
      own.hset(dk.profileTraits(pid), 'renewal_date', '"2030-01-01"');
      own.hset(dk.profileTraitTimes(pid), 'renewal_date', '1');
      own.zadd(dk.profileConditionTimes(pid, 't'), 1, 'm');
    }
    await own.exec();
    // 30,000 keys of other workspaces (one whose id starts the same), under other prefixes too
    for (let b = 0; b < 30; b++) {
      const other = redis.pipeline();
      for (let i = 0; i < 1000; i++) {
        const k = workspaceKeys(b % 3 === 0 ? `${prefix}x` : prefix, b % 2 ? 'ws_dates2' : `ws_other${b}`);
        other.hset(k.profileTraits(`o${b}-${i}`), 'renewal_date', '"2030-01-01"');
      }
      await other.exec();
    }
    const def = registryWith('j_dt', { dateTrait: 'renewal_date', at: '09:00' }).get(ws, 'j_dt')!.def;
    const registry = new JourneyRegistry();
    const d = { ...def, workspaceId: 'ws_dates' };
    registry.replace([d], [d]);
    // the round trips the backfill makes: its SCAN calls, and the pages it saves
    const calls = { scan: 0, pages: 0 };
    const counted = new Proxy(redis, {
      get(target, name) {
        const v = Reflect.get(target, name, target) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (name === 'scan') calls.scan++;
          if (name === 'hset' && String(args[0]).endsWith(':journeys:entries')) calls.pages++;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const seen: string[] = [];
    const dates = (failAfter = Number.POSITIVE_INFINITY) => ({
      async backfill(ref: RunRef): Promise<boolean> {
        if (seen.length >= failAfter) throw new Error('runner died');
        expect(ref).toMatchObject({ workspaceId: 'ws_dates', journeyId: 'j_dt' });
        seen.push(ref.profileId);
        return true;
      },
    });
    const opts = {
      redis: counted,
      prefix,
      log,
      now: Date.now,
      registry,
      engine: recorder().engine,
      defaultTimezone: 'UTC',
      page: 20,
      concurrency: 1,
    };
    // the first runner dies in its second page; the next goes on from the saved cursor
    await timeEntries({ ...opts, dates: dates(30) }).tick();
    expect(seen).toHaveLength(30);
    const saved = JSON.parse((await redis.hget(globalKeys(prefix).journeysEntries, 'ws_dates/j_dt'))!);
    expect(saved).toMatchObject({ done: false });
    expect(saved.cursor).not.toBe('0');
    const next = timeEntries({ ...opts, dates: dates() });
    for (let i = 0; i < 5; i++) await next.tick();
    expect(new Set(seen)).toEqual(new Set(people));
    // the other workspaces' keys cost a few SCAN calls of a large COUNT (SCAN walks the hash
    // table, up to twice the keys), and no page of their own; a page is saved at the latest
    // after 50 SCAN calls of 1,000 (the Redis is shared with the whole suite's other tests)
    const keys = await redis.dbsize();
    expect(calls.scan).toBeLessThanOrEqual(2 * Math.ceil(keys / 1000) + 10);
    expect(calls.pages).toBeLessThanOrEqual(
      Math.ceil(people.length / 20) + Math.ceil((2 * keys) / 50_000) + 3,
    );
  });

  it('a schedule enters at each tick of its cron in its zone, on an injected clock, and not between', async () => {
    await seedMembers('seg_c', 3);
    const registry = registryWith('j_c', {
      schedule: { cron: '0 9 * * *', tz: 'Europe/Berlin', segment: 'seg_c' },
    });
    let clock = Date.parse('2026-03-28T07:59:00Z'); // 08:59 CET
    const rec = recorder();
    const s = timeEntries({
      redis,
      prefix,
      log,
      now: () => clock,
      registry,
      engine: rec.engine,
      defaultTimezone: 'UTC',
    });
    expect(await s.tick()).toBe(0);
    clock = Date.parse('2026-03-28T08:00:00.500Z'); // 09:00:00.5 CET
    expect(await s.tick()).toBe(3);
    expect(await s.tick()).toBe(0);
    clock = Date.parse('2026-03-29T06:59:00Z'); // 08:59 CEST, the day DST starts
    expect(await s.tick()).toBe(0);
    clock = Date.parse('2026-03-29T07:00:01Z'); // 09:00:01 CEST
    expect(await s.tick()).toBe(3);
    expect(rec.out.entered.filter((e) => e.startsWith('p0 '))).toEqual([
      'p0 schedule@2026-03-28T08:00:00.000Z',
      'p0 schedule@2026-03-29T07:00:00.000Z',
    ]);
  });
});
