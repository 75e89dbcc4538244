import { type Context, Hono } from 'hono';
import { stream } from 'hono/streaming';
import { type Profile, readProfile } from '../../profiles/read.ts';
import { readComputed } from '../../profiles/values.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { DefinitionStore } from '../../runtime/definitions.ts';
import type { Logger } from '../../runtime/log.ts';
import type { Redis } from '../../runtime/redis.ts';
import type { ErasureJob } from '../../schemas/erasure.ts';
import { type IdentityKind, workspaceKeys } from '../../schemas/redis-keys.ts';
import { actorOf } from '../audit.ts';
import type { QueryEnv } from '../context.ts';
import { createErasure, type ErasureJobDeps, erasureOfProfile, runErasure } from '../erasure-job.ts';
import { exportProfile } from '../export-profile.ts';
import { QueryError } from '../query-error.ts';

/** The `limit` of a profile's history routes: 1 to 1000, 100 when absent. */
export function historyLimit(raw: string | undefined): number {
  const limit = Number(raw ?? '100');
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw new QueryError(400, 'limit: an integer from 1 to 1000');
  return limit;
}

/**
 * A person's events, newest first, one row per messageId. History is stitched at query
 * time: every identifier the profile holds now, so events sent before a merge under
 * another id belong to the person too. `columns` is our own constant SQL list.
 */
export async function stitchedEvents(
  clickhouse: ClickHouseClient,
  ws: string,
  profile: { userIds: string[]; anonymousIds: string[] },
  columns: string,
  limit: number,
): Promise<Record<string, string>[]> {
  const rs = await clickhouse.query({
    query: `SELECT ${columns}
            FROM events
            WHERE workspace_id = {ws:String}
              AND (user_id IN {uids:Array(String)} OR anonymous_id IN {aids:Array(String)})
            ORDER BY timestamp DESC, message_id
            LIMIT 1 BY message_id
            LIMIT {limit:UInt32}`,
    query_params: { ws, uids: profile.userIds, aids: profile.anonymousIds, limit },
    format: 'JSONEachRow',
  });
  return rs.json<Record<string, string>>();
}

