// POST /v1/analytics/funnel|retention|attribution|trends (DESIGN.md, Analytics). Bodies
// are validated by their TypeBox schemas; every value reaches ClickHouse as a bound
// parameter. JSON by default; `Accept: text/csv` answers the same rows as CSV.
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { Logger } from '../../runtime/log.ts';
import { attribution } from '../analytics/attribution.ts';
import { AttributionBody, FunnelBody, RetentionBody, TrendsBody, validator } from '../analytics/bodies.ts';
import { type Cell, toCsv } from '../analytics/csv.ts';
import { funnel } from '../analytics/funnel.ts';
import { retention } from '../analytics/retention.ts';
import {
  type AnalyticsContext,
  type AnalyticsLimits,
  DEFAULT_ANALYTICS_MAX_CONCURRENT,
} from '../analytics/run-query.ts';
import { InputError } from '../analytics/sql-params.ts';
import { trends } from '../analytics/trends.ts';
import type { QueryEnv } from '../context.ts';
import { readJson } from '../context.ts';
import { uploadSlots } from '../imports/jobs.ts';
import { QueryError } from '../query-error.ts';

/** Analytics bodies are small; anything larger is refused before it is parsed. */
export const MAX_ANALYTICS_BODY = 64 * 1024;
/** Retry-After of a request refused because the workspace's analytics slots are taken. */
const BUSY_RETRY_AFTER_S = 5;

interface Csv {
  header: string[];
  rows: Cell[][];
}

export function analyticsRoutes(deps: {
  clickhouse: ClickHouseClient;
  log: Logger;
  analytics: AnalyticsLimits;
}) {
  const app = new Hono<QueryEnv>();
  // requests running at once per workspace, in this process (the same slots as import uploads)
  const running = uploadSlots(deps.analytics.maxConcurrent ?? DEFAULT_ANALYTICS_MAX_CONCURRENT);
  app.use(
    '*',
    bodyLimit({
      maxSize: MAX_ANALYTICS_BODY,
      onError: (c) => c.json({ error: `body over ${MAX_ANALYTICS_BODY / 1024} KiB` }, 413),
    }),
  );

  const route = <B, R>(
    path: string,
    validate: (b: unknown) => B,
    run: (ctx: AnalyticsContext, body: B) => Promise<R>,
    csv: (r: R, body: B) => Csv,
  ) =>
    app.post(path, async (c) => {
      const ctx: AnalyticsContext = {
        clickhouse: deps.clickhouse,
        limits: deps.analytics,
        log: deps.log,
        workspaceId: c.get('workspaceId'),
      };
      let body: B;
      let result: R;
      let release: (() => void) | undefined;
      try {
        body = validate(await readJson(c.req.raw));
        release = running.take(ctx.workspaceId);
        if (!release)
          throw new QueryError(
            429,
            `${running.max} analytics queries of this workspace are already running (CDP_ANALYTICS_MAX_CONCURRENT): wait for one to finish`,
            BUSY_RETRY_AFTER_S,
          );
        result = await run(ctx, body);
      } catch (err) {
        if (err instanceof InputError) throw new QueryError(400, err.message);
        throw err;
      } finally {
        release?.();
      }
      return wantsCsv(c) ? csvResponse(c, csv(result, body)) : c.json(result as object);
    });

  route('/funnel', validator(FunnelBody), funnel, (r) => {
    const header = ['step', 'event', 'count', 'conversionRate'];
    const rows = (key: string | undefined, steps: typeof r.steps) =>
      steps.map((s, i): Cell[] => [
        ...(key === undefined ? [] : [key]),
        i + 1,
        s.event,
        s.count,
        s.conversionRate,
      ]);
    if (!r.breakdown) return { header, rows: rows(undefined, r.steps) };
    return { header: ['key', ...header], rows: r.breakdown.flatMap((b) => rows(b.key, b.steps)) };
  });
  route('/retention', validator(RetentionBody), retention, (r, body) => ({
    header: ['start', 'size', ...Array.from({ length: body.periods }, (_, k) => `returned_${k}`)],
    rows: r.cohorts.map((c) => [c.start, c.size, ...c.returned]),
  }));
  route('/attribution', validator(AttributionBody), attribution, (r) => ({
    header: ['touchpoint', 'model', 'conversions', 'value'],
    // the last row carries the conversions without a touch
    rows: [
      ...r.rows.map((x): Cell[] => [x.touchpoint, x.model, x.conversions, x.value]),
      ['', 'unattributed', r.unattributed, r.unattributedValue],
    ],
  }));
  route('/trends', validator(TrendsBody), trends, (r) => ({
    header: ['key', 't', 'count'],
    rows: r.series.flatMap((s) => s.points.map((p): Cell[] => [s.key ?? '', p.t, p.count])),
  }));
  return app;
}

function wantsCsv(c: Context): boolean {
  const accept = (c.req.header('accept') ?? '').toLowerCase();
  return accept.includes('text/csv') && !accept.includes('application/json');
}

function csvResponse(c: Context, csv: Csv): Response {
  return c.body(toCsv(csv.header, csv.rows), 200, { 'content-type': 'text/csv; charset=utf-8' });
}
