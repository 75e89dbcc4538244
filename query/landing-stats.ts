// Reporting for forms and landing pages, from the event history in ClickHouse: the page
// calls the ingest host produces for each view of a landing page (properties pageId,
// variant, formIds) and the `Form Submitted` events of submissions (properties formId and,
// from a landing page, pageId and variant). A replayed message counts once (message ids
// are counted, not rows). Every value is a bound parameter; every query is held to the
// key's workspace and the range.
import { type AnalyticsContext, runAnalyticsQuery } from './analytics/run-query.ts';
import { SqlParams } from './analytics/sql-params.ts';

export interface Range {
  fromMs: number;
  toMs: number;
}

interface Counts {
  views: number;
  uniqueVisitors: number;
  /** `Form Submitted` events naming the page (and variant). */
  submissions: number;
  uniqueSubmitters: number;
  /** Unique submitters who viewed the page (that variant) in the range: at most uniqueVisitors. */
  conversions: number;
  /** conversions / uniqueVisitors; null without views. */
  conversionRate: number | null;
}

export interface PageStats extends Counts {
  pageId: string;
  from: string;
  to: string;
  variants: Array<Counts & { id: string; weight: number | null }>;
  byDay: Array<Counts & { date: string }>;
}

export interface FormStats {
  formId: string;
  from: string;
  to: string;
  /** Landing-page views that showed the form (the form's own page is not tracked). */
  views: number;
  uniqueVisitors: number;
  submissions: number;
  uniqueSubmitters: number;
  /** Of those, submitted from a landing page (a tracked view). */
  pageSubmissions: number;
  /** Unique submitters from a landing page who viewed that page in the range. */
  conversions: number;
  /** conversions / unique visitors who saw the form on a landing page; null without views. */
  conversionRate: number | null;
  byDay: Array<{ date: string; views: number; submissions: number; uniqueSubmitters: number }>;
  byPage: Array<{ pageId: string; views: number; submissions: number }>;
}

/** Every UTC day the range touches (YYYY-MM-DD), so a chart has its empty days too. */
function daysOf(range: Range): string[] {
  const out: string[] = [];
  const DAY = 86_400_000;
  for (let d = Math.floor(range.fromMs / DAY) * DAY; d < range.toMs; d += DAY)
    out.push(new Date(d).toISOString().slice(0, 10));
  return out;
}

const rate = (n: number, d: number) => (d > 0 ? Math.round((n / d) * 10_000) / 10_000 : null);
const SUBMITTER = `if(anonymous_id != '', anonymous_id, user_id)`;

function timeWhere(p: SqlParams, r: Range): string {
  return `timestamp >= fromUnixTimestamp64Milli(${p.bind(r.fromMs, 'Int64')}, 'UTC')
    AND timestamp < fromUnixTimestamp64Milli(${p.bind(r.toMs, 'Int64')}, 'UTC')`;
}

type Row = Record<string, string | number>;
const counts = (r: Row | undefined): Counts => {
  const uniqueVisitors = Number(r?.visitors ?? 0);
  const conversions = Number(r?.converters ?? 0);
  return {
    views: Number(r?.views ?? 0),
    uniqueVisitors,
    submissions: Number(r?.submissions ?? 0),
    uniqueSubmitters: Number(r?.submitters ?? 0),
    conversions,
    conversionRate: rate(conversions, uniqueVisitors),
  };
};

/**
 * A page's views, visitors, submissions and conversion, in all, per variant (the page's
 * variants first, in order, each with its weight; then any variant the history has that
 * the page no longer does) and per UTC day.
 */
