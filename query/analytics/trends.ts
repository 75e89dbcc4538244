// Trends: events (or distinct persons) per hour, day or ISO week, with every period of the
// range present (zeros included). A breakdown keeps the MAX_SERIES values with the most
// events; the rest are summed as one "$other" series.
import type { TrendsBody } from './bodies.ts';
import { fieldSql } from './fields.ts';
import { type AnalyticsContext, checkRowCap, runAnalyticsQuery } from './run-query.ts';
import { SqlParams } from './sql-params.ts';
import { stitchedEvents } from './stitched-events.ts';
import { PERIOD_MS, parseRange, periodStart, periodStartSql } from './time.ts';
import { compileWhere } from './where.ts';

export const MAX_SERIES = 10;
export const OTHER = '$other';

export interface TrendsResult {
  series: Array<{ key?: string; points: Array<{ t: string; count: number }> }>;
}

export async function trends(ctx: AnalyticsContext, body: TrendsBody): Promise<TrendsResult> {
  const { fromMs, toMs } = parseRange(body, ctx.limits.maxRangeDays);
  const params = new SqlParams();
  const where = body.where === undefined ? undefined : compileWhere(body.where, 'where', params);
  const columns: Record<string, string> = {};
  if (body.breakdown !== undefined) columns.bk = fieldSql(body.breakdown, 'breakdown', params).str;
  const buckets: number[] = [];
  for (let t = periodStart(fromMs, body.interval); t < toMs; t += PERIOD_MS[body.interval]) buckets.push(t);
  const series = body.breakdown === undefined ? 1 : MAX_SERIES + 1;
  checkRowCap(buckets.length * series, ctx, 'interval');

  const persons = body.measure === 'persons';
  const events = stitchedEvents(
    { workspaceId: ctx.workspaceId, fromMs, toMs, events: [body.event], columns, where, persons },
    params,
  );
  const measure = persons ? 'uniqExact(person)' : 'count()';
  let sql: string;
  if (body.breakdown === undefined) {
    sql = `SELECT '' AS key, ${periodStartSql('ts', body.interval)} AS t, ${measure} AS n
      FROM ${events} GROUP BY t ORDER BY t`;
  } else {
    // the top values by events over the whole range, then every point of each
    const top = `(SELECT bk FROM ${events} GROUP BY bk ORDER BY count() DESC, bk LIMIT ${MAX_SERIES})`;
    sql = `SELECT if(bk IN ${top}, bk, '${OTHER}') AS key, ${periodStartSql('ts', body.interval)} AS t,
        ${measure} AS n
      FROM ${events} GROUP BY key, t ORDER BY key, t`;
  }
  const rows = await runAnalyticsQuery<{ key: string; t: number; n: number }>(ctx, 'trends', sql, params);
  const byKey = new Map<string, Map<number, number>>();
  for (const r of rows) {
    const m = byKey.get(r.key) ?? new Map<number, number>();
    m.set(Number(r.t), Number(r.n));
    byKey.set(r.key, m);
  }
  const points = (m: Map<number, number> | undefined) =>
    buckets.map((t) => ({ t: new Date(t).toISOString(), count: m?.get(t) ?? 0 }));
  if (body.breakdown === undefined) return { series: [{ points: points(byKey.get('')) }] };
  const total = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const keys = [...byKey.keys()].sort((a, b) => {
    if (a === OTHER) return 1;
    if (b === OTHER) return -1;
    return total(byKey.get(b)!) - total(byKey.get(a)!) || (a < b ? -1 : 1);
  });
  return { series: keys.map((key) => ({ key, points: points(byKey.get(key)) })) };
}
