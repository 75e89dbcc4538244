// Paging of the ledger and audit routes (GET /v1/ledger, /v1/ledger/journey-steps, /v1/audit):
// newest first, by a keyset cursor on (time in ms, a 64-bit hash of the row's content). A
// page asks for the rows strictly after the last one it showed, so rows inserted meanwhile
// (newer ones, or ones the cursor has passed) neither repeat nor shift what follows; two rows
// equal in every hashed column are one decision written twice (a redelivered batch) and are
// shown once. The cursor is opaque base64url: JSON [ms, hash, check], the check a digest of
// the position and the filters, so a cursor that was altered, cut, or made for other filters
// is refused (400) rather than silently starting elsewhere.
import { createHash } from 'node:crypto';
import type { Context } from 'hono';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { Logger } from '../runtime/log.ts';
import { type Cell, csvCell } from './analytics/csv.ts';
import type { AnalyticsLimits } from './analytics/run-query.ts';
import { runAnalyticsQuery } from './analytics/run-query.ts';
import type { SqlParams } from './analytics/sql-params.ts';
import { QueryError } from './query-error.ts';

export const DEFAULT_PAGE = 100;
export const MAX_PAGE = 1000;
/** Rows per ClickHouse query while a CSV download streams. */
const CSV_CHUNK = 2000;
/** The window when `from` is not given (shortened to CDP_ANALYTICS_MAX_RANGE_DAYS). */
const DEFAULT_RANGE_DAYS = 30;
const DAY_MS = 86_400_000;

export interface Position {
  t: number;
  k: string;
}

export interface PageDeps {
  clickhouse: ClickHouseClient;
  log: Logger;
  analytics: AnalyticsLimits;
}

/** `from`/`to` (ISO 8601, `to` exclusive; default: the last 30 days up to now), at most maxRangeDays apart. */
export function parseRange(
  from: string | undefined,
  to: string | undefined,
  maxRangeDays: number,
  now: Date,
): { fromMs: number; toMs: number } {
  const parse = (name: string, v: string) => {
    // a date, or a date and time; Date.parse alone would take "1" or "May 3" too
    if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(v))
      throw new QueryError(400, `${name}: give an ISO 8601 time, e.g. 2026-05-01T00:00:00Z`);
    const ms = Date.parse(v);
    if (!Number.isFinite(ms)) throw new QueryError(400, `${name}: not a valid time`);
    return ms;
  };
  const toMs = to === undefined ? now.getTime() + 1 : parse('to', to);
  const fromMs =
    from === undefined ? toMs - Math.min(DEFAULT_RANGE_DAYS, maxRangeDays) * DAY_MS : parse('from', from);
  if (fromMs >= toMs) throw new QueryError(400, 'from: must be before to');
  if (toMs - fromMs > maxRangeDays * DAY_MS)
    throw new QueryError(
      400,
      `from/to: at most ${maxRangeDays} days apart (CDP_ANALYTICS_MAX_RANGE_DAYS); page through shorter ranges`,
    );
  return { fromMs, toMs };
}

export function parseLimit(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_PAGE;
  if (!/^\d{1,6}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_PAGE)
    throw new QueryError(400, `limit: a whole number from 1 to ${MAX_PAGE}`);
  return Number(raw);
}

/** A query-string filter: absent, or 1 to 512 characters. */
export function textFilter(c: Context, name: string): string | undefined {
  const v = c.req.query(name);
  if (v === undefined) return undefined;
  if (v.length === 0 || v.length > 512) throw new QueryError(400, `${name}: must be 1 to 512 characters`);
  return v;
}

const check = (p: Position, scope: string) =>
  createHash('sha256').update(`${p.t}\n${p.k}\n${scope}`).digest('base64url').slice(0, 16);

export function encodeCursor(p: Position, scope: string): string {
  return Buffer.from(JSON.stringify([p.t, p.k, check(p, scope)])).toString('base64url');
}

/** `scope` names the route and its filters: a cursor is valid only for the query it came from. */
export function decodeCursor(raw: string, scope: string): Position {
  const bad = () => new QueryError(400, 'cursor: malformed or not from this query; start again without it');
  if (raw.length > 200 || !/^[A-Za-z0-9_-]+$/.test(raw)) throw bad();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(v) || v.length !== 3) throw bad();
  const [t, k, c] = v as unknown[];
  if (!Number.isSafeInteger(t) || typeof k !== 'string' || !/^\d{1,20}$/.test(k) || typeof c !== 'string')
    throw bad();
  if (BigInt(k) > 0xffff_ffff_ffff_ffffn) throw bad();
  const p = { t: t as number, k };
  if (c !== check(p, scope)) throw bad();
  return p;
}

