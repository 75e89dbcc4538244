// GET /v1/profiles/{id}/timeline: one list, newest first, of what the person did (events
// from the ClickHouse history, across all its identifiers), what they were sent (the
// activation ledger: sent, suppressed with the reason, failed, ...), when they entered
// the segments they are in now (Redis), and their journey steps (ClickHouse journey_steps).
import { Hono } from 'hono';
import { readProfile } from '../../profiles/read.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { Redis } from '../../runtime/redis.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import type { QueryEnv } from '../context.ts';
import { QueryError } from '../query-error.ts';
import { historyLimit, stitchedEvents, toIso } from './profiles.ts';

export type TimelineItem =
  | {
      kind: 'event';
      at: string;
      messageId: string;
      type: string;
      event: string | null;
      name: string | null;
      properties: Record<string, unknown>;
    }
  | {
      kind: 'send';
      at: string;
      campaignId: string;
      channel: string;
      outcome: string;
      reason: string | null;
      attempt: number;
      sendKey: string;
    }
  | { kind: 'segment'; at: string; segmentId: string; change: 'entered' }
  | {
      kind: 'journey';
      at: string;
      journeyId: string;
      version: number;
      run: number;
      nodeId: string;
      step: string;
      detail: string;
    };

export function profileTimelineRoutes(deps: {
  redis: Redis;
  clickhouse: ClickHouseClient;
  redisPrefix: string;
}) {
  const app = new Hono<QueryEnv>();
  app.get('/:id/timeline', async (c) => {
    const ws = c.get('workspaceId');
    const limit = historyLimit(c.req.query('limit'));
    const profile = await readProfile(deps.redis, deps.redisPrefix, ws, c.req.param('id'));
    if (!profile) throw new QueryError(404, `no profile ${c.req.param('id')}`);

    const events = await stitchedEvents(
      deps.clickhouse,
      ws,
      profile,
      'message_id, type, event, name, timestamp, properties',
      limit,
    );
    // a redelivered ledger batch can repeat a decision: one row per send key and outcome
    const sends = await deps.clickhouse.query({
      query: `SELECT toString(min(at)) AS at, campaign_id, channel, outcome, any(reason) AS reason,
                     max(attempt) AS attempt, send_key
              FROM activation_ledger
              WHERE workspace_id = {ws:String} AND profile_id = {pid:String}
              GROUP BY send_key, campaign_id, channel, outcome
              ORDER BY at DESC
              LIMIT {limit:UInt32}`,
      query_params: { ws, pid: profile.id, limit },
      format: 'JSONEachRow',
    });
    // the steps of the person's journey runs, under this id or one merged into it
    const merged = await deps.redis.smembers(
      `${workspaceKeys(deps.redisPrefix, ws).profile(profile.id)}:merged`,
    );
    const journeySteps = await deps.clickhouse.query({
      query: `SELECT toString(at) AS at, journey_id, version, run, node_id, step, detail
              FROM journey_steps
              WHERE workspace_id = {ws:String} AND profile_id IN {pids:Array(String)}
              ORDER BY at DESC
              LIMIT {limit:UInt32}`,
      query_params: { ws, pids: [profile.id, ...merged], limit },
      format: 'JSONEachRow',
    });
    const keys = workspaceKeys(deps.redisPrefix, ws);
    const pipe = deps.redis.pipeline();
    for (const s of profile.segments) pipe.zscore(keys.segmentMembers(s), profile.id);
    const entered = ((await pipe.exec()) ?? []).map(([, v]) => (v === null ? null : Number(v)));

    const items: TimelineItem[] = [
      ...events.map(
        (r): TimelineItem => ({
          kind: 'event',
          at: toIso(r.timestamp!),
          messageId: r.message_id!,
          type: r.type!,
          event: r.event || null,
          name: r.name || null,
          properties: JSON.parse(r.properties || '{}') as Record<string, unknown>,
        }),
      ),
      ...(await sends.json<Record<string, string | number>>()).map(
        (r): TimelineItem => ({
          kind: 'send',
          at: toIso(String(r.at)),
          campaignId: String(r.campaign_id),
          channel: String(r.channel),
          outcome: String(r.outcome),
          reason: r.reason ? String(r.reason) : null,
          attempt: Number(r.attempt),
          sendKey: String(r.send_key),
        }),
      ),
      ...(await journeySteps.json<Record<string, string | number>>()).map(
        (r): TimelineItem => ({
          kind: 'journey',
          at: toIso(String(r.at)),
          journeyId: String(r.journey_id),
          version: Number(r.version),
          run: Number(r.run),
          nodeId: String(r.node_id),
          step: String(r.step),
          detail: String(r.detail),
        }),
      ),
      ...profile.segments.flatMap((segmentId, i): TimelineItem[] => {
        const ms = entered[i];
        return ms == null
          ? []
          : [{ kind: 'segment', at: new Date(ms).toISOString(), segmentId, change: 'entered' }];
      }),
    ];
    items.sort((a, b) => b.at.localeCompare(a.at));
    return c.json({ profileId: profile.id, items: items.slice(0, limit) });
  });
  return app;
}
