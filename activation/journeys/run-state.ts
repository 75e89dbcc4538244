// The journey run state in Redis (run-state.lua): enter, move by compare-and-set, peek.
import { readFileSync } from 'node:fs';
import type { Redis } from '../../runtime/redis.ts';
import { tombstoneMember } from '../../schemas/erasure.ts';
import type { ReEntry } from '../../schemas/journey.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';

const SCRIPT = readFileSync(new URL('./run-state.lua', import.meta.url), 'utf8');

// A merge of two people: one run per journey per person is kept. An active run of the
// merged-away profile moves to the survivor (same node, same time there) unless the
// survivor has an active run of its own, in which case it ends as `merged`.
// KEYS: 1 merged-away run hash, 2 stats hash, 3 survivor run hash
// → { 'none' } | { 'ended', run } | { 'moved', survivor's new run number }
const MERGE = `
if redis.call('HGET', KEYS[1], 'state') ~= 'active' then return { 'none', '0' } end
local f = redis.call('HMGET', KEYS[1], 'run', 'v', 'node', 'enteredAt', 'nodeAt')
local now = ARGV[1]
redis.call('HSET', KEYS[1], 'state', 'ended', 'node', '', 'endedAt', now, 'end', 'merged')
if redis.call('HGET', KEYS[3], 'state') == 'active' then
  redis.call('HINCRBY', KEYS[2], 'now:' .. f[3], -1)
  redis.call('HINCRBY', KEYS[2], 'exited:' .. f[3], 1)
  redis.call('HINCRBY', KEYS[2], 'ended:merged', 1)
  return { 'ended', f[1] }
end
local run = tonumber(redis.call('HGET', KEYS[3], 'run') or '0') + 1
-- the run's arms (and a counted conversion) go with it; the survivor's old ones go
local stale = {}
for _, k in ipairs(redis.call('HKEYS', KEYS[3])) do
  if k == 'conv' or string.sub(k, 1, 4) == 'arm:' then stale[#stale + 1] = k end
end
if #stale > 0 then redis.call('HDEL', KEYS[3], unpack(stale)) end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] == 'conv' or string.sub(all[i], 1, 4) == 'arm:' then redis.call('HSET', KEYS[3], all[i], all[i + 1]) end
end
redis.call('HSET', KEYS[3], 'run', run, 'v', f[2], 'node', f[3], 'state', 'active',
  'enteredAt', f[4], 'nodeAt', f[5], 'endedAt', '', 'end', '')
return { 'moved', tostring(run) }`;
const DAY_MS = 86_400_000;

export interface RunRef {
  workspaceId: string;
  journeyId: string;
  profileId: string;
}

export interface RunState {
  active: boolean;
  run: number;
  node: string;
  version: number;
  nodeAt: number;
  enteredAt: number;
}

type Script = (k1: string, k2: string, k3: string, ...args: Array<string | number>) => Promise<string[]>;

