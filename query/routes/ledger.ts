// GET /v1/ledger: individual send decisions (ClickHouse activation_ledger: sent, suppressed
// and why, failed, retried, delayed), and GET /v1/ledger/journey-steps: the steps of journey
// runs (journey_steps). Newest first, filtered, paged by a keyset cursor, JSON or CSV
// (query/keyset-page.ts). Every value reaches ClickHouse as a bound parameter, and every
// query is held to the key's workspace.
import { type Context, Hono } from 'hono';
import { readProfile } from '../../profiles/read.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { Logger } from '../../runtime/log.ts';
import type { Redis } from '../../runtime/redis.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import type { AnalyticsLimits } from '../analytics/run-query.ts';
import { SqlParams } from '../analytics/sql-params.ts';
import type { QueryEnv } from '../context.ts';
import {
  csvStream,
  isoOf,
  jsonPage,
  type KeysetQuery,
  type PageDeps,
  parseRange,
  textFilter,
  wantsCsv,
} from '../keyset-page.ts';
import { QueryError } from '../query-error.ts';

const LEDGER_COLUMNS = `campaign_id, campaign_version, segment_id, segment_version, profile_id, epoch,
  channel, outcome, reason, attempt, status_code, latency_ms, provider_ms,
  if(isNull(not_before), '', toString(toUnixTimestamp64Milli(not_before))) AS not_before_ms,
  provider_id, send_key`;
// a decision written twice (a redelivered batch) is the same in all of these
const LEDGER_IDENTITY = 'send_key, campaign_id, profile_id, channel, outcome, reason, attempt, status_code';

const STEP_COLUMNS = 'journey_id, version, profile_id, run, node_id, step, detail, message_id';
const STEP_IDENTITY = 'journey_id, version, profile_id, run, node_id, step, detail, message_id';

