// GET /v1/audit: the workspace's audit log (query/audit.ts writes it): who (the key's
// fingerprint, never the key), what (entity type and id, action), when, and the entity
// before and after (secrets were redacted when the row was written). Newest first,
// filtered, paged by a keyset cursor, JSON or CSV (query/keyset-page.ts).
import { Hono } from 'hono';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { Logger } from '../../runtime/log.ts';
import type { AnalyticsLimits } from '../analytics/run-query.ts';
import { SqlParams } from '../analytics/sql-params.ts';
import type { QueryEnv } from '../context.ts';
import {
  csvStream,
  isoOf,
  jsonPage,
  type KeysetQuery,
  parseRange,
  textFilter,
  wantsCsv,
} from '../keyset-page.ts';

const COLUMNS = 'actor, action, entity_type, entity_id, before, after';

const json = (s: unknown): unknown => {
  if (!s) return null;
  try {
    return JSON.parse(String(s));
  } catch {
    return String(s);
  }
};

export function auditLogRoutes(deps: {
  clickhouse: ClickHouseClient;
  log: Logger;
  analytics: AnalyticsLimits;
  now: () => Date;
}) {
  const app = new Hono<QueryEnv>();
  app.get('/', async (c) => {
    const ws = c.get('workspaceId');
    const range = parseRange(c.req.query('from'), c.req.query('to'), deps.analytics.maxRangeDays, deps.now());
    const v = {
      entityType: textFilter(c, 'entityType'),
      entityId: textFilter(c, 'entityId'),
      actor: textFilter(c, 'actor'),
      action: textFilter(c, 'action'),
    };
    // the range as given: a default `to` (now) moves between pages, the cursor bounds them anyway
    const scope = JSON.stringify([c.req.path, ws, c.req.query('from'), c.req.query('to'), v]);
    const build = (): KeysetQuery => {
      const params = new SqlParams();
      const where: string[] = [];
      if (v.entityType) where.push(`entity_type = ${params.bind(v.entityType, 'String')}`);
      if (v.entityId) where.push(`entity_id = ${params.bind(v.entityId, 'String')}`);
      if (v.actor) where.push(`actor = ${params.bind(v.actor, 'String')}`);
      if (v.action) where.push(`action = ${params.bind(v.action, 'String')}`);
      return {
        kind: 'audit',
        table: 'audit_log',
        columns: COLUMNS,
        identity: COLUMNS,
        where,
        params,
        workspaceId: ws,
        fromMs: range.fromMs,
        toMs: range.toMs,
      };
    };
    if (wantsCsv(c))
      return csvStream(
        c,
        deps,
        build,
        scope,
        ['at', 'actor', 'action', 'entity_type', 'entity_id', 'before', 'after'],
        (r) => [
          isoOf(r._t),
          String(r.actor),
          String(r.action),
          String(r.entity_type),
          String(r.entity_id),
          String(r.before),
          String(r.after),
        ],
        'audit',
      );
    return jsonPage(c, deps, build, scope, (r) => ({
      at: isoOf(r._t),
      actor: String(r.actor),
      action: String(r.action),
      entityType: String(r.entity_type),
      entityId: String(r.entity_id),
      before: json(r.before),
      after: json(r.after),
    }));
  });
  return app;
}
