// Entries by time: a broadcast enters every member of a segment once at a time; a schedule
// enters the members of a segment at each tick of a cron expression (in its zone). A
// journey's current occurrence is a small record in Redis ({occ, cursor, done}); one runner
// at a time enters it, holding a lease (SET NX PX, renewed after every page). Members are
// paged from the segment's member set with ZSCAN, the cursor saved after each page, so a
// runner that dies is taken over where it stopped; the page it was on is repeated, which
// enters nobody twice (a person enters at most once per occurrence: run-state.lua).
// A date-trait entry's backfill runs the same way, once per entry, over the workspace's
// profiles, setting each person's entry timer (date-entries.ts). Redis keeps no list of a
// workspace's profiles (the segment backfill walks them the same way): their traits hashes
// are found by SCAN with a MATCH on the workspace's hash tag, in calls of a larger COUNT
// until a page of people is found, so the keys of other workspaces cost few round trips and
// no page of their own; the cursor is saved once a page is entered, as for a segment.
// A paused journey keeps its place and goes on when it resumes; an occurrence missed while
// no runner ran goes once, late, and the schedule goes on from the next tick after now.

import type { Logger } from '../../runtime/log.ts';
import type { Redis } from '../../runtime/redis.ts';
import { broadcastInstant, type JourneyEntry } from '../../schemas/journey.ts';
import { localDateTime, localInstant, nextCronTime, parseCron } from '../../schemas/journey-time.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { profileTimezone } from '../policy/local-time.ts';
import type { DateEntries } from './date-entries.ts';
import type { JourneyEngine } from './journey-engine.ts';
import type { CompiledJourney, JourneyRegistry } from './journey-registry.ts';
import type { DueRun, JourneyTimers } from './journey-timers.ts';
import { takeLease, tickLoop } from './leased-work.ts';
import { readProfileContext } from './profile-context.ts';
import type { RunRef } from './run-state.ts';

interface Occurrence {
  /** What the occurrence was computed from: a changed entry starts afresh. */
  spec: string;
  /** When it is due, ms. */
  occ: number;
  /** ZSCAN cursor of the members entered so far ('0': none yet). */
  cursor: string;
  /** Everyone entered (a broadcast's only occurrence; a schedule never stays done). */
  done: boolean;
}

/** SCAN calls a backfill makes for one page at most (then the page is entered, however small). */
const SCAN_CALLS_PER_PAGE = 50;
/** Timer node of a member's local-broadcast entry: `$local:<wall-clock ms>`. */
export const LOCAL_BROADCAST_NODE = '$local:';
/** The earliest zone is UTC+14 (Kiribati). */
const EARLIEST_OFFSET_MS = 14 * 3600_000;
/** A local broadcast's occurrence: `broadcast@2026-12-24T09:00:00 local`. */
const localOccurrence = (wall: number) => `broadcast@${new Date(wall).toISOString().slice(0, 19)} local`;

