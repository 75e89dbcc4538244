// Consent ticked on a form, recorded once the submission's anonymousId has a profile: the
// ingest host queues it (globalKeys.formConsentDue, scored by when to try) right after it
// produced the submission's events, and the processor creates the profile from them. This
// worker writes it as the consent API does (Redis on the surviving profile, then ClickHouse
// consent_log with source `form:<id>@<version>`, time, address, user agent and the exact
// text shown). It looks the person up by the submission's anonymousId, never by the email
// typed: the identity rules of client keys decide whose profile that is, so typing someone's
// email does not reach their profile. Whoever knows a person's userId can still tie an
// anonymousId to her with a client key first; double opt-in (README) is the defence there.
//
// Several query instances may run it: a batch is claimed in one script (its scores moved to
// a lease), so each entry is handled by one worker; a worker that dies leaves its claims
// to come due again after the lease (at-least-once: the log may then hold a decision twice).
import { createHash } from 'node:crypto';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import { errorMessage } from '../runtime/errors.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import { formConsentSource, type PendingFormConsent } from '../schemas/form.ts';
import { globalKeys, workspaceKeys } from '../schemas/redis-keys.ts';
import { type DoubleOptIn, readDoubleOptIn } from './double-opt-in.ts';
import { writeConsent } from './routes/contact.ts';

const CLAIM = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], m) end
return due`;

export interface FormConsentDeps {
  redis: Redis;
  clickhouse: ClickHouseClient;
  redisPrefix: string;
  log: Logger;
  now: () => Date;
  /** How long a submission may wait for its profile before it is given up (default 1 hour). */
  maxWaitMs?: number;
  retryMs?: number;
  leaseMs?: number;
  intervalMs?: number;
  /** Double opt-in: boxes of a purpose the workspace wants confirmed are recorded pending. */
  optIn?: DoubleOptIn;
}

export function startFormConsentWorker(deps: FormConsentDeps): {
  stop(): Promise<void>;
  tick(): Promise<number>;
} {
  const key = globalKeys(deps.redisPrefix).formConsentDue;
  const maxWaitMs = deps.maxWaitMs ?? 3_600_000;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();

  const tick = async (): Promise<number> => {
    const now = deps.now().getTime();
    const claimed = (await deps.redis.eval(
      CLAIM,
      1,
      key,
      now,
      now + (deps.leaseMs ?? 60_000),
      50,
    )) as string[];
    let written = 0;
    for (const member of claimed) {
      if (stopped) break;
      let p: PendingFormConsent;
      try {
        p = JSON.parse(member) as PendingFormConsent;
      } catch {
        await deps.redis.zrem(key, member);
        continue;
      }
      const pid = await deps.redis.get(
        workspaceKeys(deps.redisPrefix, p.workspaceId).identity('anon', p.anonymousId),
      );
      if (!pid) {
        if (now - p.at > maxWaitMs) {
          deps.log.warn({ workspaceId: p.workspaceId, formId: p.formId }, 'form_consent_no_profile');
          await deps.redis.zrem(key, member);
        } else await deps.redis.zadd(key, 'XX', now + (deps.retryMs ?? 500), member);
        continue;
      }
      // one write per box, so each decision keeps the exact text shown beside it; a null
      // answer: the person was erased meanwhile, nothing is kept. A box of a purpose the
      // workspace wants confirmed is recorded pending and a confirmation mail queued, once
      // per box of the submission (the record id derives from both).
      const doi = deps.optIn ? await readDoubleOptIn(deps.redis, deps.redisPrefix, p.workspaceId) : undefined;
      for (const c of p.consents) {
        if (doi && deps.optIn && doi.purposes.includes(c.purpose)) {
          await deps.optIn.request(
            p.workspaceId,
            pid,
            {
              id: createHash('sha256')
                .update(`${p.id}\n${c.channel}\n${c.purpose}`)
                .digest('base64url')
                .slice(0, 24),
              channel: c.channel,
              purpose: c.purpose,
              text: c.text,
              source: formConsentSource(p.formId, p.formVersion),
              actor: 'visitor',
              at: p.at,
              ip: p.ip,
              userAgent: p.userAgent,
            },
            doi,
          );
          continue;
        }
        await writeConsent(
          { redis: deps.redis, clickhouse: deps.clickhouse, redisPrefix: deps.redisPrefix },
          p.workspaceId,
          pid,
          [{ channel: c.channel, purpose: c.purpose, subscribed: true }],
          p.at,
          {
            source: formConsentSource(p.formId, p.formVersion),
            actor: 'visitor',
            ip: p.ip,
            userAgent: p.userAgent,
            text: c.text,
          },
        );
      }
      await deps.redis.zrem(key, member);
      written++;
    }
    return written;
  };

  const loop = () => {
    running = tick()
      .catch((err) => deps.log.warn({ err: errorMessage(err) }, 'form_consent_worker_failed'))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, deps.intervalMs ?? 250);
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
