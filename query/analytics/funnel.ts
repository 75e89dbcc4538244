// Funnel: persons who did steps 1..k in order, each within `window` of their step-1 event
// (ClickHouse windowFunnel over the person's events in range: other events may come
// between, and the best chain of any step-1 event counts).
import type { FunnelBody } from './bodies.ts';
import { fieldSql } from './fields.ts';
import { type AnalyticsContext, checkRowCap, runAnalyticsQuery } from './run-query.ts';
import { SqlParams } from './sql-params.ts';
import { stitchedEvents } from './stitched-events.ts';
import { parseDuration, parseRange } from './time.ts';
import { compileWhere } from './where.ts';

export interface FunnelStep {
  event: string;
  count: number;
  conversionRate: number;
}
export interface FunnelResult {
  steps: FunnelStep[];
  breakdown?: Array<{ key: string; steps: FunnelStep[] }>;
}

/** Breakdown values shown; persons under the others are summed as "$other". */
export const MAX_BREAKDOWN_VALUES = 20;
export const OTHER = '$other';

export async function funnel(ctx: AnalyticsContext, body: FunnelBody): Promise<FunnelResult> {
  const { fromMs, toMs } = parseRange(body, ctx.limits.maxRangeDays);
  const windowMs = parseDuration(body.window, 'window');
  const params = new SqlParams();
  const columns: Record<string, string> = { event: 'event' };
  body.steps.forEach((s, i) => {
    const name = `(event = ${params.bind(s.event, 'String')})`;
    columns[`c${i}`] =
      s.where === undefined ? name : `(${name} AND ${compileWhere(s.where, `steps[${i}].where`, params)})`;
  });
  if (body.breakdown !== undefined) columns.bk = fieldSql(body.breakdown, 'breakdown', params).str;
  const events = stitchedEvents(
    {
      workspaceId: ctx.workspaceId,
      fromMs,
      toMs,
      events: [...new Set(body.steps.map((s) => s.event))],
      columns,
      persons: true,
    },
    params,
  );
  const conds = body.steps.map((_, i) => `c${i}`).join(', ');
  const key = body.breakdown !== undefined ? 'argMinIf(bk, ts, c0)' : "''";
  const sql = `SELECT key, level, count() AS persons FROM (
      SELECT person, windowFunnel(${params.bind(windowMs, 'UInt64')})(toUInt64(ts), ${conds}) AS level, ${key} AS key
      FROM ${events} GROUP BY person)
    WHERE level > 0 GROUP BY key, level ORDER BY key, level LIMIT ${params.bind(ctx.limits.maxRows + 1, 'UInt32')}`;
  const rows = await runAnalyticsQuery<{ key: string; level: number; persons: number }>(
    ctx,
    'funnel',
    sql,
    params,
  );
  checkRowCap(rows.length, ctx, 'breakdown');

  const n = body.steps.length;
  const tally = (levels: Map<number, number>): FunnelStep[] => {
    const counts = body.steps.map((_, k) => {
      let c = 0;
      for (const [level, persons] of levels) if (level >= k + 1) c += persons;
      return c;
    });
    return body.steps.map((s, k) => ({
      event: s.event,
      count: counts[k]!,
      conversionRate: counts[0] ? counts[k]! / counts[0] : 0,
    }));
  };
  const all = new Map<number, number>();
  const byKey = new Map<string, Map<number, number>>();
  for (const r of rows) {
    const level = Math.min(Number(r.level), n);
    all.set(level, (all.get(level) ?? 0) + Number(r.persons));
    const m = byKey.get(r.key) ?? new Map<number, number>();
    m.set(level, (m.get(level) ?? 0) + Number(r.persons));
    byKey.set(r.key, m);
  }
  const result: FunnelResult = { steps: tally(all) };
  if (body.breakdown !== undefined) {
    const ranked = [...byKey].map(([k, m]) => ({ k, m, first: [...m.values()].reduce((a, b) => a + b, 0) }));
    ranked.sort((a, b) => b.first - a.first || (a.k < b.k ? -1 : 1));
    const shown = ranked.slice(0, MAX_BREAKDOWN_VALUES);
    const rest = ranked.slice(MAX_BREAKDOWN_VALUES);
    result.breakdown = shown.map((r) => ({ key: r.k, steps: tally(r.m) }));
    if (rest.length > 0) {
      const other = new Map<number, number>();
      for (const r of rest) for (const [l, p] of r.m) other.set(l, (other.get(l) ?? 0) + p);
      result.breakdown.push({ key: OTHER, steps: tally(other) });
    }
  }
  return result;
}
