// Retention: a person's cohort is the period (UTC day, or ISO week from Monday) of their
// first `cohortEvent` in range; returned[k] counts cohort members who did `returnEvent` in
// period start + k (k = 0 is the cohort's own period). Return events count within the
// same range, so periods past `to` read 0.
import type { RetentionBody } from './bodies.ts';
import { type AnalyticsContext, runAnalyticsQuery } from './run-query.ts';
import { SqlParams } from './sql-params.ts';
import { stitchedEvents } from './stitched-events.ts';
import { DAY_MS, parseRange } from './time.ts';

export interface RetentionResult {
  cohorts: Array<{ start: string; size: number; returned: number[] }>;
}

export async function retention(ctx: AnalyticsContext, body: RetentionBody): Promise<RetentionResult> {
  const { fromMs, toMs } = parseRange(body, ctx.limits.maxRangeDays);
  const params = new SqlParams();
  const cohortEvent = params.bind(body.cohortEvent, 'String');
  const returnEvent = params.bind(body.returnEvent, 'String');
  // period index: UTC days since 1970, or weeks counted from Monday 1970-01-05 (day 4)
  const bucket = (ts: string) =>
    body.period === 'day' ? `intDiv(${ts}, 86400000)` : `intDiv(intDiv(${ts}, 86400000) + 3, 7)`;
  const events = stitchedEvents(
    {
      workspaceId: ctx.workspaceId,
      fromMs,
      toMs,
      events: [...new Set([body.cohortEvent, body.returnEvent])],
      columns: { event: 'event' },
      persons: true,
    },
    params,
  );
  const periods = params.bind(body.periods, 'UInt32');
  const sql = `SELECT cb, count() AS size,
      sumForEach(arrayMap(k -> toUInt64(has(rb, cb + k)), range(${periods}))) AS returned
    FROM (
      SELECT person, ${bucket(`minIf(ts, event = ${cohortEvent})`)} AS cb,
        groupUniqArrayIf(${bucket('ts')}, event = ${returnEvent}) AS rb
      FROM ${events}
      GROUP BY person
      HAVING countIf(event = ${cohortEvent}) > 0)
    GROUP BY cb ORDER BY cb`;
  const rows = await runAnalyticsQuery<{ cb: number; size: number; returned: number[] }>(
    ctx,
    'retention',
    sql,
    params,
  );
  const start = (cb: number) => (body.period === 'day' ? cb : cb * 7 - 3) * DAY_MS;
  return {
    cohorts: rows.map((r) => ({
      start: new Date(start(Number(r.cb))).toISOString(),
      size: Number(r.size),
      returned: r.returned.map(Number),
    })),
  };
}
