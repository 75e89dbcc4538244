// SMS keyword decisions (STOP / START replies taken by the ingest host, ingest/sms-webhooks.ts)
// written to ClickHouse consent_log, which only the query service holds: one row per reply,
// channel `sms`, every purpose, source `sms_keyword`, actor `recipient`, the message text as
// received and its MessageSid as `ref`. The person is named by the number (`phone:<n>` in
// identifiers; no profile id: a phone is a trait, not an identity, and the decision is about
// the number, kept as the workspace's `phone:` suppression).
//
// Several query instances may run it: a batch is claimed in one script (scores moved to a
// lease), so each entry is written by one worker; a worker that dies leaves its claims to come
// due again after the lease (at-least-once: the log may then hold a reply twice, same ref).
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import { errorMessage } from '../runtime/errors.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import { logConsent } from '../schemas/consent-log.ts';
import { SMS_KEYWORD_SOURCE, type SmsConsentJob, smsConsentDueKey } from '../schemas/sms-consent.ts';

const CLAIM = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], m) end
return due`;

export interface SmsConsentLogDeps {
  redis: Redis;
  clickhouse: ClickHouseClient;
  redisPrefix: string;
  log: Logger;
  now: () => Date;
  leaseMs?: number;
  intervalMs?: number;
}

export function startSmsConsentLogWorker(deps: SmsConsentLogDeps): {
  stop(): Promise<void>;
  tick(): Promise<number>;
} {
  const key = smsConsentDueKey(deps.redisPrefix);
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
      100,
    )) as string[];
    let written = 0;
    for (const member of claimed) {
      if (stopped) break;
      let j: SmsConsentJob;
      try {
        j = JSON.parse(member) as SmsConsentJob;
      } catch {
        await deps.redis.zrem(key, member);
        continue;
      }
      await logConsent(
        deps.clickhouse,
        j.workspaceId,
        { profileId: '', identifiers: [`phone:${j.phone}`] },
        [{ channel: 'sms', purpose: '*', subscribed: j.subscribed }],
        j.at,
        { source: SMS_KEYWORD_SOURCE, actor: 'recipient', text: j.text, ref: j.messageSid },
      );
      await deps.redis.zrem(key, member);
      written++;
    }
    return written;
  };

  const loop = () => {
    running = tick()
      .catch((err) => deps.log.warn({ err: errorMessage(err) }, 'sms_consent_log_failed'))
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
