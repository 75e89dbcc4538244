// The journey run state in Redis (run-state.lua): enter, move by compare-and-set, peek.
import { readFileSync } from 'node:fs';
import type { Redis } from '../../runtime/redis.ts';
import type { ReEntry } from '../../schemas/journey.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';

const SCRIPT = readFileSync(new URL('./run-state.lua', import.meta.url), 'utf8');
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

type Script = (k1: string, k2: string, ...args: Array<string | number>) => Promise<string[]>;

export function runStore(redis: Redis, prefix: string) {
  const r = redis as unknown as { cdpJourneyRun?: Script };
  if (typeof r.cdpJourneyRun !== 'function')
    redis.defineCommand('cdpJourneyRun', { numberOfKeys: 2, lua: SCRIPT });
  const call: Script = (...args) => (redis as unknown as { cdpJourneyRun: Script }).cdpJourneyRun(...args);
  const keys = (ref: RunRef) => {
    const k = workspaceKeys(prefix, ref.workspaceId);
    return [k.journeyRun(ref.journeyId, ref.profileId), k.journeyStats(ref.journeyId)] as const;
  };
  return {
    async enter(
      ref: RunRef,
      version: number,
      start: string,
      nowMs: number,
      reEntry: ReEntry = 'never',
    ): Promise<{ result: 'entered' | 'busy' | 'refused'; run: number }> {
      const [mode, windowMs] =
        typeof reEntry === 'string' ? [reEntry, 0] : ['window', reEntry.everyDays * DAY_MS];
      const [result, run] = await call(...keys(ref), 'enter', version, start, nowMs, mode, windowMs);
      return { result: result as 'entered' | 'busy' | 'refused', run: Number(run) };
    },
    /** Moves the run from `from` to `to` ('' ends it, for `reason`); false when it was not there. */
    async move(
      ref: RunRef,
      run: number,
      from: string,
      to: string,
      nowMs: number,
      reason = '',
    ): Promise<boolean> {
      const [result] = await call(...keys(ref), 'move', run, from, to, nowMs, reason);
      return result === 'moved';
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