export interface KeysetQuery {
  /** For logs and errors: ledger, journey-steps, audit. */
  kind: string;
  table: string;
  /** SELECT list (fixed text). */
  columns: string;
  /** The columns whose hash tells rows apart (fixed text). */
  identity: string;
  /** Extra conditions, built with `params` only. */
  where: string[];
  params: SqlParams;
  workspaceId: string;
  fromMs: number;
  toMs: number;
}

type Row = Record<string, unknown> & { _t: number; _k: string };

/** One page of rows after `after` (newest first), and whether more follow. */
export async function readPage(
  deps: PageDeps,
  q: KeysetQuery,
  after: Position | undefined,
  limit: number,
): Promise<{ rows: Row[]; next: Position | undefined }> {
  const p = q.params;
  const where = [
    `workspace_id = ${p.bind(q.workspaceId, 'String')}`,
    `at >= fromUnixTimestamp64Milli(${p.bind(q.fromMs, 'Int64')}, 'UTC')`,
    `at < fromUnixTimestamp64Milli(${p.bind(q.toMs, 'Int64')}, 'UTC')`,
    ...q.where,
  ];
  if (after)
    where.push(
      `(at, _h) < (fromUnixTimestamp64Milli(${p.bind(after.t, 'Int64')}, 'UTC'), ${p.bind(after.k, 'UInt64')})`,
    );
  const sql = `SELECT toUnixTimestamp64Milli(at) AS _t, cityHash64(${q.identity}) AS _h, toString(_h) AS _k, ${q.columns}
    FROM ${q.table}
    WHERE ${where.join(' AND ')}
    ORDER BY at DESC, _h DESC
    LIMIT 1 BY at, _h
    LIMIT ${p.bind(limit + 1, 'UInt32')}`;
  const rows = await runAnalyticsQuery<Row>(
    { clickhouse: deps.clickhouse, log: deps.log, limits: deps.analytics, workspaceId: q.workspaceId },
    q.kind,
    sql,
    p,
  );
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  const last = page[page.length - 1];
  return { rows: page, next: more && last ? { t: Number(last._t), k: String(last._k) } : undefined };
}

/** JSON: one page and the cursor of the next (null at the end). */
export async function jsonPage<T>(
  c: Context,
  deps: PageDeps,
  build: () => KeysetQuery,
  scope: string,
  map: (r: Row) => T,
) {
  const raw = c.req.query('cursor');
  const after = raw === undefined ? undefined : decodeCursor(raw, scope);
  const limit = parseLimit(c.req.query('limit'));
  const { rows, next } = await readPage(deps, build(), after, limit);
  return c.json({ items: rows.map(map), nextCursor: next ? encodeCursor(next, scope) : null });
}

export function wantsCsv(c: Context): boolean {
  const format = c.req.query('format');
  if (format !== undefined && format !== 'csv' && format !== 'json')
    throw new QueryError(400, 'format: csv or json');
  if (format) return format === 'csv';
  const accept = (c.req.header('accept') ?? '').toLowerCase();
  return accept.includes('text/csv') && !accept.includes('application/json');
}

/**
 * CSV: every row the filters select (from the cursor on, if one is given), streamed in
 * chunks of keyset pages so memory stays flat however long the range. The first query runs
 * before the answer starts, so a bad filter or a failing query is still an error status.
 */
export async function csvStream(
  c: Context,
  deps: PageDeps,
  build: () => KeysetQuery,
  scope: string,
  header: string[],
  map: (r: Row) => Cell[],
  filename: string,
): Promise<Response> {
  const raw = c.req.query('cursor');
  let after = raw === undefined ? undefined : decodeCursor(raw, scope);
  const enc = new TextEncoder();
  const lines = (rows: Row[]) => rows.map((r) => `${map(r).map(csvCell).join(',')}\r\n`).join('');
  let page = await readPage(deps, build(), after, CSV_CHUNK);
  let first = true;
  const body = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      try {
        if (first) {
          first = false;
          ctl.enqueue(enc.encode(`${header.map(csvCell).join(',')}\r\n${lines(page.rows)}`));
          if (!page.next) ctl.close();
          return;
        }
        after = page.next;
        page = await readPage(deps, build(), after, CSV_CHUNK);
        if (page.rows.length > 0) ctl.enqueue(enc.encode(lines(page.rows)));
        if (!page.next) ctl.close();
      } catch (err) {
        deps.log.error({ err: (err as Error).message }, 'csv_stream_failed');
        ctl.error(err);
      }
    },
  });
  return new Response(body, {
    status: 200,
    headers: {
      'content-type': 'text/csv; charset=utf-8',
      'content-disposition': `attachment; filename="${filename}.csv"`,
    },
  });
}

/** ClickHouse DateTime64 text in UTC, or milliseconds, as ISO 8601. */
export const isoOf = (ms: unknown) => new Date(Number(ms)).toISOString();