export function runStore(redis: Redis, prefix: string) {
  const r = redis as unknown as { cdpJourneyRun?: Script };
  if (typeof r.cdpJourneyRun !== 'function')
    redis.defineCommand('cdpJourneyRun', { numberOfKeys: 3, lua: SCRIPT });
  const call: Script = (...args) => (redis as unknown as { cdpJourneyRun: Script }).cdpJourneyRun(...args);
  const keys = (ref: RunRef) => {
    const k = workspaceKeys(prefix, ref.workspaceId);
    return [k.journeyRun(ref.journeyId, ref.profileId), k.journeyStats(ref.journeyId), k.erased] as const;
  };
  return {
    async enter(
      ref: RunRef,
      version: number,
      start: string,
      nowMs: number,
      reEntry: ReEntry = 'never',
      /** A time entry's occurrence (`broadcast@…`): a person enters at most once at each. */
      occurrence = '',
    ): Promise<{ result: 'entered' | 'busy' | 'refused' | 'again' | 'erased'; run: number }> {
      const [mode, windowMs] =
        typeof reEntry === 'string' ? [reEntry, 0] : ['window', reEntry.everyDays * DAY_MS];
      const [result, run] = await call(
        ...keys(ref),
        'enter',
        version,
        start,
        nowMs,
        mode,
        windowMs,
        occurrence,
        tombstoneMember('profile', ref.profileId),
      );
      return { result: result as 'entered' | 'busy' | 'refused' | 'again' | 'erased', run: Number(run) };
    },
    /**
     * Moves the run from `from` to `to` ('' ends it, for `reason`); false when it was not there.
     * `arm`: the way it left `from` (a split's variant, a branch's yes/no, met/timeout);
     * `windowMs`: the goal's conversion window, when it ends as `converted`.
     */
    async move(
      ref: RunRef,
      run: number,
      from: string,
      to: string,
      nowMs: number,
      reason = '',
      opts: { arm?: string; windowMs?: number } = {},
    ): Promise<boolean> {
      const [result] = await call(
        ...keys(ref),
        'move',
        run,
        from,
        to,
        nowMs,
        reason,
        opts.arm ?? '',
        opts.windowMs ?? 0,
      );
      return result === 'moved';
    },
    /**
     * Moves an active run of `fromVersion` at `fromNode` to `toVersion` at `toNode` (a
     * migration of people in flight); false when the run is elsewhere or ended.
     */
    async migrate(
      ref: RunRef,
      run: number,
      from: { version: number; node: string },
      to: { version: number; node: string },
      nowMs: number,
    ): Promise<boolean> {
      const [result] = await call(
        ...keys(ref),
        'migrate',
        run,
        from.version,
        from.node,
        to.version,
        to.node,
        nowMs,
      );
      return result === 'moved';
    },
    /**
     * The goal reached after the run ended (completed, exited, held out), within `windowMs`
     * of entering it: counted once for its arms. True when counted.
     */
    async convertAfterExit(ref: RunRef, nowMs: number, windowMs: number): Promise<boolean> {
      const [result] = await call(...keys(ref), 'convert', nowMs, windowMs);
      return result === 'counted';
    },
    /**
     * Several moves of one run at once, in order, each a compare-and-set as `move`; stops at
     * the first that finds the run elsewhere. Returns how many were made.
     */
    async movePath(
      ref: RunRef,
      run: number,
      moves: ReadonlyArray<{ from: string; to: string; reason: string; arm?: string }>,
      nowMs: number,
    ): Promise<number> {
      if (moves.length === 0) return 0;
      const [, done] = await call(
        ...keys(ref),
        'path',
        run,
        nowMs,
        ...moves.flatMap((m) => [m.from, m.to, m.reason, m.arm ?? '']),
      );
      return Number(done);
    },
    /** `from`'s active run after `from` merged into `into` (see MERGE). */
    async merge(
      from: RunRef,
      into: RunRef,
      nowMs: number,
    ): Promise<{ result: 'none' | 'ended' | 'moved'; run: number }> {
      const k = workspaceKeys(prefix, from.workspaceId);
      const [result, run] = (await redis.eval(
        MERGE,
        3,
        k.journeyRun(from.journeyId, from.profileId),
        k.journeyStats(from.journeyId),
        k.journeyRun(into.journeyId, into.profileId),
        nowMs,
      )) as [string, string];
      return { result: result as 'none' | 'ended' | 'moved', run: Number(run) };
    },
    async peek(ref: RunRef): Promise<RunState> {
      const [state, run, node, v, nodeAt, enteredAt] = await call(...keys(ref), 'peek');
      return {
        active: state === 'active',
        run: Number(run),
        node: node ?? '',
        version: Number(v || 0),
        nodeAt: Number(nodeAt || 0),
        enteredAt: Number(enteredAt || 0),
      };
    },
  };
}
export type RunStore = ReturnType<typeof runStore>;
