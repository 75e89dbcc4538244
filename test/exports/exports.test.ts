// Data exports against real Redis and chDB: an event query, a BI view and a segment's
// members, to CSV and to Parquet (read back by chDB's own Parquet reader), in several slices;
// the rows checked against the generated history; resumed from the last finished slice after
// a failure; deleted when an erasure runs and after their time to live; refused with a 400
// naming the field for bad requests; audited.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { toHistoryRow } from '../../processor/to-history-row.ts';
import { toIdentityRows } from '../../processor/to-identity-rows.ts';
import { createQueryApp } from '../../query/app.ts';
import { type ExportDeps, exportFile, runDueExports } from '../../query/exports.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createLogger } from '../../runtime/log.ts';
import type { ExportJob } from '../../schemas/export.ts';
import { migrate } from '../../schemas/migrations.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { generateDataset } from '../analytics-dataset.ts';
import { type Ev, resolvePersons } from '../analytics-oracle.ts';
import { ledgerRow, segmentDef } from '../fixtures.ts';
import { uniqueId } from '../harness.ts';

const DAY = 86_400_000;
const START = Date.parse('2026-03-02T00:00:00Z');
const FROM = START + 5 * DAY;
const TO = START + 19 * DAY;
const prefix = uniqueId('exp');
const ws = uniqueId('ws_');
const other = uniqueId('ws_other_');
const dir = mkdtempSync(join(tmpdir(), 'cdp-exports-'));

let redis: Redis;
let ch: ClickHouseClient;
let app: ReturnType<typeof createQueryApp>;
let evs: Ev[];
let clock = Date.parse('2026-04-01T00:00:00Z');
/** exec calls (each writes a slice) so far, and the one to fail (0: none), to interrupt an export */
let execs = 0;
let failAt = 0;
/** Called at each exec (after the fault switch): to make something happen mid-export. */
let onExec: ((n: number) => Promise<void>) | undefined;
let deps: ExportDeps;