export function timeEntries(opts: {
  redis: Redis;
  prefix: string;
  log: Logger;
  now: () => number;
  registry: Pick<JourneyRegistry, 'all' | 'get'>;
  engine: Pick<JourneyEngine, 'onTimeEntry'>;
  /** A broadcast at each member's local time: their own timers until then. */
  timers?: Pick<JourneyTimers, 'schedule' | 'park'>;
  /** A schedule's zone when it names none (CDP_DEFAULT_TIMEZONE). */
  defaultTimezone: string;
  /** Date-trait entries: the backfill of a journey's people when it is activated. */
  dates?: Pick<DateEntries, 'backfill'>;
  /** Members read per page (ZSCAN COUNT). */
  page?: number;
  leaseMs?: number;
  /** People entered side by side within a page. */
  concurrency?: number;
}) {
  const keys = globalKeys(opts.prefix);
  const leaseMs = opts.leaseMs ?? 30_000;
  const page = opts.page ?? 500;
  const concurrency = opts.concurrency ?? 16;
  /** Keys a backfill's SCAN call looks at: the workspace's trait hashes are a few of them. */
  const scanCount = Math.max(1000, page * 4);

  type Plan = {
    spec: string;
    kind: 'broadcast' | 'schedule' | 'dateTrait';
    /** A broadcast at each member's local time: the wall-clock time (ms, as if UTC). */
    local?: number;
    /** A page of profile ids from a ZSCAN or SCAN cursor. */
    scan: (ws: string, cursor: string) => Promise<[string, string[]]>;
    next: (after: number) => number | undefined;
  };
  const members = (segment: string) => async (ws: string, cursor: string) => {
    const key = workspaceKeys(opts.prefix, ws).segmentMembers(segment);
    const [next, flat]: [string, string[]] = await opts.redis.zscan(key, cursor, 'COUNT', page);
    return [next, flat.filter((_, i) => i % 2 === 0)] as [string, string[]];
  };
  /** A page of the workspace's profile ids (those with a traits hash) from a SCAN cursor. */
  const profiles = async (ws: string, cursor: string): Promise<[string, string[]]> => {
    const [head, tail] = workspaceKeys(opts.prefix, ws).profileTraits('\u0000').split('\u0000') as [
      string,
      string,
    ];
    const pattern = `${head.replace(/[*?[\]\\]/g, '\\$&')}*${tail}`;
    const people: string[] = [];
    let next = cursor;
    for (let calls = 0; calls < SCAN_CALLS_PER_PAGE; calls++) {
      const [c, keys]: [string, string[]] = await opts.redis.scan(next, 'MATCH', pattern, 'COUNT', scanCount);
      next = c;
      for (const key of keys) {
        // a profile id has no ':' (the pattern's '*' would also match a longer key)
        const pid = key.slice(head.length, key.length - tail.length);
        if (pid !== '' && !pid.includes(':')) people.push(pid);
      }
      if (next === '0' || people.length >= page) break;
    }
    return [next, people];
  };
  const plan = (e: JourneyEntry): Plan | undefined => {
    if ('broadcast' in e && e.broadcast.localTime) {
      const wall = localDateTime(e.broadcast.at);
      if (wall === undefined || !opts.timers) return undefined;
      return {
        spec: `broadcast-local\u0000${e.broadcast.segment}\u0000${wall}`,
        kind: 'broadcast',
        local: wall,
        scan: members(e.broadcast.segment),
        // the earliest zone (UTC+14) reaches the time first: members are paged then, each
        // entered at once if their time has come, else given a timer for it
        next: () => wall - EARLIEST_OFFSET_MS,
      };
    }
    if ('broadcast' in e) {
      const at = broadcastInstant(e.broadcast.at);
      if (at === undefined) return undefined;
      return {
        spec: `broadcast\u0000${e.broadcast.segment}\u0000${at}`,
        kind: 'broadcast',
        scan: members(e.broadcast.segment),
        next: () => at,
      };
    }
    if ('schedule' in e) {
      const tz = e.schedule.tz ?? opts.defaultTimezone;
      const cron = parseCron(e.schedule.cron);
      return {
        spec: `schedule\u0000${e.schedule.segment}\u0000${e.schedule.cron}\u0000${tz}`,
        kind: 'schedule',
        scan: members(e.schedule.segment),
        next: (after) => nextCronTime(after, cron, tz),
      };
    }
    if ('dateTrait' in e && opts.dates) {
      // the backfill: every profile of the workspace (their traits hashes), once per entry
      return {
        spec: `dateTrait\u0000${e.dateTrait}\u0000${e.offset ?? ''}\u0000${e.at}`,
        kind: 'dateTrait',
        scan: profiles,
        next: () => 0,
      };
    }
    return undefined;
  };

  const read = async (field: string): Promise<Occurrence | undefined> => {
    const raw = await opts.redis.hget(keys.journeysEntries, field);
    try {
      return raw ? (JSON.parse(raw) as Occurrence) : undefined;
    } catch {
      return undefined;
    }
  };
  const write = (field: string, o: Occurrence) =>
    opts.redis.hset(keys.journeysEntries, field, JSON.stringify(o));

  const active = (j: CompiledJourney) =>
    opts.registry.all().find((x) => x.def.workspaceId === j.def.workspaceId && x.def.id === j.def.id)?.def
      .status === 'active';

  /** Enters the due occurrence of one journey, if any; the number of people it entered. */
  async function run(j: CompiledJourney): Promise<number> {
    const p = plan(j.def.entry);
    if (!p) return 0;
    const { workspaceId, id } = j.def;
    const field = `${workspaceId}/${id}`;
    const now = opts.now();
    const seen = await read(field);
    if (seen && seen.spec === p.spec && (seen.done || seen.occ > now)) return 0; // nothing due
    const lease = keys.journeysEntryLease(workspaceId, id);
    const held = await takeLease(opts.redis, lease, leaseMs);
    if (!held) return 0;
    let entered = 0;
    try {
      let o = await read(field);
      if (!o || o.spec !== p.spec) {
        const occ = p.next(now);
        o = { spec: p.spec, occ: occ ?? 0, cursor: '0', done: occ === undefined };
        await write(field, o);
      }
      while (!o.done && o.occ <= opts.now() && active(j)) {
        const occurrence =
          p.local !== undefined ? localOccurrence(p.local) : `${p.kind}@${new Date(o.occ).toISOString()}`;
        const [cursor, people] = await p.scan(workspaceId, o.cursor);
        const queue = [...people];
        const act = (ref: RunRef) =>
          p.kind === 'dateTrait'
            ? opts.dates!.backfill(ref)
            : p.local !== undefined
              ? enterAtLocal(ref, p.local)
              : opts.engine.onTimeEntry(ref, occurrence);
        const worker = async () => {
          for (let pid = queue.shift(); pid !== undefined; pid = queue.shift())
            if (await act({ workspaceId, journeyId: id, profileId: pid })) entered++;
        };
        await Promise.all(Array.from({ length: Math.min(concurrency, people.length) }, worker));
        // paused meanwhile: this page again on resume (whoever entered is not entered twice)
        if (!active(j)) break;
        if (cursor !== '0') o = { ...o, cursor };
        else if (p.kind !== 'schedule') o = { ...o, cursor, done: true };
        else {
          // the next tick after now: ticks missed while no runner ran are not made up one by one
          const next = p.next(Math.max(o.occ, opts.now()));
          o = { spec: p.spec, occ: next ?? 0, cursor: '0', done: next === undefined };
        }
        await write(field, o);
        if (cursor === '0') {
          opts.log.info({ workspaceId, journeyId: id, occurrence }, 'journey_time_entry_done');
          break;
        }
        if (!(await held.renew())) break; // lease lost
      }
    } finally {
      await held.release();
    }
    return entered;
  }

  /** The member's instant of a local broadcast, in the zone their profile has now. */
  const localDue = async (ref: RunRef, wall: number) => {
    const p = await readProfileContext(opts.redis, opts.prefix, ref.workspaceId, ref.profileId);
    return {
      profileId: p.profileId,
      due: localInstant(wall, profileTimezone(p.traits, opts.defaultTimezone)),
    };
  };

  /** A member of a local broadcast: entered now if their time has come, else a timer for it. */
  async function enterAtLocal(ref: RunRef, wall: number): Promise<boolean> {
    const { profileId, due } = await localDue(ref, wall);
    if (profileId !== ref.profileId) return false; // merged away: the survivor is a member of its own
    if (due <= opts.now()) return opts.engine.onTimeEntry(ref, localOccurrence(wall));
    await opts.timers!.schedule(ref, 0, `${LOCAL_BROADCAST_NODE}${wall}`, due);
    return false;
  }

  const loop = tickLoop(() => api.tick());
  const api = {
    run,
    /**
     * A member's local-broadcast timer fired: they enter, unless the broadcast changed
     * since (its own members then) or their zone moved their time later (a new timer).
     */
    async onLocalDue(d: DueRun): Promise<void> {
      const j = opts.registry.get(d.ref.workspaceId, d.ref.journeyId);
      const e = j?.def.entry;
      if (!j || !e || !('broadcast' in e) || !e.broadcast.localTime) return;
      const wall = localDateTime(e.broadcast.at);
      if (wall === undefined || `${LOCAL_BROADCAST_NODE}${wall}` !== d.node) return;
      if (j.def.status === 'paused') {
        await opts.timers!.park(d.ref, 0, d.node, opts.now());
        return;
      }
      if (j.def.status !== 'active') return;
      const { profileId, due } = await localDue(d.ref, wall);
      const ref = { ...d.ref, profileId };
      if (due > opts.now()) await opts.timers!.schedule(ref, 0, d.node, due);
      else await opts.engine.onTimeEntry(ref, localOccurrence(wall));
    },
    /** Every journey with a broadcast or schedule entry, once. */
    async tick(): Promise<number> {
      let n = 0;
      for (const j of opts.registry.all())
        if (
          j.def.status === 'active' &&
          ('broadcast' in j.def.entry || 'schedule' in j.def.entry || 'dateTrait' in j.def.entry)
        )
          n += await run(j).catch((err) => {
            opts.log.warn({ journeyId: j.def.id, err: (err as Error).message }, 'journey_time_entry_failed');
            return 0;
          });
      return n;
    },
    /** Ticks every `intervalMs` until stopped, after `ready` (the definitions loaded). */
    start: (intervalMs: number, ready: () => Promise<unknown>) => loop.start(intervalMs, ready),
    stop: () => loop.stop(),
  };
  return api;
}
