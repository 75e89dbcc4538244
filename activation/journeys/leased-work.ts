// What the runner's paged background work shares (broadcasts, schedules and date-trait
// backfills in time-entries.ts, migrations in migrations.ts): a lease per piece of work so
// one runner at a time does it (SET NX PX, renewed after each page, released by its
// holder only), and a loop that ticks until stopped.
import { randomBytes } from 'node:crypto';
import type { Redis } from '../../runtime/redis.ts';

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface Lease {
  /** Extends the lease; false when it was lost (another runner holds the work now). */
  renew(): Promise<boolean>;
  release(): Promise<void>;
}

/** Takes the lease at `key` for `ms`, or undefined when another runner holds it. */
export async function takeLease(redis: Redis, key: string, ms: number): Promise<Lease | undefined> {
  const token = randomBytes(9).toString('base64url');
  if ((await redis.set(key, token, 'PX', ms, 'NX')) !== 'OK') return undefined;
  return {
    renew: async () => Number(await redis.eval(RENEW, 1, key, token, ms)) === 1,
    release: async () => {
      await redis.eval(RELEASE, 1, key, token).catch(() => {});
    },
  };
}

/** Runs `tick` every `intervalMs` (after `ready`: the definitions loaded) until stopped. */
export function tickLoop(tick: () => Promise<unknown>) {
  let stopped = false;
  let loop: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  return {
    start(intervalMs: number, ready: () => Promise<unknown>) {
      const step = async () => {
        if (stopped) return;
        running = ready().then(tick);
        await running.catch(() => {});
        if (!stopped) loop = setTimeout(step, intervalMs);
      };
      loop = setTimeout(step, 0);
    },
    async stop() {
      stopped = true;
      if (loop) clearTimeout(loop);
      await running.catch(() => {});
    },
  };
}