export function profileRoutes(deps: {
  redis: Redis;
  clickhouse: ClickHouseClient;
  defs: DefinitionStore;
  redisPrefix: string;
  log: Logger;
  now: () => Date;
  /** When an erasure's sweep runs after its Redis step (erasure-job.ts). */
  erasureSweepDelayMs?: number;
}) {
  const app = new Hono<QueryEnv>();
  /** The profile as answered: with its computed traits and lead scores as of now. */
  const withComputed = async (ws: string, profile: Profile) => ({
    ...profile,
    ...(await readComputed({
      redis: deps.redis,
      defs: deps.defs,
      prefix: deps.redisPrefix,
      workspaceId: ws,
      profileId: profile.id,
      traits: profile.traits,
      nowMs: deps.now().getTime(),
    })),
  });
  const lookups: Array<[string, IdentityKind]> = [
    ['userId', 'user'],
    ['anonymousId', 'anon'],
    ['email', 'email'],
  ];

  /** The profile id named by exactly one of the lookup parameters (undefined: none holds it). */
  const lookup = async (c: Context<QueryEnv>, ws: string) => {
    const given: Array<[string, IdentityKind]> = lookups.filter(([q]) => c.req.query(q) !== undefined);
    const ext = c.req.query('externalId');
    if (ext !== undefined) {
      // externalId=<type>:<id>
      const m = /^([a-z0-9_]{1,32}):(.+)$/s.exec(ext);
      if (!m) throw new QueryError(400, 'externalId: give it as <type>:<id>, e.g. crm_id:42');
      given.push(['externalId', `ext.${m[1]}`]);
    }
    if (given.length !== 1)
      throw new QueryError(400, 'give exactly one of userId, anonymousId, email or externalId');
    const [param, kind] = given[0]!;
    let value = param === 'externalId' ? ext!.slice(ext!.indexOf(':') + 1) : c.req.query(param)!;
    if (kind === 'email') value = value.trim().toLowerCase();
    if (value.length === 0 || value.length > 512)
      throw new QueryError(400, `${param}: must be 1 to 512 characters`);
    const pid = await deps.redis.get(workspaceKeys(deps.redisPrefix, ws).identity(kind, value));
    return { param, value, pid };
  };

  app.get('/', async (c) => {
    const ws = c.get('workspaceId');
    const { param, value, pid } = await lookup(c, ws);
    const profile = pid && (await readProfile(deps.redis, deps.redisPrefix, ws, pid));
    if (!profile) throw new QueryError(404, `no profile with ${param} ${JSON.stringify(value)}`);
    return c.json(await withComputed(ws, profile));
  });

  app.get('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const profile = await readProfile(deps.redis, deps.redisPrefix, ws, c.req.param('id'));
    if (!profile) throw new QueryError(404, `no profile ${c.req.param('id')}`);
    return c.json(await withComputed(ws, profile));
  });

  const jobs: ErasureJobDeps = {
    redis: deps.redis,
    clickhouse: deps.clickhouse,
    defs: deps.defs,
    redisPrefix: deps.redisPrefix,
    log: deps.log,
    now: deps.now,
    sweepDelayMs: deps.erasureSweepDelayMs ?? 10_000,
  };
  /**
   * Starts (or resumes) the profile's erasure job and runs it as far as it goes now:
   * 200 when it is done, else 202 with the job to follow at its Location.
   */
  const erase = async (c: Context<QueryEnv>, ws: string, profileId: string) => {
    const created = await createErasure(jobs, ws, profileId, actorOf(c.get('apiKey')));
    return answerErasure(c, (await runErasure(jobs, ws, created.id)) ?? created);
  };
  const answerErasure = (c: Context<QueryEnv>, job: ErasureJob) => {
    c.header('location', `/v1/erasures/${job.id}`);
    return c.json(
      { erased: job.profileId, identities: job.counts.identities ?? 0, job },
      job.status === 'done' ? 200 : 202,
    );
  };

  app.delete('/', async (c) => {
    const ws = c.get('workspaceId');
    const { param, value, pid } = await lookup(c, ws);
    const profile = pid && (await readProfile(deps.redis, deps.redisPrefix, ws, pid));
    if (!profile) throw new QueryError(404, `no profile with ${param} ${JSON.stringify(value)}`);
    return erase(c, ws, profile.id);
  });

  app.delete('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const id = c.req.param('id');
    const profile = await readProfile(deps.redis, deps.redisPrefix, ws, id);
    if (profile) return erase(c, ws, profile.id);
    // erased already (or under way): the same job, resumed if unfinished
    const job = await erasureOfProfile(jobs, ws, id);
    if (!job) throw new QueryError(404, `no profile ${id}`);
    return answerErasure(c, job.status === 'done' ? job : ((await runErasure(jobs, ws, job.id)) ?? job));
  });

  app.get('/:id/export', async (c) => {
    const ws = c.get('workspaceId');
    const profile = await readProfile(deps.redis, deps.redisPrefix, ws, c.req.param('id'));
    if (!profile) throw new QueryError(404, `no profile ${c.req.param('id')}`);
    const full = await withComputed(ws, profile);
    c.header('content-type', 'application/x-ndjson; charset=utf-8');
    c.header('content-disposition', `attachment; filename="profile-${profile.id}.ndjson"`);
    return stream(c, async (s) => {
      for await (const line of exportProfile(deps, ws, full)) await s.write(line);
    });
  });

  app.get('/:id/events', async (c) => {
    const ws = c.get('workspaceId');
    const limit = historyLimit(c.req.query('limit'));
    const profile = await readProfile(deps.redis, deps.redisPrefix, ws, c.req.param('id'));
    if (!profile) throw new QueryError(404, `no profile ${c.req.param('id')}`);
    const rows = await stitchedEvents(
      deps.clickhouse,
      ws,
      profile,
      'message_id, type, event, name, user_id, anonymous_id, timestamp, received_at, properties, context',
      limit,
    );
    return c.json({
      profileId: profile.id,
      events: rows.map((r) => ({
        messageId: r.message_id,
        type: r.type,
        event: r.event || undefined,
        name: r.name || undefined,
        userId: r.user_id || null,
        anonymousId: r.anonymous_id || null,
        timestamp: toIso(r.timestamp!),
        receivedAt: toIso(r.received_at!),
        properties: JSON.parse(r.properties || '{}'),
        context: JSON.parse(r.context || '{}'),
      })),
    });
  });
  return app;
}

/** ClickHouse DateTime64 text ("2026-01-02 03:04:05.678") in UTC to ISO 8601. */
export function toIso(s: string): string {
  return new Date(`${s.replace(' ', 'T')}Z`).toISOString();
}
