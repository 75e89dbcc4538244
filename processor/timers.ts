// Time-driven re-evaluation: a windowed rule can change truth with no new event ("did X
// in the last 7 days" ends when the 7 days do). Each evaluation schedules the profile at
// the moment its next counted event leaves a window; a worker on every processor claims
// due timers with a lease and re-evaluates those profiles.
import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import type { Logger } from '../runtime/log.ts';
import { metrics } from '../runtime/metrics.ts';
import type { Redis } from '../runtime/redis.ts';
import { globalKeys } from '../schemas/redis-keys.ts';

const CLAIM = readFileSync(new URL('./claim-timers.lua', import.meta.url), 'utf8');

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** member, due time (ms), member, due time, ... */
    cdpClaimTimers(
      timers: string,
      leases: string,
      now: number,
      until: number,
      limit: number,
    ): Result<string[], Context>;
  }
}

export const timerMember = (workspaceId: string, profileId: string) => `${workspaceId}/${profileId}`;

export function parseTimerMember(m: string): { workspaceId: string; profileId: string } | undefined {
  const i = m.indexOf('/');
  return i > 0 ? { workspaceId: m.slice(0, i), profileId: m.slice(i + 1) } : undefined;
}

export function startTimerWorker(opts: {
  redis: Redis;
  prefix: string;
  /** Re-evaluates the given profiles; resolves when their transitions are published. */
  reevaluate(members: Array<{ workspaceId: string; profileId: string }>): Promise<void>;
  log: Logger;
  now: () => Date;
  intervalMs?: number;
  leaseMs?: number;
  batch?: number;
  /** false: no background loop, the caller calls tick() (tests with an injected clock). */
  autostart?: boolean;
}): { stop(): Promise<void>; tick(): Promise<number> } {
  const keys = globalKeys(opts.prefix);
  opts.redis.defineCommand('cdpClaimTimers', { numberOfKeys: 2, lua: CLAIM });
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();

  /** Claims and handles one round of due timers; returns how many. */
  const tick = async (): Promise<number> => {
    const now = opts.now().getTime();
    const due = await opts.redis.cdpClaimTimers(
      keys.timers,
      keys.timerLeases,
      now,
      now + (opts.leaseMs ?? 30_000),
      opts.batch ?? 500,
    );
    if (due.length === 0) return 0;
    const claimed: string[] = [];
    for (let i = 0; i < due.length; i += 2) {
      claimed.push(due[i]!);
      metrics.segmentTimerLateness.observe(Math.max(0, now - Number(due[i + 1])) / 1000);
    }
    const members = claimed.map(parseTimerMember).filter((m) => m !== undefined);
    await opts.reevaluate(members);
    await opts.redis.zrem(keys.timerLeases, ...claimed);
    metrics.segmentTimersFired.inc(claimed.length);
    return claimed.length;
  };

  const loop = async () => {
    if (stopped) return;
    running = tick()
      .then((n) => {
        if (n > 0) opts.log.debug({ count: n }, 'timers_fired');
      })
      .catch((err) => opts.log.warn({ err: (err as Error).message }, 'timers_failed'));
    await running;
    if (!stopped) timer = setTimeout(loop, opts.intervalMs ?? 200);
  };
  if (opts.autostart !== false) timer = setTimeout(loop, 0);
  return {
    tick,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
