// Double opt-in in the query service (schemas/double-opt-in.ts has the model). `request`
// records a grant of a purpose the workspace wants confirmed as `pending` (Redis, then a
// consent_log row with the exact text shown) with its confirmation record, and queues the
// confirmation mail; a worker (every query process may run one) sends it and, once the
// person confirmed on the ingest host, appends the confirmation to consent_log.
//
// The mail goes once per pending grant: the job is claimed in the due set (one worker at a
// time, a lease), and the send itself is claimed in the record's hash (`send:<id>`:
// claimed with a lease → done), as activation claims its send keys. A worker killed
// mid-send leaves a claim that expires; the mail is then sent again with the same
// Message-ID (`<optin.<id>@cdp>`), so the receiving side can tell it is the same message.
import { randomUUID } from 'node:crypto';
import nodemailer from 'nodemailer';
import { survivorOf } from '../profiles/read.ts';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import { errorMessage } from '../runtime/errors.ts';
import { withTimeout } from '../runtime/http.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import { logConsent, storeConsent } from '../schemas/consent-log.ts';
import { consentField, suppressionMember } from '../schemas/contact.ts';
import {
  DEFAULT_TEMPLATE,
  DEFAULT_TTL_HOURS,
  type DoubleOptInSettings,
  doubleOptInCheck,
  type OptInJob,
  type OptInRecord,
  optInDueKey,
  optInJobMember,
  optInKey,
  signConfirmToken,
} from '../schemas/double-opt-in.ts';
import { renderBudget } from '../schemas/liquid-template.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { recordAudit } from './audit.ts';
import { readConsent } from './routes/contact.ts';

const CLAIM = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], m) end
return due`;

// the mail's own claim, in the record's hash: done → nothing to do; a live claim → busy
const CLAIM_SEND = `
local v = redis.call('HGET', KEYS[1], 'send:' .. ARGV[1])
if v then
  if string.sub(v, 1, 5) == 'done:' or string.sub(v, 1, 7) == 'failed:' then return 'done' end
  if tonumber(string.sub(v, 9)) > tonumber(ARGV[2]) then return 'busy' end
