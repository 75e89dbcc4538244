// Erasure jobs: durable state in Redis (a hash per job under the workspace's hash tag), run
// step by step until every step is done. A DELETE creates the job and runs it at once; what
// it cannot finish (ClickHouse down, the process dying, the sweep waiting for rows still
// on their way into ClickHouse) a worker in every query process picks up from the due set,
// with backoff, so a restart or a repeated DELETE resumes it. One runner at a time per job
// (a lease); every step is idempotent, so a runner that lost its lease mid-step is harmless.
import { randomBytes } from 'node:crypto';
import { backoffDelayMs, errorMessage } from '../runtime/errors.ts';
import type { Logger } from '../runtime/log.ts';
import { ERASURE_STEPS, type ErasureJob, type ErasureStep } from '../schemas/erasure.ts';
import { globalKeys, workspaceKeys } from '../schemas/redis-keys.ts';
import { recordAudit } from './audit.ts';
import { type EraseDeps, type ErasedState, runStep } from './erase-profile.ts';

export interface ErasureJobDeps extends EraseDeps {
  log: Logger;
  now: () => Date;
  /**
   * How long after the Redis step the sweep runs: long enough for every history sink to
   * have seen the tombstones and inserted what it had accepted before (its flush interval).
   */
  sweepDelayMs: number;
}

const LEASE_MS = 120_000;
/** A new job is the creator's to run first; the worker takes it only if it is still unfinished then. */
const CREATOR_GRACE_MS = 30_000;

/** The job erasing this profile (or a profile merged into it), if any. */
export async function erasureOfProfile(
  deps: ErasureJobDeps,
  ws: string,
  profileId: string,
): Promise<ErasureJob | undefined> {
  const k = workspaceKeys(deps.redisPrefix, ws);
  const jobId = await deps.redis.hget(k.erasureByProfile, profileId);
  return jobId ? readErasure(deps, ws, jobId) : undefined;
}

export async function readErasure(
  deps: Pick<ErasureJobDeps, 'redis' | 'redisPrefix'>,
  ws: string,
  jobId: string,
): Promise<ErasureJob | undefined> {
  const h = await deps.redis.hgetall(workspaceKeys(deps.redisPrefix, ws).erasure(jobId));
  return h.id ? toJob(h) : undefined;
}

export async function listErasures(
  deps: Pick<ErasureJobDeps, 'redis' | 'redisPrefix'>,
  ws: string,
  limit: number,
): Promise<ErasureJob[]> {
  const k = workspaceKeys(deps.redisPrefix, ws);
  const ids = await deps.redis.zrevrange(k.erasures, 0, limit - 1);
  const jobs = await Promise.all(ids.map((id) => readErasure(deps, ws, id)));
  return jobs.filter((j): j is ErasureJob => j !== undefined);
}

/**
 * The erasure of a profile: its existing job (a repeated request), or a new one. Two
 * requests at once get the same job (HSETNX on the profile's entry decides).
 */
export async function createErasure(
  deps: ErasureJobDeps,
  ws: string,
  profileId: string,
  requestedBy: string,
): Promise<ErasureJob> {
  const k = workspaceKeys(deps.redisPrefix, ws);
  const fresh = `er_${randomBytes(12).toString('hex')}`;
  await deps.redis.hsetnx(k.erasureByProfile, profileId, fresh);
  const jobId = (await deps.redis.hget(k.erasureByProfile, profileId)) ?? fresh;
  const existing = await readErasure(deps, ws, jobId);
  if (existing) return existing;
  // new, or a creation that died between the two writes: write the job (HSETNX: a
  // concurrent creator's fields are not overwritten)
  const at = deps.now().getTime();
  const fields: Record<string, string> = {
    id: jobId,
    workspaceId: ws,
    profileId,
    status: 'pending',
    requestedBy,
    createdAt: String(at),
    updatedAt: String(at),
    attempts: '0',
  };
  const m = deps.redis.multi();
  for (const [f, v] of Object.entries(fields)) m.hsetnx(k.erasure(jobId), f, v);
  m.zadd(k.erasures, 'NX', at, jobId);
  await m.exec();
  await deps.redis.zadd(
    globalKeys(deps.redisPrefix).erasuresDue,
    'NX',
    at + CREATOR_GRACE_MS,
    `${ws}/${jobId}`,
  );
  return (await readErasure(deps, ws, jobId))!;
}

/**
 * Runs the job's remaining steps, in order, until done, a failure (tried again later, with
 * backoff) or the sweep's time not yet come. Answers the job as it then is. When another
 * runner holds the job, answers it as it is without running.
 */
