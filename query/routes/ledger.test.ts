// GET /v1/ledger, /v1/ledger/journey-steps and /v1/audit against real Redis and chDB: filters,
// keyset paging through more rows than a page (no repeats, no gaps, even with rows inserted
// between pages), CSV with formula-safe cells, cursors that were tampered with, ranges over
// the limit, and another workspace's rows never shown.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createLogger } from '../../runtime/log.ts';
import { migrate } from '../../schemas/migrations.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { ledgerRow } from '../../test/fixtures.ts';
import { uniqueId } from '../../test/harness.ts';
import { createQueryApp } from '../app.ts';

const prefix = uniqueId('lg');
const ws = uniqueId('ws_');
const other = uniqueId('ws_other_');
let redis: Redis;
let ch: ClickHouseClient;
let app: ReturnType<typeof createQueryApp>;
const NOW = Date.parse('2026-04-10T00:00:00Z');
const T = Date.parse('2026-04-01T12:00:00Z');

interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
type Send = { at: string; sendKey: string; profileId: string; outcome: string; reason: string | null };

const get = async (path: string, key = 'admin-1', headers: Record<string, string> = {}) =>
  app.request(path, { headers: { authorization: `Bearer ${key}`, ...headers } });
const json = async <T>(path: string, key?: string) => {
  const res = await get(path, key);
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as T;
};

async function all<T>(
  path: string,
  key?: string,
  start: string | null = null,
): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let cursor: string | null = start;
  let pages = 0;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const p: Page<T> = await json<Page<T>>(
      cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path,
      key,
    );
    items.push(...p.items);
    cursor = p.nextCursor;
    pages++;
  } while (cursor && pages < 100);
  return { items, pages };
}

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  ch = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-ledger-api-')) });
  await migrate(ch);
  app = createQueryApp({
    redis,
    clickhouse: ch,
    defs: new DefinitionStore(redis, prefix),
    writeKeys: {} as never,
    redisPrefix: prefix,
    resolveAdminKey: (k) => (k === 'admin-1' ? ws : k === 'admin-2' ? other : undefined),
    unsubscribeSecret: 'unused-in-this-suite',
    log: createLogger({ level: 'silent', name: 'test' }),
    analytics: { maxRangeDays: 90, timeoutS: 30, maxRows: 10_000 },
    now: () => new Date(NOW),
  });
  // 25 decisions in ws: 5 share one millisecond (the tiebreak must order them), one written
  // twice (a redelivered batch: shown once); 3 in the other workspace
  const rows = Array.from({ length: 25 }, (_, i) =>
    ledgerRow({
      workspace_id: ws,
      at: i < 5 ? T : T + i * 1000,
      send_key: `k${i}`,
      campaign_id: i % 2 === 0 ? 'c_even' : 'c_odd',
      profile_id: `p${i % 3}`,
      outcome: i % 5 === 0 ? 'suppressed' : 'sent',
      reason: i % 5 === 0 ? (i === 10 ? '=HYPERLINK("x")' : 'frequency_cap') : '',
    }),
  );
  await ch.insert({ table: 'activation_ledger', format: 'JSONEachRow', values: [...rows, rows[7]!] });
  await ch.insert({
    table: 'activation_ledger',
    format: 'JSONEachRow',
    values: [0, 1, 2].map((i) =>
      ledgerRow({
        workspace_id: other,
        at: T + i,
        send_key: `x${i}`,
        campaign_id: 'c_even',
        profile_id: 'p0',
      }),
    ),
  });
  await ch.insert({
    table: 'journey_steps',
    format: 'JSONEachRow',
    values: [
      {
        workspace_id: ws,
        at: T,
        journey_id: 'j1',
        version: 1,
        profile_id: 'p1',
        run: 1,
        node_id: 'a',
        step: 'entered',
        detail: '',
        message_id: 'm1',
      },
      {
        workspace_id: ws,
        at: T + 1,
        journey_id: 'j1',
        version: 1,
        profile_id: 'p1',
        run: 1,
        node_id: 'b',
        step: 'send',
        detail: '{"campaignId":"j1@1.b"}',
        message_id: '',
      },
      {
        workspace_id: other,
        at: T,
        journey_id: 'j1',
        version: 1,
        profile_id: 'p9',
        run: 1,
        node_id: 'a',
        step: 'entered',
        detail: '',
        message_id: 'm9',
      },
    ],
  });
  // userId u-one is profile p1 now, and p0 was merged into it
  const k = workspaceKeys(prefix, ws);
  await redis.set(k.identity('user', 'u-one'), 'p1');
  await redis.hset(k.profile('p1'), { id: 'p1', firstSeenAt: String(T), lastSeenAt: String(T) });
  await redis.hset(k.profile('p0'), { id: 'p0', mergedInto: 'p1' });
  await redis.sadd(`${k.profile('p1')}:merged`, 'p0');
});

afterAll(async () => {
  await redis?.quit();
  await ch?.close();
});

