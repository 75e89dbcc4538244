// Runs an analytics query with its limits, and keeps ClickHouse's own words out of answers:
// a timeout is a 504 naming the limit, memory past its limit a 400, anything else is logged and
// answered as a generic 500. The analytics routes also cap how many run at once per workspace
// (query/routes/analytics.ts): parameterized queries run one at a time on chDB, so one
// analyst's parallel long funnels would otherwise queue every other read of the query API.
import { randomUUID } from 'node:crypto';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { Logger } from '../../runtime/log.ts';
import { QueryError } from '../query-error.ts';
import type { SqlParams } from './sql-params.ts';

export interface AnalyticsLimits {
  maxRangeDays: number;
  timeoutS: number;
  maxRows: number;
  /** Memory one query may use (max_memory_usage; CDP_ANALYTICS_MAX_MEMORY_BYTES, default 1 GB). */
  maxMemoryBytes?: number;
  /** Analytics requests running at once per workspace in one query process (CDP_ANALYTICS_MAX_CONCURRENT, default 2). */
  maxConcurrent?: number;
}

export const DEFAULT_ANALYTICS_MAX_MEMORY_BYTES = 1_000_000_000;
export const DEFAULT_ANALYTICS_MAX_CONCURRENT = 2;

/**
 * The query with max_memory_usage in its own SETTINGS clause (joining one it ends with), not
 * in clickhouse_settings: chDB turns those into SETs that outlive the query in its session, and
 * a memory cap must not stay on the inserts and exports that share it.
 */
export function withMemoryLimit(sql: string, bytes: number): string {
  const setting = `max_memory_usage = ${Math.floor(bytes)}`;
  const text = sql.trimEnd();
  return /\bSETTINGS\s+[A-Za-z_][A-Za-z0-9_]*\s*=[^()]*$/i.test(text)
    ? `${text}\n, ${setting}`
    : `${text}\nSETTINGS ${setting}`;
}

export interface AnalyticsContext {
  clickhouse: ClickHouseClient;
  limits: AnalyticsLimits;
  log: Logger;
  workspaceId: string;
}

export async function runAnalyticsQuery<T>(
  ctx: AnalyticsContext,
  kind: string,
  sql: string,
  params: SqlParams,
): Promise<T[]> {
  const queryId = `analytics-${kind}-${randomUUID()}`;
  const t0 = performance.now();
  const maxMemoryBytes = ctx.limits.maxMemoryBytes ?? DEFAULT_ANALYTICS_MAX_MEMORY_BYTES;
  try {
    const rs = await ctx.clickhouse.query({
      query: withMemoryLimit(sql, maxMemoryBytes),
      query_params: params.values,
      query_id: queryId,
      format: 'JSONEachRow',
      // chDB keeps settings per session (so no readonly here: it would outlive the query and
      // refuse the sink's inserts); every query states all it relies on
      clickhouse_settings: {
        max_execution_time: ctx.limits.timeoutS,
        timeout_overflow_mode: 'throw',
        join_use_nulls: 0,
        output_format_json_quote_64bit_integers: 0,
      },
    });
    const rows = await rs.json<T>();
    ctx.log.debug(
      { kind, queryId, ms: Math.round(performance.now() - t0), rows: rows.length },
      'analytics_query',
    );
    return rows;
  } catch (err) {
    const message = (err as Error).message ?? String(err);
    if (/timeout exceeded|TIMEOUT_EXCEEDED/i.test(message)) {
      ctx.log.warn({ kind, queryId, timeoutS: ctx.limits.timeoutS }, 'analytics_query_timeout');
      throw new QueryError(
        504,
        `the query took longer than ${ctx.limits.timeoutS} s (CDP_ANALYTICS_TIMEOUT_S): narrow the range or filter`,
      );
    }
    if (/MEMORY_LIMIT_EXCEEDED|memory limit exceeded/i.test(message)) {
      ctx.log.warn({ kind, queryId, maxMemoryBytes }, 'analytics_query_memory');
      throw new QueryError(
        400,
        `the query needed more than ${maxMemoryBytes} bytes of memory (CDP_ANALYTICS_MAX_MEMORY_BYTES): narrow the range, filter or breakdown`,
      );
    }
    ctx.log.error({ kind, queryId, err: message }, 'analytics_query_failed');
    throw new QueryError(500, `the ${kind} query failed (query id ${queryId})`);
  }
}

/** A result over the row cap is refused rather than cut silently. */
export function checkRowCap(rows: number, ctx: AnalyticsContext, what: string): void {
  if (rows > ctx.limits.maxRows)
    throw new QueryError(
      400,
      `${what}: more than ${ctx.limits.maxRows} result rows (CDP_ANALYTICS_MAX_ROWS): narrow the range, the breakdown or the touchpoint field`,
    );
}
