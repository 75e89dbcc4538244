// The workspace's tracking plan (schemas/tracking-plan.ts): read, replace (each save a new
// version, audited), delete; the violations counted per event and property path; the
// events a plan quarantined; and their replay once the plan was fixed. Ingest reloads the
// plan when the definition store's revision moves (within CDP_DEFINITIONS_POLL_MS).
import { randomUUID } from 'node:crypto';
import { type Context, Hono } from 'hono';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { DefinitionStore } from '../../runtime/definitions.ts';
import type { OutgoingMessage, Producer } from '../../runtime/kafka/index.ts';
import type { Logger } from '../../runtime/log.ts';
import type { Redis } from '../../runtime/redis.ts';
import { DefinitionInputError } from '../../schemas/definition-input.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import { globalKeys } from '../../schemas/redis-keys.ts';
import { eventKey, topics } from '../../schemas/topics.ts';
import {
  type CompiledPlan,
  checkTrackingPlanInput,
  compilePlan,
  PLAN_ID,
  type TrackingPlan,
  type TrackingPlanInput,
} from '../../schemas/tracking-plan.ts';
import type { AnalyticsLimits } from '../analytics/run-query.ts';
import { runAnalyticsQuery } from '../analytics/run-query.ts';
import { SqlParams } from '../analytics/sql-params.ts';
import { actorOf, recordAudit } from '../audit.ts';
import { type QueryEnv, readJson } from '../context.ts';
import { isoOf, jsonPage, type KeysetQuery, parseRange, textFilter } from '../keyset-page.ts';
import { QueryError } from '../query-error.ts';

export interface TrackingPlanDeps {
  clickhouse: ClickHouseClient;
  defs: DefinitionStore;
  redis: Redis;
  redisPrefix: string;
  log: Logger;
  analytics: AnalyticsLimits;
  now: () => Date;
  /** For replays: the events topic is under this prefix. */
  producer?: Producer;
  topicPrefix?: string;
}

/** Quarantined events replayed per ClickHouse read and Kafka send, and at most per request. */
const REPLAY_PAGE = 500;
const REPLAY_MAX = 50_000;
/** A replay's lock outlives a crashed replayer by this much (it is renewed every page). */
const REPLAY_LOCK_MS = 60_000;

// The lock is released (or renewed) only by its holder.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