const headers = { authorization: 'Bearer admin-1', 'content-type': 'application/json' };
const post = (body: unknown, key = 'admin-1') =>
  app.request('/v1/exports', {
    method: 'POST',
    headers: { ...headers, authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
const get = (path: string, key = 'admin-1') =>
  app.request(path, { headers: { authorization: `Bearer ${key}` } });
type View = ExportJob & { progress: number; file: string | null };
const start = async (body: unknown): Promise<View> => {
  const res = await post(body);
  expect(res.status, await res.clone().text()).toBe(202);
  return (await res.json()) as View;
};
const status = async (id: string) => (await (await get(`/v1/exports/${id}`)).json()) as View;

/** Runs the worker until the job is no longer pending or running (the clock moved past backoffs). */
async function runToEnd(id: string): Promise<View> {
  for (let i = 0; i < 20; i++) {
    await runDueExports(deps);
    const v = await status(id);
    if (v.status !== 'pending' && v.status !== 'running') return v;
    clock += 120_000; // past a failure's backoff and a lease
  }
  throw new Error(`export ${id} did not finish`);
}

/** Rows of an exported Parquet file, read by chDB. */
async function parquetRows<T>(path: string, select = '*'): Promise<T[]> {
  const rs = await ch.query({
    query: `SELECT ${select} FROM file('${path}', Parquet)`,
    format: 'JSONEachRow',
  });
  return rs.json<T>();
}

/** RFC 4180 (quoted fields with doubled quotes, CRLF lines) into rows of strings. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += c;
  }
  expect(cell, 'the file ends with a line break').toBe('');
  return rows;
}

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  const real = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-exports-ch-')) });
  await migrate(real);
  // the real client, with a fault switch on exec (the call that writes a slice)
  ch = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === 'exec')
        return (p: Parameters<ClickHouseClient['exec']>[0]) => {
          execs++;
          if (execs === failAt) return Promise.reject(new Error('injected: the engine went away'));
          if (onExec) return onExec(execs).then(() => target.exec(p));
          return target.exec(p);
        };
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const data = generateDataset({
    seed: 11,
    workspaceId: ws,
    persons: 120,
    startMs: START,
    days: 24,
    eventsPerPerson: 10,
  });
  const mine = generateDataset({
    seed: 11,
    workspaceId: other,
    persons: 30,
    startMs: START,
    days: 24,
    eventsPerPerson: 10,
  });
  const rows = [...data.events, ...mine.events].map(toHistoryRow);
  await ch.insert({ table: 'events', values: rows, format: 'JSONEachRow' });
  // a replayed part: the export must not repeat these
  await ch.insert({ table: 'events', values: rows.filter((_, i) => i % 7 === 0), format: 'JSONEachRow' });
  await ch.insert({
    table: 'identity_links',
    values: [...data.changes, ...mine.changes].flatMap((c) => toIdentityRows(c, START)),
    format: 'JSONEachRow',
  });
  evs = resolvePersons(data.events, data.changes);
  const logger = createLogger({ level: 'silent', name: 'test' });
  deps = {
    redis,
    redisPrefix: prefix,
    clickhouse: ch,
    log: logger,
    now: () => new Date(clock),
    dir,
    ttlMs: DAY,
    engine: 'chdb',
    sliceRows: 40,
  };
  const defs = new DefinitionStore(redis, prefix);
  await defs.put('segments', segmentDef('seg_vip', { '==': [1, 1] }, { workspaceId: ws }));
  app = createQueryApp({
    redis,
    clickhouse: ch,
    defs,
    writeKeys: {} as never,
    redisPrefix: prefix,
    resolveAdminKey: (k) => (k === 'admin-1' ? ws : k === 'admin-2' ? other : undefined),
    unsubscribeSecret: 'unused-in-this-suite',
    log: logger,
    analytics: { maxRangeDays: 400, timeoutS: 30, maxRows: 10_000 },
    exports: { dir, ttlMs: DAY, engine: 'chdb', sliceRows: 40 },
    now: () => new Date(clock),
  });
});
afterAll(async () => {
  await ch?.close();
  redis?.disconnect();
});

describe('exports', () => {
  const inRange = () =>
    evs
      .filter((e) => e.t >= FROM && e.t < TO && (e.event === 'Order Completed' || e.event === 'Signed Up'))
      .sort((a, b) => a.t - b.t);

  it('an event query to CSV, in slices: every event once, in time order, with its person, nobody else’s', async () => {
    const job = await start({
      format: 'csv',
      events: {
        from: new Date(FROM).toISOString(),
        to: new Date(TO).toISOString(),
        events: ['Order Completed', 'Signed Up'],
      },
    });
    expect(job).toMatchObject({ status: 'pending', progress: 0, file: null });
    const done = await runToEnd(job.id);
    const expected = inRange();
    expect(done).toMatchObject({
      status: 'done',
      progress: 1,
      rowsDone: expected.length,
      rowsTotal: expected.length,
    });
    expect(done.slicesTotal).toBeGreaterThan(2);
    const res = await get(done.file!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="${job.id}.csv"`);
    const [header, ...lines] = parseCsv(await res.text());
    expect(header!.slice(0, 3)).toEqual(['message_id', 'type', 'event']);
    const col = (name: string) => header!.indexOf(name);
    expect(lines.map((l) => l[col('message_id')])).toEqual(expected.map((e) => e.id));
    expect(lines.map((l) => l[col('person_id')])).toEqual(expected.map((e) => e.person));
    expect(Number(res.headers.get('content-length'))).toBe(done.bytes);
  });

  it('the same to Parquet: slices merged into one file chDB reads back whole', async () => {
    const job = await start({
      format: 'parquet',
      events: {
        from: new Date(FROM).toISOString(),
        to: new Date(TO).toISOString(),
        events: ['Order Completed', 'Signed Up'],
      },
    });
    const done = await runToEnd(job.id);
    expect(done.status).toBe('done');
    const res = await get(done.file!);
    expect(res.headers.get('content-type')).toBe('application/vnd.apache.parquet');
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.subarray(0, 4).toString()).toBe('PAR1');
    const copy = join(dir, 'downloaded.parquet');
    writeFileSync(copy, body);
    const got = await parquetRows<{ message_id: string; person_id: string }>(copy, 'message_id, person_id');
    const expected = inRange();
    expect(got.map((r) => `${r.message_id}|${r.person_id}`).sort()).toEqual(
      expected.map((e) => `${e.id}|${e.person}`).sort(),
    );
  });

  it('resumes after a failure from the slice it failed at, not from the start', async () => {
    const job = await start({
      format: 'csv',
      events: { from: new Date(FROM).toISOString(), to: new Date(TO).toISOString() },
    });
    // plan, then slice 0 written, then slice 1 fails
    execs = 0;
    failAt = 2;
    await runDueExports(deps);
    failAt = 0;
    const cut = await status(job.id);
    expect(cut).toMatchObject({ status: 'running', slicesDone: 1 });
    expect(cut.progress).toBeGreaterThan(0);
    expect(cut.progress).toBeLessThan(1);
    execs = 0;
    const done = await runToEnd(job.id);
    expect(done.status).toBe('done');
    // the finished slice was not written again
    expect(execs).toBe(done.slicesTotal! - 1);
    const [, ...lines] = parseCsv(await (await get(done.file!)).text());
    const expected = evs.filter((e) => e.t >= FROM && e.t < TO);
    expect(lines.map((l) => l[0]).sort()).toEqual(expected.map((e) => e.id).sort());
  });

  it('a BI view (the sends) of this workspace only, and a segment’s members with their traits', async () => {
    const T = START + 2 * DAY;
    await ch.insert({
      table: 'activation_ledger',
      format: 'JSONEachRow',
      values: [
        ...Array.from({ length: 40 }, (_, i) =>
          ledgerRow({
            workspace_id: ws,
            at: T + i * 3_600_000,
            send_key: `k${i}`,
            campaign_id: 'cmp_a',
            profile_id: `p${i}`,
          }),
        ),
        ledgerRow({ workspace_id: other, at: T, send_key: 'x', campaign_id: 'cmp_theirs', profile_id: 'q' }),
      ],
    });
    const sends = await runToEnd((await start({ format: 'parquet', table: { name: 'bi_sends' } })).id);
    expect(sends.status).toBe('done');
    const got = await parquetRows<{ send_key: string; campaign_id: string }>(
      exportFile(deps, sends),
      'send_key, campaign_id',
    );
    expect(got.map((r) => r.send_key).sort()).toEqual(Array.from({ length: 40 }, (_, i) => `k${i}`).sort());

    const k = workspaceKeys(prefix, ws);
    for (let i = 0; i < 35; i++) {
      const pid = `prof_m${i}`;
      await redis.hset(k.profile(pid), {
        id: pid,
        firstSeenAt: String(START),
        lastSeenAt: String(START + DAY),
      });
      await redis.hset(k.profileTraits(pid), {
        plan: JSON.stringify(i % 2 ? 'pro' : 'free'),
        note: JSON.stringify(i === 3 ? 'comma, "quote"\nnewline' : 'x'),
      });
      await redis.sadd(k.profileIdentities(pid), `user:u${i}`, `email:m${i}@x.io`);
      await redis.zadd(k.segmentMembers('seg_vip'), START + i, pid);
    }
    for (const format of ['csv', 'parquet'] as const) {
      const done = await runToEnd((await start({ format, segment: { id: 'seg_vip' } })).id);
      expect(done).toMatchObject({ status: 'done', rowsDone: 35, slicesTotal: 1 });
      const rows =
        format === 'parquet'
          ? (await parquetRows<Record<string, unknown>>(exportFile(deps, done))).map((r) => ({
              id: String(r.profile_id),
              emails: r.emails as string[],
              traits: JSON.parse(String(r.traits)) as Record<string, unknown>,
            }))
          : (() => {
              const [header, ...lines] = parseCsv(readFileSync(exportFile(deps, done), 'utf8'));
              expect(header).toEqual([
                'profile_id',
                'user_ids',
                'anonymous_ids',
                'emails',
                'traits',
                'entered_at',
                'first_seen_at',
                'last_seen_at',
              ]);
              return lines.map((l) => ({
                id: l[0]!,
                emails: l[3]!.slice(2, -2).split("','"),
                traits: JSON.parse(l[4]!) as Record<string, unknown>,
              }));
            })();
      expect(rows.map((r) => r.id).sort()).toEqual(Array.from({ length: 35 }, (_, i) => `prof_m${i}`).sort());
      const three = rows.find((r) => r.id === 'prof_m3')!;
      expect(three.emails).toEqual(['m3@x.io']);
      expect(three.traits).toEqual({ plan: 'pro', note: 'comma, "quote"\nnewline' });
    }
  });

  it('an erasure deletes the files made before it; the time to live deletes the rest', async () => {
    const a = await runToEnd((await start({ format: 'csv', table: { name: 'bi_sends' } })).id);
    expect(existsSync(exportFile(deps, a))).toBe(true);
    clock += 1000;
    await redis.zadd(globalKeys(prefix).erasedWorkspaces, clock, ws);
    const gone = await status(a.id);
    expect(gone.status).toBe('expired');
    expect(gone.error).toMatch(/erasure/);
    expect(existsSync(exportFile(deps, a))).toBe(false);
    expect((await get(`/v1/exports/${a.id}/file`)).status).toBe(409);

    clock += 1000;
    const b = await runToEnd((await start({ format: 'csv', table: { name: 'bi_sends' } })).id);
    expect(b.status).toBe('done');
    clock += DAY + 1;
    await runDueExports(deps);
    expect((await status(b.id)).status).toBe('expired');
    expect(existsSync(exportFile(deps, b))).toBe(false);
  });

  it('an erasure during an export fails it at its next slice: parts and member snapshot deleted', async () => {
    const k = workspaceKeys(prefix, ws);
    // 45 members: two slices of a segment export (40 a slice here)
    for (let i = 35; i < 45; i++) {
      const pid = `prof_m${i}`;
      await redis.hset(k.profile(pid), { id: pid, firstSeenAt: String(START), lastSeenAt: String(START) });
      await redis.zadd(k.segmentMembers('seg_vip'), START + i, pid);
    }
    clock += 1000;
    const job = await start({ format: 'parquet', segment: { id: 'seg_vip' } });
    // the erasure runs while the first slice is written
    execs = 0;
    onExec = async (n) => {
      if (n === 1) await redis.zadd(globalKeys(prefix).erasedWorkspaces, clock, ws);
    };
    try {
      await runDueExports(deps);
    } finally {
      onExec = undefined;
    }
    const failed = await status(job.id);
    expect(failed).toMatchObject({ status: 'failed', slicesDone: 1, slicesTotal: 2 });
    expect(failed.error).toMatch(/erasure/);
    // the second slice was never written
    expect(execs).toBe(1);
    expect(await redis.exists(k.exportMembers(job.id))).toBe(0);
    expect(existsSync(exportFile(deps, job).replace(/\.parquet$/, '.parts'))).toBe(false);
    expect(existsSync(exportFile(deps, job))).toBe(false);
    for (let i = 35; i < 45; i++) await redis.zrem(k.segmentMembers('seg_vip'), `prof_m${i}`);
  });

  it('refuses bad requests with a 400 naming the field; other workspaces’ jobs are not found', async () => {
    const range = { from: '2026-03-05', to: '2026-03-06' };
    for (const [body, field] of [
      [{ format: 'csv' }, 'source'],
      [{ format: 'csv', events: range, table: { name: 'bi_sends' } }, 'source'],
      [{ format: 'xlsx', events: range }, 'format'],
      [{ format: 'csv', table: { name: 'events' } }, 'table'],
      [{ format: 'csv', table: { name: 'system.tables' } }, 'table'],
      [{ format: 'csv', events: { from: '2026-03-06', to: '2026-03-05' } }, 'events.to'],
      [{ format: 'csv', events: { ...range, where: { regex: [{ var: 'event' }, '.*'] } } }, 'events.where'],
      [{ format: 'csv', segment: { id: 'nope' } }, 'segment.id'],
      [{ format: 'csv', events: range, extra: 1 }, ''],
    ] as const) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: string }).error, JSON.stringify(body)).toContain(field);
    }
    const mine = await start({ format: 'csv', events: range });
    expect((await get(`/v1/exports/${mine.id}`, 'admin-2')).status).toBe(404);
    expect((await get('/v1/exports/../../etc/passwd')).status).toBe(404);
    expect((await get('/v1/exports/exp_..%2F..%2Fx/file')).status).toBe(404);
    // three under way at once at most
    await start({ format: 'csv', events: range });
    await start({ format: 'csv', events: range });
    const busy = await post({ format: 'csv', events: range });
    expect(busy.status).toBe(429);
    // each request is on the audit log, with what was asked
    const rs = await ch.query({
      query: `SELECT count() AS n FROM audit_log WHERE workspace_id = {ws:String} AND entity_type = 'export' AND action = 'create'`,
      query_params: { ws },
      format: 'JSONEachRow',
    });
    expect(Number((await rs.json<{ n: string }>())[0]!.n)).toBeGreaterThanOrEqual(10);
    // a cancelled one leaves nothing
    expect((await app.request(`/v1/exports/${mine.id}`, { method: 'DELETE', headers })).status).toBe(204);
    expect((await get(`/v1/exports/${mine.id}`)).status).toBe(404);
  });
});
