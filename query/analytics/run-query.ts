// Runs an analytics query with its limits, and keeps ClickHouse's own words out of answers:
// a timeout is a 504 naming the limit, anything else is logged and answered as a generic 500.
import { randomUUID } from 'node:crypto';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { Logger } from '../../runtime/log.ts';
import { QueryError } from '../query-error.ts';
import type { SqlParams } from './sql-params.ts';

export interface AnalyticsLimits {
  maxRangeDays: number;
  timeoutS: number;
  maxRows: number;
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
  try {
    const rs = await ctx.clickhouse.query({
      query: sql,
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