export function trackingPlanRoutes(deps: TrackingPlanDeps) {
  const app = new Hono<QueryEnv>();
  const keys = globalKeys(deps.redisPrefix);

  const audit = (c: Context<QueryEnv>, before: TrackingPlan | null, after: TrackingPlan | null) =>
    recordAudit(
      deps.clickhouse,
      {
        workspaceId: c.get('workspaceId'),
        actor: actorOf(c.get('apiKey')),
        action: before === null ? 'create' : after === null ? 'delete' : 'update',
        entityType: 'tracking_plan',
        entityId: PLAN_ID,
        before,
        after,
      },
      deps.now(),
    );

  app.get('/', async (c) => {
    const plan = await deps.defs.get('trackingPlans', c.get('workspaceId'), PLAN_ID);
    if (!plan) throw new QueryError(404, 'no tracking plan: PUT one');
    return c.json(plan);
  });

  app.put('/', async (c) => {
    const ws = c.get('workspaceId');
    let input: TrackingPlanInput;
    try {
      input = checkTrackingPlanInput(await readJson(c.req.raw));
    } catch (err) {
      if (err instanceof DefinitionInputError) throw new QueryError(400, err.message);
      throw err;
    }
    const before = (await deps.defs.get('trackingPlans', ws, PLAN_ID)) ?? null;
    // a deleted plan's versions stay: a new plan continues their numbering
    const version = before ? before.version + 1 : await nextVersionAfterDelete(deps.defs, ws);
    const at = deps.now().toISOString();
    const after: TrackingPlan = {
      mode: input.mode,
      unplannedEvents: input.unplannedEvents ?? 'allow',
      events: input.events,
      ...(input.identify ? { identify: input.identify } : {}),
      ...(input.group ? { group: input.group } : {}),
      id: PLAN_ID,
      workspaceId: ws,
      version,
      createdAt: before?.createdAt ?? at,
      updatedAt: at,
    };
    await deps.defs.putMany([
      { kind: 'trackingPlans', def: after },
      { kind: 'trackingPlanVersions', def: after, field: `${PLAN_ID}@${version}` },
    ]);
    await audit(c, before, after);
    return c.json(after, before ? 200 : 201);
  });

  app.delete('/', async (c) => {
    const ws = c.get('workspaceId');
    const before = await deps.defs.get('trackingPlans', ws, PLAN_ID);
    if (!before) throw new QueryError(404, 'no tracking plan');
    await deps.defs.remove('trackingPlans', ws, PLAN_ID);
    await audit(c, before, null);
    return c.body(null, 204);
  });

  app.get('/versions/:version', async (c) => {
    const v = c.req.param('version');
    if (!/^[1-9]\d{0,8}$/.test(v)) throw new QueryError(400, 'version: a positive integer');
    const def = await deps.defs.get('trackingPlanVersions', c.get('workspaceId'), `${PLAN_ID}@${v}`);
    if (!def) throw new QueryError(404, `no version ${v} of the tracking plan`);
    return c.json(def);
  });

  /**
   * Violations per event and property path in [from, to) (received at ingest): how many
   * events had each (distinct message ids, so redelivery never counts twice), by the mode
   * they met, and when last seen; `event` narrows to one event name (`$identify`, `$group`
   * for traits of those calls).
   */
  app.get('/violations', async (c) => {
    const ws = c.get('workspaceId');
    const range = parseRange(c.req.query('from'), c.req.query('to'), deps.analytics.maxRangeDays, deps.now());
    const event = textFilter(c, 'event');
    const params = new SqlParams();
    const where = [
      `workspace_id = ${params.bind(ws, 'String')}`,
      `at >= fromUnixTimestamp64Milli(${params.bind(range.fromMs, 'Int64')}, 'UTC')`,
      `at < fromUnixTimestamp64Milli(${params.bind(range.toMs, 'Int64')}, 'UTC')`,
    ];
    if (event !== undefined) where.push(`event = ${params.bind(event, 'String')}`);
    const ctx = { clickhouse: deps.clickhouse, log: deps.log, limits: deps.analytics, workspaceId: ws };
    const [byPath, byEvent] = await Promise.all([
      runAnalyticsQuery<Record<string, unknown>>(
        ctx,
        'tracking-plan-violations',
        `SELECT event, path, keyword, uniqExact(message_id) AS count,
           uniqExactIf(message_id, mode = 'allow') AS allowed,
           uniqExactIf(message_id, mode = 'flag') AS flagged,
           uniqExactIf(message_id, mode = 'quarantine') AS quarantined,
           toUnixTimestamp64Milli(max(at)) AS last
         FROM tracking_plan_violations
         WHERE ${where.join(' AND ')}
         GROUP BY event, path, keyword
         ORDER BY count DESC, event, path, keyword
         LIMIT 1000`,
        params,
      ),
      runAnalyticsQuery<Record<string, unknown>>(
        ctx,
        'tracking-plan-violations-events',
        `SELECT event, uniqExact(message_id) AS count, toUnixTimestamp64Milli(max(at)) AS last
         FROM tracking_plan_violations
         WHERE ${where.join(' AND ')}
         GROUP BY event
         ORDER BY count DESC, event
         LIMIT 1000`,
        params,
      ),
    ]);
    return c.json({
      from: new Date(range.fromMs).toISOString(),
      to: new Date(range.toMs).toISOString(),
      events: byEvent.map((r) => ({
        event: String(r.event),
        count: Number(r.count),
        lastSeen: isoOf(r.last),
      })),
      violations: byPath.map((r) => ({
        event: String(r.event),
        path: String(r.path),
        keyword: String(r.keyword),
        count: Number(r.count),
        byMode: { allow: Number(r.allowed), flag: Number(r.flagged), quarantine: Number(r.quarantined) },
        lastSeen: isoOf(r.last),
      })),
    });
  });

  /** Quarantined events, newest first, paged by cursor; `status` quarantined (default), replayed or all. */
  app.get('/quarantine', async (c) => {
    const ws = c.get('workspaceId');
    const range = parseRange(c.req.query('from'), c.req.query('to'), deps.analytics.maxRangeDays, deps.now());
    const event = textFilter(c, 'event');
    const status = c.req.query('status') ?? 'quarantined';
    if (!['quarantined', 'replayed', 'all'].includes(status))
      throw new QueryError(400, 'status: quarantined, replayed or all');
    const scope = JSON.stringify([c.req.path, ws, c.req.query('from'), c.req.query('to'), event, status]);
    const build = (): KeysetQuery => {
      const params = new SqlParams();
      const where: string[] = [];
      if (event !== undefined) where.push(`event = ${params.bind(event, 'String')}`);
      if (status !== 'all') where.push(`status = ${params.bind(status, 'String')}`);
      return {
        kind: 'tracking-plan-quarantine',
        // the row as last written (a replay writes it again with a higher version)
        table: `(SELECT * FROM quarantined_events FINAL WHERE workspace_id = ${params.bind(ws, 'String')})`,
        columns:
          'message_id, type, event, plan_version, reason, violations, event_json, status, toUnixTimestamp64Milli(replayed_at) AS replayed',
        identity: 'message_id',
        where,
        params,
        workspaceId: ws,
        fromMs: range.fromMs,
        toMs: range.toMs,
      };
    };
    return jsonPage(c, deps, build, scope, (r) => ({
      messageId: String(r.message_id),
      receivedAt: isoOf(r._t),
      type: String(r.type),
      event: String(r.event),
      planVersion: Number(r.plan_version),
      reason: String(r.reason),
      violations: parseJson(r.violations) ?? [],
      status: String(r.status),
      replayedAt: r.replayed === null || r.replayed === undefined ? null : isoOf(r.replayed),
      payload: parseJson(r.event_json),
    }));
  });

  /**
   * Re-checks quarantined events (in [from, to), of one event name when given) against the
   * plan as it is now, as if they arrived now: an event without violations (or every event,
   * when the plan was deleted or is no longer in quarantine mode; in flag mode with its
   * violations attached) goes to cdp.events with its original messageId and is marked
   * replayed; the others stay. One replay per workspace at a time (a Redis lock; a second
   * gets 409). Events are marked only after Kafka acknowledged them: after a crash between
   * the two, the next replay sends them again, and the pipeline drops the repeat by messageId.
   */
  app.post('/replay', async (c) => {
    const ws = c.get('workspaceId');
    if (!deps.producer) throw new QueryError(503, 'replay needs Kafka: this query service has no producer');
    const producer = deps.producer;
    const text = await c.req.text();
    let body: Record<string, unknown> = {};
    if (text.trim()) {
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch (err) {
        throw new QueryError(400, `malformed JSON: ${(err as Error).message}`);
      }
      if (!body || typeof body !== 'object' || Array.isArray(body))
        throw new QueryError(400, 'body: a JSON object');
    }
    for (const k of Object.keys(body))
      if (!['from', 'to', 'event'].includes(k)) throw new QueryError(400, `${k}: unknown field`);
    const str = (k: string) => {
      const v = body[k];
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'string' || v.length === 0 || v.length > 512)
        throw new QueryError(400, `${k}: a string`);
      return v;
    };
    const to = str('to');
    const from = str('from');
    const event = str('event');
    // any age by default: quarantined events wait as long as the plan stays wrong
    const toMs =
      to === undefined ? deps.now().getTime() + 1 : parseRange(undefined, to, 1e6, deps.now()).toMs;
    const fromMs = from === undefined ? 0 : parseRange(from, to, 1e6, deps.now()).fromMs;

    const lockKey = keys.trackingPlanReplay(ws);
    const token = randomUUID();
    const got = await deps.redis.set(lockKey, token, 'PX', REPLAY_LOCK_MS, 'NX');
    if (got !== 'OK')
      throw new QueryError(409, 'a replay of this workspace is running: try again when it ends', 5);
    try {
      const stored = await deps.defs.get('trackingPlans', ws, PLAN_ID);
      const plan = stored ? compilePlan(stored) : undefined;
      const eventsTopic = topics(deps.topicPrefix ?? '').events;
      let replayed = 0;
      let stillInvalid = 0;
      let after: { t: number; id: string } | undefined;
      let more = false;
      for (;;) {
        if (replayed + stillInvalid >= REPLAY_MAX) {
          more = true;
          break;
        }
        const rows = await readQuarantined(deps, ws, { fromMs, toMs, event, after });
        if (rows.length === 0) break;
        const last = rows[rows.length - 1]!;
        after = { t: Number(last.t), id: String(last.message_id) };
        const out: OutgoingMessage[] = [];
        const done: unknown[][] = [];
        const at = deps.now().getTime();
        for (const r of rows) {
          const value = String(r.event_json);
          let e: NormalizedEvent;
          try {
            e = JSON.parse(value) as NormalizedEvent;
          } catch {
            stillInvalid++;
            continue;
          }
          const verdict = release(plan, e);
          if (!verdict) {
            stillInvalid++;
            continue;
          }
          out.push({
            key: eventKey(e.workspaceId, e.userId ?? e.anonymousId ?? e.messageId),
            value: verdict === 'as-is' ? value : JSON.stringify(verdict),
          });
          done.push([
            r.workspace_id,
            r.message_id,
            Number(r.t),
            r.type,
            r.event,
            r.plan_version,
            r.reason,
            r.violations,
            value,
            'replayed',
            at,
            at,
          ]);
        }
        if (out.length > 0) {
          await producer.send(eventsTopic, out);
          await deps.clickhouse.insert({
            table: 'quarantined_events',
            format: 'JSONCompactEachRow',
            values: done,
            columns: [
              'workspace_id',
              'message_id',
              'at',
              'type',
              'event',
              'plan_version',
              'reason',
              'violations',
              'event_json',
              'status',
              'replayed_at',
              'version',
            ],
          });
          replayed += out.length;
        }
        await deps.redis.eval(RENEW, 1, lockKey, token, String(REPLAY_LOCK_MS));
        if (rows.length < REPLAY_PAGE) break;
      }
      deps.log.info({ workspaceId: ws, replayed, stillInvalid, more }, 'quarantine_replayed');
      return c.json({ replayed, stillInvalid, more, planVersion: stored?.version ?? null });
    } finally {
      await deps.redis.eval(RELEASE, 1, lockKey, token).catch(() => {});
    }
  });

  return app;
}