export async function runErasure(
  deps: ErasureJobDeps,
  ws: string,
  jobId: string,
): Promise<ErasureJob | undefined> {
  const k = workspaceKeys(deps.redisPrefix, ws);
  const key = k.erasure(jobId);
  const due = globalKeys(deps.redisPrefix).erasuresDue;
  const lock = `${key}:lock`;
  const owner = randomBytes(8).toString('hex');
  if ((await deps.redis.set(lock, owner, 'PX', LEASE_MS, 'NX')) !== 'OK') return readErasure(deps, ws, jobId);
  try {
    const h = await deps.redis.hgetall(key);
    if (!h.id) {
      await deps.redis.zrem(due, `${ws}/${jobId}`);
      return undefined;
    }
    if (h.status === 'done') {
      await deps.redis.zrem(due, `${ws}/${jobId}`);
      return toJob(h);
    }
    const counts = countsOf(h);
    let step: ErasureStep | undefined;
    try {
      for (step of ERASURE_STEPS) {
        if (h[`step:${step}`]) continue;
        const nowMs = deps.now().getTime();
        if (step === 'sweep') {
          const at = Number(h['step:redis']) + deps.sweepDelayMs;
          if (nowMs < at) {
            await deps.redis.hset(key, 'nextAttemptAt', String(at), 'updatedAt', String(nowMs));
            await deps.redis.zadd(due, at, `${ws}/${jobId}`);
            return toJob(await deps.redis.hgetall(key));
          }
        }
        let added: Record<string, number>;
        if (step === 'audit') {
          await recordAudit(
            deps.clickhouse,
            {
              workspaceId: ws,
              actor: h.requestedBy ?? 'unknown',
              action: 'erase',
              entityType: 'profile',
              entityId: h.profileId!,
              // what was erased is never repeated in the audit log: only how much
              before: counts,
              after: { job: jobId },
            },
            deps.now(),
          );
          added = {};
        } else {
          added = await runStep(deps, step, {
            workspaceId: ws,
            profileId: h.profileId!,
            jobId,
            nowMs,
            state: stateOf(h),
          });
        }
        const fields: string[] = [`step:${step}`, String(nowMs), 'updatedAt', String(nowMs)];
        for (const [name, n] of Object.entries(added)) {
          counts[name] = n;
          fields.push(`count:${name}`, String(n));
        }
        await deps.redis.hset(key, ...fields);
        if (step === 'redis') Object.assign(h, await deps.redis.hgetall(key));
        else h[`step:${step}`] = String(nowMs);
      }
    } catch (err) {
      const attempts = Number(h.attempts ?? 0) + 1;
      const nowMs = deps.now().getTime();
      const next = nowMs + backoffDelayMs(attempts - 1, 500);
      const message = `${step}: ${errorMessage(err).slice(0, 300)}`;
      await deps.redis.hset(
        key,
        'attempts',
        String(attempts),
        'lastError',
        message,
        'nextAttemptAt',
        String(next),
        'updatedAt',
        String(nowMs),
      );
      await deps.redis.zadd(due, next, `${ws}/${jobId}`);
      deps.log.warn({ workspaceId: ws, jobId, step, attempts, err: message }, 'erasure_step_failed');
      return toJob(await deps.redis.hgetall(key));
    }
    const nowMs = deps.now().getTime();
    // done: the identifiers the ClickHouse steps needed go too; counts stay
    await deps.redis
      .multi()
      .hset(key, 'status', 'done', 'finishedAt', String(nowMs), 'updatedAt', String(nowMs))
      .hdel(key, 'redisResult', 'nextAttemptAt', 'lastError')
      .exec();
    await deps.redis.zrem(due, `${ws}/${jobId}`);
    deps.log.info({ workspaceId: ws, jobId, counts }, 'erasure_done');
    return toJob(await deps.redis.hgetall(key));
  } finally {
    if ((await deps.redis.get(lock)) === owner) await deps.redis.del(lock);
  }
}

/** Runs due erasure jobs until stopped: what a DELETE left unfinished, after a restart too. */
export function startErasureWorker(deps: ErasureJobDeps & { intervalMs?: number }): {
  stop(): Promise<void>;
  tick(): Promise<number>;
} {
  const due = globalKeys(deps.redisPrefix).erasuresDue;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  const tick = async (): Promise<number> => {
    const members = await deps.redis.zrangebyscore(due, '-inf', deps.now().getTime(), 'LIMIT', 0, 20);
    let ran = 0;
    for (const m of members) {
      if (stopped) break;
      const sep = m.lastIndexOf('/');
      await runErasure(deps, m.slice(0, sep), m.slice(sep + 1));
      ran++;
    }
    return ran;
  };
  const loop = () => {
    running = tick()
      .catch((err) => deps.log.warn({ err: errorMessage(err) }, 'erasure_worker_failed'))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, deps.intervalMs ?? 1000);
      });
  };
  loop();
  return {
    tick,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}

function stateOf(h: Record<string, string>): ErasedState | undefined {
  return h.redisResult ? (JSON.parse(h.redisResult) as ErasedState) : undefined;
}

function countsOf(h: Record<string, string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [f, v] of Object.entries(h)) if (f.startsWith('count:')) counts[f.slice(6)] = Number(v);
  return counts;
}

const iso = (ms: string | undefined) => (ms ? new Date(Number(ms)).toISOString() : null);

function toJob(h: Record<string, string>): ErasureJob {
  return {
    id: h.id!,
    workspaceId: h.workspaceId!,
    profileId: h.profileId!,
    status: h.status === 'done' ? 'done' : 'pending',
    done: ERASURE_STEPS.filter((s) => h[`step:${s}`]),
    counts: countsOf(h),
    requestedBy: h.requestedBy ?? '',
    createdAt: iso(h.createdAt)!,
    updatedAt: iso(h.updatedAt)!,
    finishedAt: iso(h.finishedAt),
    attempts: Number(h.attempts ?? 0),
    lastError: h.lastError ?? null,
    nextAttemptAt: h.status === 'done' ? null : iso(h.nextAttemptAt),
  };
}