export function ledgerRoutes(deps: {
  clickhouse: ClickHouseClient;
  redis: Redis;
  redisPrefix: string;
  log: Logger;
  analytics: AnalyticsLimits;
  now: () => Date;
}) {
  const app = new Hono<QueryEnv>();
  const page: PageDeps = deps;

  /**
   * The profile ids a `profileId` or `userId` filter stands for: the person's id now and the
   * ids merged into it (their earlier rows carry those). A userId nobody has matches no row.
   */
  const profileIds = async (c: Context<QueryEnv>, ws: string): Promise<string[] | undefined> => {
    const pid = textFilter(c, 'profileId');
    const uid = textFilter(c, 'userId');
    if (pid !== undefined && uid !== undefined)
      throw new QueryError(400, 'give profileId or userId, not both');
    const keys = workspaceKeys(deps.redisPrefix, ws);
    const id = pid ?? (uid === undefined ? undefined : await deps.redis.get(keys.identity('user', uid)));
    if (id === undefined) return undefined;
    if (id === null) return [];
    const profile = await readProfile(deps.redis, deps.redisPrefix, ws, id);
    if (!profile) return [id];
    const merged = await deps.redis.smembers(`${keys.profile(profile.id)}:merged`);
    return [...new Set([id, profile.id, ...merged])];
  };

  /** The route's filters, read once per request; `scope` binds a cursor to them. */
  const filters = async (c: Context<QueryEnv>, names: string[]) => {
    const ws = c.get('workspaceId');
    const range = parseRange(c.req.query('from'), c.req.query('to'), deps.analytics.maxRangeDays, deps.now());
    const values = Object.fromEntries(names.map((n) => [n, textFilter(c, n)]));
    const pids = await profileIds(c, ws);
    // the range as given: a default `to` (now) moves between pages, the cursor bounds them anyway
    const scope = JSON.stringify([
      c.req.path,
      ws,
      c.req.query('from'),
      c.req.query('to'),
      values,
      pids ?? null,
    ]);
    return { ws, range, values, pids, scope };
  };

  const query = (
    kind: string,
    table: string,
    columns: string,
    identity: string,
    f: Awaited<ReturnType<typeof filters>>,
    where: (p: SqlParams) => string[],
  ) => {
    return (): KeysetQuery => {
      const params = new SqlParams();
      const w = where(params);
      if (f.pids) w.push(`profile_id IN ${params.bind(f.pids, 'Array(String)')}`);
      return {
        kind,
        table,
        columns,
        identity,
        where: w,
        params,
        workspaceId: f.ws,
        fromMs: f.range.fromMs,
        toMs: f.range.toMs,
      };
    };
  };

  app.get('/', async (c) => {
    const f = await filters(c, ['campaignId', 'journeyId', 'outcome', 'reason', 'channel']);
    const v = f.values;
    const build = query('ledger', 'activation_ledger', LEDGER_COLUMNS, LEDGER_IDENTITY, f, (p) => {
      const w: string[] = [];
      if (v.campaignId) w.push(`campaign_id = ${p.bind(v.campaignId, 'String')}`);
      // a journey's sends are recorded under `<journeyId>@<version>.<nodeId>`
      if (v.journeyId) w.push(`startsWith(campaign_id, ${p.bind(`${v.journeyId}@`, 'String')})`);
      if (v.outcome) w.push(`outcome = ${p.bind(v.outcome, 'String')}`);
      if (v.reason) w.push(`reason = ${p.bind(v.reason, 'String')}`);
      if (v.channel) w.push(`channel = ${p.bind(v.channel, 'String')}`);
      return w;
    });
    if (wantsCsv(c))
      return csvStream(
        c,
        page,
        build,
        f.scope,
        LEDGER_CSV,
        (r) => [
          isoOf(r._t),
          String(r.campaign_id),
          Number(r.campaign_version),
          String(r.profile_id),
          String(r.channel),
          String(r.outcome),
          String(r.reason),
          Number(r.attempt),
          Number(r.status_code),
          Number(r.latency_ms),
          String(r.segment_id),
          String(r.send_key),
          String(r.provider_id),
        ],
        'ledger',
      );
    return jsonPage(c, page, build, f.scope, (r) => ({
      at: isoOf(r._t),
      campaignId: String(r.campaign_id),
      campaignVersion: Number(r.campaign_version),
      segmentId: String(r.segment_id),
      segmentVersion: Number(r.segment_version),
      profileId: String(r.profile_id),
      epoch: Number(r.epoch),
      channel: String(r.channel),
      outcome: String(r.outcome),
      reason: r.reason ? String(r.reason) : null,
      attempt: Number(r.attempt),
      statusCode: Number(r.status_code) || null,
      latencyMs: Number(r.latency_ms),
      providerMs: Number(r.provider_ms),
      notBefore: r.not_before_ms ? isoOf(r.not_before_ms) : null,
      providerId: r.provider_id ? String(r.provider_id) : null,
      sendKey: String(r.send_key),
    }));
  });

  app.get('/journey-steps', async (c) => {
    const f = await filters(c, ['journeyId', 'step', 'nodeId']);
    const v = f.values;
    const build = query('journey-steps', 'journey_steps', STEP_COLUMNS, STEP_IDENTITY, f, (p) => {
      const w: string[] = [];
      if (v.journeyId) w.push(`journey_id = ${p.bind(v.journeyId, 'String')}`);
      if (v.step) w.push(`step = ${p.bind(v.step, 'String')}`);
      if (v.nodeId) w.push(`node_id = ${p.bind(v.nodeId, 'String')}`);
      return w;
    });
    if (wantsCsv(c))
      return csvStream(
        c,
        page,
        build,
        f.scope,
        STEP_CSV,
        (r) => [
          isoOf(r._t),
          String(r.journey_id),
          Number(r.version),
          String(r.profile_id),
          Number(r.run),
          String(r.node_id),
          String(r.step),
          String(r.detail),
        ],
        'journey-steps',
      );
    return jsonPage(c, page, build, f.scope, (r) => ({
      at: isoOf(r._t),
      journeyId: String(r.journey_id),
      version: Number(r.version),
      profileId: String(r.profile_id),
      run: Number(r.run),
      nodeId: String(r.node_id),
      step: String(r.step),
      detail: String(r.detail),
      messageId: r.message_id ? String(r.message_id) : null,
    }));
  });
  return app;
}

const LEDGER_CSV = [
  'at',
  'campaign_id',
  'campaign_version',
  'profile_id',
  'channel',
  'outcome',
  'reason',
  'attempt',
  'status_code',
  'latency_ms',
  'segment_id',
  'send_key',
  'provider_id',
];
const STEP_CSV = ['at', 'journey_id', 'version', 'profile_id', 'run', 'node_id', 'step', 'detail'];