describe('GET /v1/ledger', () => {
  it('pages newest first through every decision once, with a cursor that is stable under inserts', async () => {
    const first = await json<Page<Send>>('/v1/ledger?limit=7');
    expect(first.items).toHaveLength(7);
    expect(first.items[0]).toMatchObject({
      sendKey: 'k24',
      campaignId: 'c_even',
      outcome: 'sent',
      attempt: 1,
    });
    // a newer row and an older-than-the-first-page row arrive between pages: the newer is
    // not on later pages (it sorts before the cursor), the rest go on as if nothing happened
    await ch.insert({
      table: 'activation_ledger',
      format: 'JSONEachRow',
      values: [ledgerRow({ workspace_id: ws, at: T + 100_000, send_key: 'late-new' })],
    });
    const rest = await all<Send>('/v1/ledger?limit=7', undefined, first.nextCursor);
    const keys = [...first.items, ...rest.items].map((r) => r.sendKey);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.sort()).toEqual(Array.from({ length: 25 }, (_, i) => `k${i}`).sort());
    expect(rest.pages).toBe(3);
    const times = [...first.items, ...rest.items].map((r) => r.at);
    expect([...times].sort().reverse()).toEqual(times);
    // and a fresh listing sees the new row first
    expect((await json<Page<Send>>('/v1/ledger?limit=1')).items[0]!.sendKey).toBe('late-new');
  });

  it('filters by campaign, journey, outcome, reason, profile and userId (with merged ids), and time', async () => {
    const odd = await all<Send & { campaignId: string }>('/v1/ledger?campaignId=c_odd&limit=5');
    expect(odd.items).toHaveLength(12);
    expect(odd.items.every((r) => r.campaignId === 'c_odd')).toBe(true);
    const capped = await all<Send>('/v1/ledger?outcome=suppressed&reason=frequency_cap');
    expect(capped.items.map((r) => r.sendKey).sort()).toEqual(['k0', 'k15', 'k20', 'k5']);
    const p2 = await all<Send>('/v1/ledger?profileId=p2&campaignId=c_even');
    expect(p2.items.map((r) => r.sendKey).sort()).toEqual(['k14', 'k2', 'k20', 'k8']);
    const user = await all<Send>('/v1/ledger?userId=u-one');
    expect(new Set(user.items.map((r) => r.profileId))).toEqual(new Set(['p0', 'p1']));
    expect((await all<Send>('/v1/ledger?userId=nobody')).items).toEqual([]);
    const window = await all<Send>(
      `/v1/ledger?from=${new Date(T + 20_000).toISOString()}&to=${new Date(T + 23_000).toISOString()}`,
    );
    expect(window.items.map((r) => r.sendKey)).toEqual(['k22', 'k21', 'k20']);
    expect((await all<Send>('/v1/ledger?journeyId=c')).items).toEqual([]);
  });

  it('CSV streams every matching row, RFC 4180 quoted, formulas defused', async () => {
    const res = await get('/v1/ledger?outcome=suppressed', 'admin-1', { accept: 'text/csv' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    const text = await res.text();
    const lines = text.split('\r\n');
    expect(lines[0]).toBe(
      'at,campaign_id,campaign_version,profile_id,channel,outcome,reason,attempt,status_code,latency_ms,segment_id,send_key,provider_id',
    );
    expect(lines).toHaveLength(1 + 5 + 1);
    expect(text).toContain(`,"'=HYPERLINK(""x"")",`);
    const viaQuery = await (await get('/v1/ledger?outcome=suppressed&format=csv')).text();
    expect(viaQuery).toBe(text);
  });

  it('refuses a malformed, altered or foreign cursor, a bad limit and a range over the limit', async () => {
    const first = await json<Page<Send>>('/v1/ledger?limit=2');
    const cursor = first.nextCursor!;
    const decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as [number, string, string];
    const altered = Buffer.from(JSON.stringify([decoded[0] - 1, decoded[1], decoded[2]])).toString(
      'base64url',
    );
    for (const bad of ['!!', 'abc', altered, cursor.slice(0, -3), 'x'.repeat(500)]) {
      const res = await get(`/v1/ledger?cursor=${encodeURIComponent(bad)}`);
      expect(res.status, bad).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/^cursor:/);
    }
    // a cursor made for other filters is refused, not applied to these
    expect((await get(`/v1/ledger?outcome=sent&cursor=${cursor}`)).status).toBe(400);
    expect((await get(`/v1/ledger?cursor=${cursor}`)).status).toBe(200);
    expect((await get('/v1/ledger?limit=0')).status).toBe(400);
    expect((await get('/v1/ledger?limit=1001')).status).toBe(400);
    const long = await get('/v1/ledger?from=2025-01-01T00:00:00Z&to=2026-04-01T00:00:00Z');
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: string }).error).toMatch(/CDP_ANALYTICS_MAX_RANGE_DAYS/);
    expect((await get('/v1/ledger?from=yesterday')).status).toBe(400);
    expect((await get('/v1/ledger?from=2026-04-02T00:00:00Z&to=2026-04-01T00:00:00Z')).status).toBe(400);
    expect((await get('/v1/ledger?format=xml')).status).toBe(400);
  });

  it("never shows another workspace's rows, whatever the filters or cursor", async () => {
    const mine = await all<Send>('/v1/ledger?campaignId=c_even&profileId=p0');
    expect(mine.items.every((r) => r.sendKey.startsWith('k'))).toBe(true);
    const theirs = await all<Send>('/v1/ledger', 'admin-2');
    expect(theirs.items.map((r) => r.sendKey).sort()).toEqual(['x0', 'x1', 'x2']);
    // a cursor from one workspace is refused in the other
    const c = (await json<Page<Send>>('/v1/ledger?limit=1')).nextCursor!;
    expect((await get(`/v1/ledger?limit=1&cursor=${c}`, 'admin-2')).status).toBe(400);
    const steps = await all<{ profileId: string }>('/v1/ledger/journey-steps', 'admin-2');
    expect(steps.items.map((s) => s.profileId)).toEqual(['p9']);
    expect((await get('/v1/ledger')).status).toBe(200);
    expect((await get('/v1/ledger', 'nope')).status).toBe(401);
  });
});

