// The form-consent worker (query/form-consent.ts) on the real Redis and chDB: consent queued
// by the ingest host is written once the submission's anonymousId has a profile (not
// before, and given up after the wait bound), each entry by one worker when several claim
// at once, one consent_log row per box with its own text, and nothing for an erased person.
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFormConsentWorker } from '../../query/form-consent.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import type { Config } from '../../runtime/config.ts';
import type { PendingFormConsent } from '../../schemas/form.ts';
import { migrate } from '../../schemas/migrations.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let redis: Redis;
let ch: ClickHouseClient;
let ws: string;

beforeAll(async () => {
  cfg = testConfig();
  ws = cfg.keys.workspace;
  redis = new Redis(cfg.redis.url);
  ch = await createClickHouse(cfg.clickhouse);
  await migrate(ch);
});
afterAll(async () => {
  redis?.disconnect();
  await ch?.close();
});

let clock = Date.now();
const worker = () =>
  startFormConsentWorker({
    redis: redis as never,
    clickhouse: ch,
    redisPrefix: cfg.redis.prefix,
    log: testLogger(cfg),
    now: () => new Date(clock),
    maxWaitMs: 60_000,
    retryMs: 100,
    // driven by tick() only
    intervalMs: 3_600_000,
  });
const due = () => globalKeys(cfg.redis.prefix).formConsentDue;

function pending(anonymousId: string, boxes = 1): PendingFormConsent {
  return {
    id: uniqueId('sub-'),
    workspaceId: ws,
    anonymousId,
    formId: 'frm_t',
    formVersion: 2,
    consents: Array.from({ length: boxes }, (_, i) => ({
      channel: i === 0 ? 'email' : 'sms',
      purpose: 'news',
      text: `box ${i} for ${anonymousId}`,
    })),
    at: clock,
    ip: '203.0.113.9',
    userAgent: 'UA/1',
  };
}
const queue = (p: PendingFormConsent) => redis.zadd(due(), clock, JSON.stringify(p));
const link = (anonymousId: string, pid: string) =>
  redis.set(workspaceKeys(cfg.redis.prefix, ws).identity('anon', anonymousId), pid);

async function logRows(pid: string) {
  const rs = await ch.query({
    query: `SELECT channel, purpose, subscribed, source, actor, ip, user_agent, text FROM consent_log
            WHERE workspace_id = {ws:String} AND profile_id = {pid:String} ORDER BY channel`,
    query_params: { ws, pid },
    format: 'JSONEachRow',
  });
  return rs.json<Record<string, unknown>>();
}

describe('form consent worker', () => {
  it('waits for the profile, then writes each box with its text; gives up past the wait bound', async () => {
    const w = worker();
    try {
      const anon = uniqueId('a-');
      const pid = uniqueId('p-');
      await queue(pending(anon, 2));
      expect(await w.tick()).toBe(0); // no profile yet: kept, tried again later
      expect(await redis.zcard(due())).toBe(1);
      await link(anon, pid);
      clock += 200;
      expect(await w.tick()).toBe(1);
      expect(await redis.zcard(due())).toBe(0);
      const consent = await redis.hgetall(workspaceKeys(cfg.redis.prefix, ws).consent(pid));
      expect(Object.keys(consent).sort()).toEqual(['email:news', 'sms:news']);
      expect(await logRows(pid)).toEqual([
        {
          channel: 'email',
          purpose: 'news',
          subscribed: 1,
          source: 'form:frm_t@2',
          actor: 'visitor',
          ip: '203.0.113.9',
          user_agent: 'UA/1',
          text: `box 0 for ${anon}`,
        },
        expect.objectContaining({ channel: 'sms', text: `box 1 for ${anon}` }),
      ]);

      // never resolved: dropped once older than the bound
      await queue(pending(uniqueId('never-')));
      clock += 200;
      expect(await w.tick()).toBe(0);
      expect(await redis.zcard(due())).toBe(1);
      clock += 61_000;
      expect(await w.tick()).toBe(0);
      expect(await redis.zcard(due())).toBe(0);
    } finally {
      await w.stop();
    }
  });

  it('workers claiming at once write each entry once; an erased person gets nothing', async () => {
    const workers = [worker(), worker(), worker()];
    try {
      const people = Array.from({ length: 60 }, () => ({ anon: uniqueId('c-'), pid: uniqueId('p-') }));
      for (const p of people) {
        await link(p.anon, p.pid);
        await queue(pending(p.anon));
      }
      // an erased person: the tombstone the erasure leaves
      const erased = { anon: uniqueId('e-'), pid: uniqueId('p-') };
      await link(erased.anon, erased.pid);
      await redis.zadd(
        workspaceKeys(cfg.redis.prefix, ws).erased,
        clock,
        createHash('sha1').update(`profile:${erased.pid}`).digest('hex'),
      );
      await queue(pending(erased.anon));
      clock += 10;
      let total = 0;
      while ((await redis.zcard(due())) > 0) {
        const counts = await Promise.all(workers.map((w) => w.tick()));
        total += counts.reduce((a, b) => a + b, 0);
      }
      expect(total).toBe(61);
      for (const p of people.slice(0, 5)) expect(await logRows(p.pid)).toHaveLength(1);
      const rs = await ch.query({
        query: `SELECT count() AS n, uniqExact(profile_id) AS people FROM consent_log
                WHERE workspace_id = {ws:String} AND startsWith(text, 'box 0 for c-')`,
        query_params: { ws },
        format: 'JSONEachRow',
      });
      expect(
        (await rs.json<{ n: unknown; people: unknown }>()).map((r) => [Number(r.n), Number(r.people)]),
      ).toEqual([[60, 60]]);
      expect(await logRows(erased.pid)).toEqual([]);
      expect(await redis.hlen(workspaceKeys(cfg.redis.prefix, ws).consent(erased.pid))).toBe(0);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  });
});
