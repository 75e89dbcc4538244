// The double opt-in mail worker (query/double-opt-in.ts) on the real Redis and chDB with a
// real SMTP server: several workers working the same jobs send one mail per pending grant,
// a grant requested again (a retried form entry) is the same record and mail, a mail the
// server refuses for now (451) is tried again and then sent once, and a claim left by a
// worker that died mid-send is taken over after its lease with the same Message-ID.
import { Redis } from 'ioredis';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDoubleOptIn } from '../../query/double-opt-in.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import type { Config } from '../../runtime/config.ts';
import { confirmOptIn, optInDueKey, optInJobMember, optInKey } from '../../schemas/double-opt-in.ts';
import { migrate } from '../../schemas/migrations.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let redis: Redis;
let ch: ClickHouseClient;
let ws: string;
const mails: Array<{ to: string; messageId: string }> = [];
/** Recipients whose next DATA is refused with a 451 (a transient failure). */
const refuseOnce = new Set<string>();
let smtp: SMTPServer;
let smtpUrl: string;

beforeAll(async () => {
  cfg = testConfig();
  ws = cfg.keys.workspace;
  redis = new Redis(cfg.redis.url);
  ch = await createClickHouse(cfg.clickhouse);
  await migrate(ch);
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      let raw = '';
      stream.on('data', (c: Buffer) => {
        raw += c.toString('utf8');
      });
      stream.on('end', () => {
        const to = session.envelope.rcptTo[0]?.address ?? '';
        if (refuseOnce.delete(to)) {
          const err = new Error('try again later') as Error & { responseCode: number };
          err.responseCode = 451;
          callback(err);
          return;
        }
        mails.push({ to, messageId: raw.match(/^Message-ID:\s*(\S+)/im)?.[1] ?? '' });
        callback();
      });
    },
  });
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
  const addr = smtp.server.address();
  smtpUrl = `smtp://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});
afterAll(async () => {
  redis?.disconnect();
  await ch?.close();
  await new Promise<void>((r) => smtp.close(() => r()));
});

let clock = Date.now();
const worker = () =>
  createDoubleOptIn({
    redis: redis as never,
    clickhouse: ch,
    redisPrefix: cfg.redis.prefix,
    log: testLogger(cfg),
    now: () => new Date(clock),
    secret: 'test-confirm-secret-0123456789',
    confirmBaseUrl: 'https://in.example.test',
    smtp: { url: smtpUrl, from: 'Shop <news@shop.test>', timeoutMs: 5000 },
    retryBaseMs: 10,
    leaseMs: 30_000,
  });
const settings = { purposes: ['news'] };

/** A profile with an email trait, as the processor leaves it. */
async function person(): Promise<{ pid: string; email: string }> {
  const pid = uniqueId('p-');
  const email = `${pid}@example.com`;
  const k = workspaceKeys(cfg.redis.prefix, ws);
  await redis.hset(k.profileTraits(pid), 'email', JSON.stringify(email));
  await redis.sadd(k.profileIdentities(pid), `email:${email}`);
  return { pid, email };
}
const grant = (id: string) => ({
  id,
  channel: 'email',
  purpose: 'news',
  text: 'Send me news',
  source: 'form:f@1',
  actor: 'visitor',
  at: clock,
});

async function drain(workers: Array<ReturnType<typeof worker>>) {
  for (let i = 0; i < 200 && (await redis.zcard(optInDueKey(cfg.redis.prefix))) > 0; i++) {
    await Promise.all(workers.map((w) => w.tick()));
    clock += 50;
  }
  expect(await redis.zcard(optInDueKey(cfg.redis.prefix))).toBe(0);
}

describe('double opt-in mails', () => {
  it('three workers at once send exactly one mail per pending grant, a repeated request included', async () => {
    const workers = [worker(), worker(), worker()];
    try {
      const people = await Promise.all(Array.from({ length: 40 }, () => person()));
      const before = mails.length;
      for (const p of people) {
        const r = await workers[0]!.request(ws, p.pid, grant(`g-${p.pid}`), settings);
        expect(r).toMatchObject({ status: 'pending', profileId: p.pid });
      }
      // the same grants again (a retried form entry): the same records, no second mail
      for (const p of people.slice(0, 10))
        await workers[1]!.request(ws, p.pid, grant(`g-${p.pid}`), settings);
      await drain(workers);
      // and once more after the mails went (a form entry retried late): still one mail each
      for (const p of people.slice(10, 20))
        await workers[2]!.request(ws, p.pid, grant(`g-${p.pid}`), settings);
      expect(await redis.zcard(optInDueKey(cfg.redis.prefix))).toBe(10);
      await drain(workers);
      const sent = mails.slice(before);
      expect(sent).toHaveLength(40);
      expect(new Set(sent.map((m) => m.to)).size).toBe(40);
      expect(sent.find((m) => m.to === people[0]!.email)?.messageId).toBe(`<optin.g-${people[0]!.pid}@cdp>`);
      // the pending decision is logged once per grant, with its record
      const rs = await ch.query({
        query: `SELECT count() AS n, uniqExact(ref) AS refs FROM consent_log
                WHERE workspace_id = {ws:String} AND status = 'pending' AND profile_id IN {pids:Array(String)}`,
        query_params: { ws, pids: people.map((p) => p.pid) },
        format: 'JSONEachRow',
      });
      const [row] = await rs.json<{ n: string | number; refs: string | number }>();
      expect([Number(row!.n), Number(row!.refs)]).toEqual([40, 40]);
      // a person already subscribed is not asked again
      const k = workspaceKeys(cfg.redis.prefix, ws);
      await redis.hset(k.consent(people[0]!.pid), 'email:news', `granted:${clock}:link`);
      expect(await workers[0]!.request(ws, people[0]!.pid, grant('g-again'), settings)).toEqual({
        status: 'subscribed',
        profileId: people[0]!.pid,
      });
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  });

  it('a 451 is tried again and sent once; a dead worker’s claim is taken over after its lease', async () => {
    const w = worker();
    try {
      const a = await person();
      refuseOnce.add(a.email);
      await w.request(ws, a.pid, grant(`g-${a.pid}`), settings);
      await drain([w]);
      expect(mails.filter((m) => m.to === a.email)).toHaveLength(1);
      expect(await redis.hget(optInKey(cfg.redis.prefix, ws, a.pid), `tries:g-${a.pid}`)).toBe('1');

      // a worker claimed the mail and died: nothing goes out until its lease ends, then once
      const b = await person();
      await w.request(ws, b.pid, grant(`g-${b.pid}`), settings);
      await redis.hset(optInKey(cfg.redis.prefix, ws, b.pid), `send:g-${b.pid}`, `claimed:${clock + 10_000}`);
      await w.tick();
      expect(mails.filter((m) => m.to === b.email)).toHaveLength(0);
      clock += 60_000;
      await drain([w]);
      const got = mails.filter((m) => m.to === b.email);
      expect(got).toHaveLength(1);
      expect(got[0]!.messageId).toBe(`<optin.g-${b.pid}@cdp>`);
    } finally {
      await w.stop();
    }
  });

  it('a confirmation after a merge lands on the surviving profile, logged there once', async () => {
    const w = worker();
    try {
      const a = await person();
      const b = await person();
      const r = await w.request(ws, a.pid, grant(`g-${a.pid}`), settings);
      expect(r.status).toBe('pending');
      await drain([w]);
      // a merged into b (as the processor's merge leaves it)
      const k = workspaceKeys(cfg.redis.prefix, ws);
      await redis.hset(k.profile(a.pid), 'mergedInto', b.pid);
      const claims = { w: ws, p: a.pid, r: `g-${a.pid}`, c: 'email', u: 'news', e: 0 };
      const [one, two] = await Promise.all([
        confirmOptIn(redis as never, cfg.redis.prefix, claims, clock, '198.51.100.7', 'UA/2'),
        confirmOptIn(redis as never, cfg.redis.prefix, claims, clock, '198.51.100.7', 'UA/2'),
      ]);
      expect([one.outcome, two.outcome].sort()).toEqual(['already', 'confirmed']);
      expect(await redis.hget(k.consent(b.pid), 'email:news')).toBe(`granted:${clock}:link`);
      // the ingest host queues the log job (twice here: the member is one job)
      const job = optInJobMember({ k: 'log', w: ws, p: a.pid, r: `g-${a.pid}` });
      await redis.zadd(optInDueKey(cfg.redis.prefix), clock, job);
      await redis.zadd(optInDueKey(cfg.redis.prefix), clock, job);
      const other = worker();
      await drain([w, other]);
      await other.stop();
      const rs = await ch.query({
        query: `SELECT profile_id, status, source, ip, user_agent, ref FROM consent_log
                WHERE workspace_id = {ws:String} AND source = 'link' AND ref = {ref:String}`,
        query_params: { ws, ref: `g-${a.pid}` },
        format: 'JSONEachRow',
      });
      expect(await rs.json()).toEqual([
        {
          profile_id: b.pid,
          status: 'subscribed',
          source: 'link',
          ip: '198.51.100.7',
          user_agent: 'UA/2',
          ref: `g-${a.pid}`,
        },
      ]);
    } finally {
      await w.stop();
    }
  });
});