describe('GET /v1/ledger/journey-steps', () => {
  it('lists a journey run step by step, filtered, newest first, and as CSV', async () => {
    const steps = await all<{ step: string; nodeId: string; detail: string }>(
      '/v1/ledger/journey-steps?journeyId=j1&userId=u-one&limit=1',
    );
    expect(steps.pages).toBe(2);
    expect(steps.items.map((s) => s.step)).toEqual(['send', 'entered']);
    expect((await all<{ step: string }>('/v1/ledger/journey-steps?step=entered')).items).toHaveLength(1);
    const csv = await (await get('/v1/ledger/journey-steps?format=csv')).text();
    expect(csv.split('\r\n')[1]).toMatch(/,j1,1,p1,1,b,send,"\{""campaignId"":""j1@1\.b""\}"$/);
  });
});

describe('GET /v1/audit', () => {
  it('lists configuration changes with who, what, when and before/after, secrets redacted', async () => {
    const headers = { authorization: 'Bearer admin-1', 'content-type': 'application/json' };
    const created = await app.request('/v1/segments', {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'Pros', rule: { '==': [{ var: 'traits.plan' }, 'pro'] } }),
    });
    expect(created.status).toBe(201);
    const segId = ((await created.json()) as { id: string }).id;
    const camp = await app.request('/v1/campaigns', {
      method: 'POST',
      headers,
      body: JSON.stringify({
        name: 'Hook',
        segmentId: segId,
        on: 'enter',
        channel: 'webhook',
        webhook: { url: 'http://127.0.0.1:9/hook' },
      }),
    });
    expect(camp.status, await camp.clone().text()).toBe(201);
    const secret = ((await camp.json()) as { webhook: { secret: string } }).webhook.secret;
    // the audit is written at the app's clock (NOW): the default range, the last 30 days, holds it
    const range = 'to=2026-04-11T00:00:00Z';
    type Entry = {
      at: string;
      actor: string;
      action: string;
      entityType: string;
      entityId: string;
      before: unknown;
      after: Record<string, unknown> | null;
    };
    const entries = await all<Entry>(`/v1/audit?${range}&limit=1`);
    // both written at the app's fixed clock: one millisecond, so their order is the tiebreak's
    expect(entries.items.map((e) => e.entityType).sort()).toEqual(['campaign', 'segment']);
    expect(entries.items.find((e) => e.entityType === 'segment')).toMatchObject({
      action: 'create',
      entityId: segId,
      before: null,
      after: { name: 'Pros' },
    });
    expect(entries.items[0]!.actor).toMatch(/^key:[0-9a-f]{12}$/);
    expect(JSON.stringify(entries.items)).not.toContain(secret);
    expect(JSON.stringify(entries.items)).toContain('[redacted]');
    const segOnly = await all<Entry>(`/v1/audit?${range}&entityType=segment&entityId=${segId}&action=create`);
    expect(segOnly.items).toHaveLength(1);
    expect((await all<Entry>(`/v1/audit?${range}&actor=key:000000000000`)).items).toEqual([]);
    const csv = await (await get(`/v1/audit?${range}`, 'admin-1', { accept: 'text/csv' })).text();
    expect(csv.split('\r\n')[0]).toBe('at,actor,action,entity_type,entity_id,before,after');
    expect(csv).not.toContain(secret);
    expect(csv.split('\r\n')).toHaveLength(4);
    // the other workspace sees none of it
    expect((await all<Entry>(`/v1/audit?${range}`, 'admin-2')).items).toEqual([]);
    expect((await get(`/v1/audit?${range}&cursor=bm9wZQ`)).status).toBe(400);
    expect((await get('/v1/audit?from=2020-01-01T00:00:00Z')).status).toBe(400);
  });
});