end
if not redis.call('HGET', KEYS[1], ARGV[1]) then return 'gone' end
redis.call('HSET', KEYS[1], 'send:' .. ARGV[1], 'claimed:' .. (tonumber(ARGV[2]) + tonumber(ARGV[3])))
return 'ok'`;

/** A record (or its tries and marks) is kept this long past its link's expiry. */
const KEEP_AFTER_EXPIRY_MS = 7 * 86_400_000;
const EMAIL = /^[^\s@]+@[^\s@]+$/;

export interface OptInDeps {
  redis: Redis;
  clickhouse: ClickHouseClient;
  redisPrefix: string;
  log: Logger;
  now: () => Date;
  /** Signs the links (confirmSecret of CDP_UNSUBSCRIBE_SECRET). */
  secret: string;
  /** The public ingest host the links point at (CDP_INGEST_PUBLIC_URL). */
  confirmBaseUrl: string;
  smtp: { url?: string; from: string; timeoutMs: number };
  maxAttempts?: number;
  retryBaseMs?: number;
  leaseMs?: number;
  intervalMs?: number;
}

export interface OptInGrant {
  /** Deterministic per grant (a form submission's box), so a retried request is one record. */
  id?: string;
  channel: string;
  purpose: string;
  text: string;
  source: string;
  actor: string;
  at: number;
  ip?: string;
  userAgent?: string;
}

export type OptInResult =
  | { status: 'pending'; recordId: string; profileId: string; expiresAt: string }
  | { status: 'subscribed'; profileId: string }
  | { status: 'erased' };

/** The workspace's double opt-in setting, or undefined when none is set (or it is unreadable). */
export async function readDoubleOptIn(
  redis: Redis,
  prefix: string,
  ws: string,
): Promise<DoubleOptInSettings | undefined> {
  const raw = await redis.hget(workspaceKeys(prefix, ws).settings, 'doubleOptIn');
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as unknown;
    return doubleOptInCheck.Check(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export function createDoubleOptIn(deps: OptInDeps) {
  const due = optInDueKey(deps.redisPrefix);
  const leaseMs = deps.leaseMs ?? 60_000;
  const maxAttempts = deps.maxAttempts ?? 8;
  const retryBaseMs = deps.retryBaseMs ?? 5_000;
  const transport = deps.smtp.url
    ? nodemailer.createTransport(deps.smtp.url, {
        pool: true,
        maxConnections: 2,
        connectionTimeout: deps.smtp.timeoutMs,
        greetingTimeout: deps.smtp.timeoutMs,
        socketTimeout: deps.smtp.timeoutMs,
      } as never)
    : undefined;

  const queue = (job: OptInJob, atMs: number) => deps.redis.zadd(due, atMs, optInJobMember(job));

  /**
   * Records a grant that needs confirming as pending and queues its mail. A person already
   * subscribed to it (confirmed before, or granted by the API) stays subscribed: no record,
   * no mail. Idempotent per `grant.id`.
   */
  async function request(
    ws: string,
    profileId: string,
    grant: OptInGrant,
    settings: DoubleOptInSettings,
  ): Promise<OptInResult> {
    const k = workspaceKeys(deps.redisPrefix, ws);
    const pid = await survivorOf(deps.redis, k, profileId);
    const current = await deps.redis.hget(k.consent(pid), consentField(grant.channel, grant.purpose));
    if (current?.startsWith('granted:')) return { status: 'subscribed', profileId: pid };
    const decision = [{ channel: grant.channel, purpose: grant.purpose, subscribed: true, pending: true }];
    // `newer`: a decision taken after this grant (a confirmation, a withdrawal) is kept
    const person = await storeConsent(
      deps.redis,
      deps.redisPrefix,
      ws,
      pid,
      decision,
      grant.at,
      grant.source,
      'newer',
    );
    if (!person) return { status: 'erased' };
    const id = grant.id ?? randomUUID();
    const ttlMs = (settings.ttlHours ?? DEFAULT_TTL_HOURS) * 3_600_000;
    const record: OptInRecord = {
      id,
      workspaceId: ws,
      profileId: person.profileId,
      channel: grant.channel,
      purpose: grant.purpose,
      text: grant.text,
      source: grant.source,
      at: grant.at,
      ip: grant.ip,
      userAgent: grant.userAgent,
      expiresAt: deps.now().getTime() + ttlMs,
    };
    const key = optInKey(deps.redisPrefix, ws, person.profileId);
    const created = await deps.redis.hsetnx(key, id, JSON.stringify(record));
    const kept = created
      ? record
      : (JSON.parse((await deps.redis.hget(key, id)) ?? JSON.stringify(record)) as OptInRecord);
    const keepMs = Number(kept.expiresAt) - deps.now().getTime() + KEEP_AFTER_EXPIRY_MS;
    if ((await deps.redis.pttl(key)) < keepMs) await deps.redis.pexpire(key, keepMs);
    if (!(await deps.redis.hexists(key, `pendinglog:${id}`))) {
      await logConsent(deps.clickhouse, ws, person, decision, grant.at, {
        source: grant.source,
        actor: grant.actor,
        ip: grant.ip,
        userAgent: grant.userAgent,
        text: grant.text,
        ref: id,
      });
      await deps.redis.hset(key, `pendinglog:${id}`, '1');
    }
    await queue({ k: 'send', w: ws, p: person.profileId, r: id }, deps.now().getTime());
    return {
      status: 'pending',
      recordId: id,
      profileId: person.profileId,
      expiresAt: new Date(Number(kept.expiresAt)).toISOString(),
    };
  }

  const confirmUrl = (rec: OptInRecord) =>
    `${deps.confirmBaseUrl.replace(/\/$/, '')}/v1/consent/confirm?t=${signConfirmToken(deps.secret, {
      w: rec.workspaceId,
      p: rec.profileId,
      r: rec.id,
      c: rec.channel,
      u: rec.purpose,
      e: Math.floor(Number(rec.expiresAt) / 1000),
    })}`;

  type Outcome = 'done' | 'retry' | 'busy';

  async function send(job: OptInJob): Promise<Outcome> {
    const key = optInKey(deps.redisPrefix, job.w, job.p);
    const raw = await deps.redis.hget(key, job.r);
    if (!raw) return 'done'; // erased, or expired long ago
    const rec = JSON.parse(raw) as OptInRecord;
    if (rec.confirmedAt) return 'done';
    const now = deps.now().getTime();
    if (now > Number(rec.expiresAt)) return 'done';
    const claim = (await deps.redis.eval(CLAIM_SEND, 1, key, job.r, now, leaseMs)) as string;
    if (claim === 'done' || claim === 'gone') return 'done';
    if (claim === 'busy') return 'busy';
    const fail = async (why: string) => {
      deps.log.warn({ workspaceId: job.w, record: job.r, why }, 'optin_mail_not_sent');
      await deps.redis.hset(key, `send:${job.r}`, `failed:${why}`);
      return 'done' as const;
    };
    const k = workspaceKeys(deps.redisPrefix, job.w);
    const pid = await survivorOf(deps.redis, k, rec.profileId);
    const traits: Record<string, unknown> = {};
    for (const [t, v] of Object.entries(await deps.redis.hgetall(k.profileTraits(pid)))) {
      if (t === '__proto__') continue;
      try {
        traits[t] = JSON.parse(v);
      } catch {
        traits[t] = v;
      }
    }
    const to = typeof traits.email === 'string' ? traits.email.trim() : '';
    if (!EMAIL.test(to)) return fail('no_address');
    if (await deps.redis.sismember(k.suppressions, suppressionMember('email', to)))
      return fail('suppression_list');
    if (!transport) return fail('SMTP_URL is not set');
    const settings = (await readDoubleOptIn(deps.redis, deps.redisPrefix, job.w)) ?? { purposes: [] };
    const tpl: { subject: string; text: string; html?: string } = settings.template ?? DEFAULT_TEMPLATE;
    const url = confirmUrl(rec);
    const scope = {
      confirm_url: url,
      purpose: rec.purpose,
      channel: rec.channel,
      consent_text: rec.text,
      expires_at: new Date(Number(rec.expiresAt)).toISOString(),
      traits,
    };
    let subject: string;
    let text: string;
    let html: string | undefined;
    // the mail's fields share one render budget, as a campaign message's do
    const budget = renderBudget();
    try {
      subject = (await budget.render('subject', tpl.subject, scope)).replace(/[\r\n]+/g, ' ');
      text = await budget.render('text', tpl.text, scope);
      if (!text.includes(url)) text = `${text}\n\nConfirm: ${url}\n`;
      html = tpl.html ? await budget.render('html', tpl.html, scope, 'html') : undefined;
    } catch (err) {
      return fail(`template: ${errorMessage(err)}`);
    }
    try {
      await withTimeout(
        transport.sendMail({
          from: settings.from ?? deps.smtp.from,
          to,
          subject,
          text,
          html,
          messageId: `<optin.${rec.id}@cdp>`,
          headers: { 'X-CDP-Opt-In': rec.id, 'Auto-Submitted': 'auto-generated' },
        }),
        deps.smtp.timeoutMs,
        'SMTP send',
      );
      await deps.redis.hset(key, `send:${job.r}`, `done:${deps.now().getTime()}`);
      return 'done';
    } catch (err) {
      const e = err as Error & { responseCode?: number };
      const code = e.responseCode ?? 0;
      const tries = await deps.redis.hincrby(key, `tries:${job.r}`, 1);
      // 5xx replies are permanent (bad mailbox, policy); no reply and 4xx are tried again
      if ((code >= 500 && code < 600) || tries >= maxAttempts) return fail(`smtp ${code}: ${e.message}`);
      await deps.redis.hdel(key, `send:${job.r}`);
      deps.log.warn({ workspaceId: job.w, record: job.r, err: e.message, tries }, 'optin_mail_retry');
      return 'retry';
    }
  }

  async function logConfirmation(job: OptInJob): Promise<Outcome> {
    const key = optInKey(deps.redisPrefix, job.w, job.p);
    const raw = await deps.redis.hget(key, job.r);
    if (!raw) return 'done';
    const rec = JSON.parse(raw) as OptInRecord;
    if (!rec.confirmedAt || (await deps.redis.hexists(key, `logged:${job.r}`))) return 'done';
    const k = workspaceKeys(deps.redisPrefix, job.w);
    const pid = await survivorOf(deps.redis, k, rec.confirmedOn ?? rec.profileId);
    const identifiers = await deps.redis.smembers(k.profileIdentities(pid));
    const at = Number(rec.confirmedAt);
    await logConsent(
      deps.clickhouse,
      job.w,
      { profileId: pid, identifiers },
      [{ channel: rec.channel, purpose: rec.purpose, subscribed: true }],
      at,
      {
        source: 'link',
        actor: 'confirm_link',
        ip: rec.confirmIp,
        userAgent: rec.confirmUserAgent,
        text: rec.text,
        ref: rec.id,
      },
    );
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: job.w,
        actor: 'confirm_link',
        action: 'update',
        entityType: 'consent',
        entityId: pid,
        before: { channel: rec.channel, purpose: rec.purpose, status: 'pending', source: rec.source },
        after: await readConsent(deps.redis, deps.redisPrefix, job.w, pid),
      },
      new Date(at),
    );
    await deps.redis.hset(key, `logged:${job.r}`, '1');
    return 'done';
  }

  /** Works on the jobs due now; answers how many it finished. */
  async function tick(): Promise<number> {
    const now = deps.now().getTime();
    const claimed = (await deps.redis.eval(CLAIM, 1, due, now, now + leaseMs, 50)) as string[];
    let finished = 0;
    for (const member of claimed) {
      if (stopped) break;
      let job: OptInJob;
      try {
        job = JSON.parse(member) as OptInJob;
      } catch {
        await deps.redis.zrem(due, member);
        continue;
      }
      let out: Outcome;
      try {
        out = job.k === 'send' ? await send(job) : job.k === 'log' ? await logConfirmation(job) : 'done';
      } catch (err) {
        deps.log.warn({ err: errorMessage(err), job: job.k }, 'optin_job_failed');
        out = 'retry';
      }
      if (out === 'done') {
        await deps.redis.zrem(due, member);
        finished++;
      } else if (out === 'retry') {
        const tries = Number(
          (await deps.redis.hget(optInKey(deps.redisPrefix, job.w, job.p), `tries:${job.r}`)) ?? 1,
        );
        const wait = Math.min(retryBaseMs * 2 ** Math.max(0, tries - 1), 3_600_000);
        await deps.redis.zadd(due, 'XX', now + wait * (0.5 + Math.random() / 2), member);
      }
      // busy: another worker holds the mail's claim; its lease brings the job back
    }
    return finished;
  }

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  return {
    request,
    tick,
    confirmUrl,
    start() {
      const loop = () => {
        running = tick()
          .catch((err) => deps.log.warn({ err: errorMessage(err) }, 'optin_worker_failed'))
          .finally(() => {
            if (!stopped) timer = setTimeout(loop, deps.intervalMs ?? 250);
          });
      };
      loop();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
      transport?.close();
    },
  };
}

export type DoubleOptIn = ReturnType<typeof createDoubleOptIn>;