/**
 * Whether the current plan lets a quarantined event through: 'as-is' (no plan, no
 * violations, or allow mode), the event with its violations attached (flag mode), or
 * undefined (still violating a plan in quarantine mode).
 */
function release(plan: CompiledPlan | undefined, e: NormalizedEvent): 'as-is' | NormalizedEvent | undefined {
  if (!plan) return 'as-is';
  const violations = plan.check(e);
  if (!violations || plan.mode === 'allow') return 'as-is';
  if (plan.mode === 'flag') return { ...e, context: { ...e.context, violations } };
  return undefined;
}

async function readQuarantined(
  deps: TrackingPlanDeps,
  ws: string,
  q: { fromMs: number; toMs: number; event?: string; after?: { t: number; id: string } },
): Promise<Record<string, unknown>[]> {
  const p = new SqlParams();
  const where = [
    `workspace_id = ${p.bind(ws, 'String')}`,
    `status = 'quarantined'`,
    `at >= fromUnixTimestamp64Milli(${p.bind(q.fromMs, 'Int64')}, 'UTC')`,
    `at < fromUnixTimestamp64Milli(${p.bind(q.toMs, 'Int64')}, 'UTC')`,
  ];
  if (q.event !== undefined) where.push(`event = ${p.bind(q.event, 'String')}`);
  if (q.after)
    where.push(
      `(at, message_id) > (fromUnixTimestamp64Milli(${p.bind(q.after.t, 'Int64')}, 'UTC'), ${p.bind(q.after.id, 'String')})`,
    );
  const rs = await deps.clickhouse.query({
    query: `SELECT workspace_id, message_id, toUnixTimestamp64Milli(at) AS t, type, event, plan_version, reason,
        violations, event_json
      FROM quarantined_events FINAL
      WHERE ${where.join(' AND ')}
      ORDER BY at, message_id
      LIMIT ${REPLAY_PAGE}`,
    query_params: p.values,
    format: 'JSONEachRow',
  });
  return rs.json<Record<string, unknown>>();
}

/** A deleted plan leaves its versions: the next plan's version follows the highest one. */
async function nextVersionAfterDelete(defs: DefinitionStore, ws: string): Promise<number> {
  let max = 0;
  for (const v of await defs.list('trackingPlanVersions', ws)) max = Math.max(max, v.version);
  return max + 1;
}

function parseJson(s: unknown): unknown {
  if (s === null || s === undefined || s === '') return null;
  try {
    return JSON.parse(String(s));
  } catch {
    return String(s);
  }
}