export async function pageStats(
  ctx: AnalyticsContext,
  pageId: string,
  variants: Array<{ id: string; weight: number }>,
  range: Range,
): Promise<PageStats> {
  const p = new SqlParams();
  const ws = p.bind(ctx.workspaceId, 'String');
  const time = timeWhere(p, range);
  const pid = p.bind(pageId, 'String');
  // a submission converts when its submitter viewed the variant it names (a posted
  // _pageId/_variant alone does not make a conversion)
  const viewers = `SELECT JSONExtractString(properties, 'variant'), anonymous_id FROM events
      WHERE workspace_id = ${ws} AND event = 'page' AND type = 'page' AND ${time}
        AND JSONExtractString(properties, 'pageId') = ${pid}`;
  const select = `uniqExactIf(message_id, event = 'page') AS views,
      uniqExactIf(anonymous_id, event = 'page') AS visitors,
      uniqExactIf(message_id, event = 'Form Submitted') AS submissions,
      uniqExactIf(${SUBMITTER}, event = 'Form Submitted') AS submitters,
      uniqExactIf(${SUBMITTER}, event = 'Form Submitted'
        AND (JSONExtractString(properties, 'variant'), ${SUBMITTER}) IN (${viewers})) AS converters`;
  const where = `workspace_id = ${ws}
      AND event IN ('page', 'Form Submitted')
      AND ${time}
      AND JSONExtractString(properties, 'pageId') = ${pid}
      AND ((event = 'page' AND type = 'page') OR (event = 'Form Submitted' AND type = 'track'))`;
  const rows = await runAnalyticsQuery<Row>(
    ctx,
    'page-stats',
    `SELECT JSONExtractString(properties, 'variant') AS variant, toString(toDate(timestamp)) AS day, ${select}
     FROM events WHERE ${where}
     GROUP BY GROUPING SETS ((), (variant), (day))
     SETTINGS group_by_use_nulls = 1`,
    p,
  );
  // with group_by_use_nulls, a row's null keys tell its grouping set
  const total = rows.find((r) => r.variant === null && r.day === null);
  const byVariant = new Map(
    rows.filter((r) => r.variant !== null && r.day === null).map((r) => [String(r.variant), r]),
  );
  const known = new Set(variants.map((v) => v.id));
  const byDay = new Map(
    rows.filter((r) => r.day !== null && r.variant === null).map((r) => [String(r.day), r]),
  );
  return {
    pageId,
    from: new Date(range.fromMs).toISOString(),
    to: new Date(range.toMs).toISOString(),
    ...counts(total),
    variants: [
      ...variants.map((v) => ({ id: v.id, weight: v.weight, ...counts(byVariant.get(v.id)) })),
      ...[...byVariant.entries()]
        .filter(([id]) => !known.has(id))
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([id, r]) => ({ id, weight: null, ...counts(r) })),
    ],
    byDay: daysOf(range).map((date) => ({ date, ...counts(byDay.get(date)) })),
  };
}

/** A form's submissions (all, and from landing pages), the landing-page views that showed it, per day and per page. */
export async function formStats(ctx: AnalyticsContext, formId: string, range: Range): Promise<FormStats> {
  const p = new SqlParams();
  const fid = p.bind(formId, 'String');
  const ws = p.bind(ctx.workspaceId, 'String');
  const time = timeWhere(p, range);
  const shown = `(event = 'page' AND type = 'page' AND has(JSONExtract(properties, 'formIds', 'Array(String)'), ${fid}))`;
  const submitted = `(event = 'Form Submitted' AND type = 'track' AND JSONExtractString(properties, 'formId') = ${fid})`;
  const fromPage = `(${submitted} AND JSONExtractString(properties, 'pageId') != '')`;
  // from a page its submitter viewed, showing the form, in the range
  const converted = `(${fromPage} AND (JSONExtractString(properties, 'pageId'), ${SUBMITTER}) IN (
      SELECT JSONExtractString(properties, 'pageId'), anonymous_id FROM events
      WHERE workspace_id = ${ws} AND event = 'page' AND ${time} AND ${shown}))`;
  const rows = await runAnalyticsQuery<Row>(
    ctx,
    'form-stats',
    `SELECT toString(toDate(timestamp)) AS day, JSONExtractString(properties, 'pageId') AS page,
        uniqExactIf(message_id, ${shown}) AS views,
        uniqExactIf(anonymous_id, ${shown}) AS visitors,
        uniqExactIf(message_id, ${submitted}) AS submissions,
        uniqExactIf(${SUBMITTER}, ${submitted}) AS submitters,
        uniqExactIf(message_id, ${fromPage}) AS page_submissions,
        uniqExactIf(${SUBMITTER}, ${converted}) AS converters
     FROM events
     WHERE workspace_id = ${ws}
       AND event IN ('page', 'Form Submitted')
       AND ${time}
       AND (${shown} OR ${submitted})
     GROUP BY GROUPING SETS ((), (day), (page))
     SETTINGS group_by_use_nulls = 1`,
    p,
  );
  const total = rows.find((r) => r.day === null && r.page === null);
  const n = (r: Row | undefined, k: string) => Number(r?.[k] ?? 0);
  const byDay = new Map(rows.filter((r) => r.day !== null && r.page === null).map((r) => [String(r.day), r]));
  return {
    formId,
    from: new Date(range.fromMs).toISOString(),
    to: new Date(range.toMs).toISOString(),
    views: n(total, 'views'),
    uniqueVisitors: n(total, 'visitors'),
    submissions: n(total, 'submissions'),
    uniqueSubmitters: n(total, 'submitters'),
    pageSubmissions: n(total, 'page_submissions'),
    conversions: n(total, 'converters'),
    conversionRate: rate(n(total, 'converters'), n(total, 'visitors')),
    byDay: daysOf(range).map((date) => {
      const r = byDay.get(date);
      return {
        date,
        views: n(r, 'views'),
        submissions: n(r, 'submissions'),
        uniqueSubmitters: n(r, 'submitters'),
      };
    }),
    byPage: rows
      .filter((r) => r.page !== null && r.page !== '' && r.day === null)
      .map((r) => ({ pageId: String(r.page), views: n(r, 'views'), submissions: n(r, 'submissions') }))
      .sort((a, b) => b.views - a.views || a.pageId.localeCompare(b.pageId)),
  };
}
