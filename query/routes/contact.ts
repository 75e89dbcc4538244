// Contact preferences: consent per profile, channel and purpose, and the workspace's
// suppression list. Activation reads both at send time (schemas/contact.ts, redis-keys.ts).
import { type Static, Type } from '@sinclair/typebox';
import { Hono } from 'hono';
import { survivorOf } from '../../profiles/read.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { Redis } from '../../runtime/redis.ts';
import { type ConsentSource, logConsent, storeConsent } from '../../schemas/consent-log.ts';
import { parseConsentValue, parseSuppressionMember, suppressionMember } from '../../schemas/contact.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { actorOf, recordAudit } from '../audit.ts';
import type { QueryEnv } from '../context.ts';
import { type DoubleOptIn, readDoubleOptIn } from '../double-opt-in.ts';
import { QueryError } from '../query-error.ts';
import { validate } from '../validate.ts';

const Scope = Type.String({ pattern: '^(\\*|[a-z0-9_-]{1,40})$' });
export const ConsentInput = Type.Object(
  {
    /** `email`, `sms`, `push`, `webhook`, or `*` for every channel. */
    channel: Scope,
    /** A campaign purpose such as `marketing`, or `*` (default) for every purpose. */
    purpose: Type.Optional(Scope),
    subscribed: Type.Boolean(),
    /**
     * Double opt-in: record the grant as `pending` and mail the person a confirmation link
     * (needs `subscribed: true`, a channel and a purpose, and `text`).
     */
    confirm: Type.Optional(Type.Boolean()),
    /** The exact text the person agreed to (kept with the record; required with `confirm`). */
    text: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
  },
  { additionalProperties: false },
);
export const ConsentBody = Type.Union([
  ConsentInput,
  Type.Object(
    { consents: Type.Array(ConsentInput, { minItems: 1, maxItems: 50 }) },
    { additionalProperties: false },
  ),
]);

export const SuppressionInput = Type.Object(
  {
    email: Type.Optional(Type.String({ minLength: 3, maxLength: 320 })),
    phone: Type.Optional(Type.String({ minLength: 4, maxLength: 32 })),
    profileId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    /** A push device token (activation adds the ones a provider calls unregistered). */
    deviceToken: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  },
  { additionalProperties: false },
);

export async function readConsent(redis: Redis, prefix: string, ws: string, pid: string) {
  const all = await redis.hgetall(workspaceKeys(prefix, ws).consent(pid));
  return Object.entries(all)
    .map(([field, v]) => {
      const [channel, purpose] = field.split(':');
      return { channel: channel!, purpose: purpose!, ...parseConsentValue(v) };
    })
    .sort((a, b) => `${a.channel}:${a.purpose}`.localeCompare(`${b.channel}:${b.purpose}`));
}

/**
 * Records consent decisions: in Redis on the surviving profile (followed atomically, so a
 * merge racing the write cannot strand it on a merged-away id), then in ClickHouse
 * consent_log with their source. Redis first: a decision is honoured even when the log
 * insert fails (the caller then answers an error and a retry writes the same again).
 * Null when the profile was erased: nothing is written or logged.
 */
export async function writeConsent(
  deps: { redis: Redis; clickhouse: ClickHouseClient; redisPrefix: string },
  ws: string,
  pid: string,
  entries: Array<Static<typeof ConsentInput>>,
  atMs: number,
  from: ConsentSource,
): Promise<string | null> {
  const decisions = entries.map((e) => ({
    channel: e.channel,
    purpose: e.purpose ?? '*',
    subscribed: e.subscribed,
  }));
  const person = await storeConsent(deps.redis, deps.redisPrefix, ws, pid, decisions, atMs, from.source);
  if (!person) return null; // erased: nothing is kept about them, nothing is sent to them
  await logConsent(deps.clickhouse, ws, person, decisions, atMs, from);
  return person.profileId;
}

/** A consent_log row as the history lists it. */
interface HistoryRow {
  at: string;
  profile_id: string;
  channel: string;
  purpose: string;
  subscribed: number;
  status: string;
  source: string;
  actor: string;
  campaign_id: string;
  ip: string;
  user_agent: string;
  text: string;
  ref: string;
}

/**
 * The surviving profile id of `id` in the workspace (merges followed), or a 404 when the
 * workspace has no such profile (another workspace's id, an unknown or erased one): the test
 * GET /v1/profiles/{id} makes (profiles/read.ts readProfile: the profile's hash has its id).
 */
async function profileIn(redis: Redis, prefix: string, ws: string, id: string): Promise<string> {
  const k = workspaceKeys(prefix, ws);
  const pid = await survivorOf(redis, k, id);
  if (!(await redis.hget(k.profile(pid), 'id'))) throw new QueryError(404, `no profile ${id}`);
  return pid;
}

export function consentRoutes(deps: {
  redis: Redis;
  clickhouse: ClickHouseClient;
  redisPrefix: string;
  now: () => Date;
  /** Double opt-in (query/double-opt-in.ts): `confirm: true` entries need it. */
  optIn?: DoubleOptIn;
}) {
  const app = new Hono<QueryEnv>();
  // every logged decision on the person (their profile and the ids merged into it, or rows
  // naming one of their identifiers), newest first
  app.get('/:id/consent/history', async (c) => {
    const ws = c.get('workspaceId');
    const pid = await profileIn(deps.redis, deps.redisPrefix, ws, c.req.param('id'));
    const k = workspaceKeys(deps.redisPrefix, ws);
    const [merged, ids] = await Promise.all([
      deps.redis.smembers(`${k.profile(pid)}:merged`),
      deps.redis.smembers(k.profileIdentities(pid)),
    ]);
    const limit = Math.min(1000, Math.max(1, Number(c.req.query('limit') ?? 100) || 100));
    const channel = c.req.query('channel');
    const purpose = c.req.query('purpose');
    const rs = await deps.clickhouse.query({
      query: `SELECT toString(at) AS at, profile_id, channel, purpose, subscribed, status, source, actor,
                     campaign_id, ip, user_agent, text, ref
              FROM consent_log
              WHERE workspace_id = {ws:String}
                AND (profile_id IN {pids:Array(String)} OR hasAny(identifiers, {ids:Array(String)}))
                AND ({channel:String} = '' OR channel = {channel:String})
                AND ({purpose:String} = '' OR purpose = {purpose:String})
              ORDER BY at DESC, status = 'pending' ASC
              LIMIT {limit:UInt32}`,
      query_params: {
        ws,
        pids: [pid, ...merged],
        ids,
        channel: channel ?? '',
        purpose: purpose ?? '',
        limit,
      },
      format: 'JSONEachRow',
    });
    const rows = await rs.json<HistoryRow>();
    return c.json({
      profileId: pid,
      history: rows.map((r) => ({
        at: new Date(`${r.at.replace(' ', 'T')}Z`).toISOString(),
        profileId: r.profile_id,
        channel: r.channel,
        purpose: r.purpose,
        status: r.status || (Number(r.subscribed) === 1 ? 'subscribed' : 'revoked'),
        subscribed: Number(r.subscribed) === 1,
        source: r.source,
        actor: r.actor,
        campaignId: r.campaign_id || undefined,
        ip: r.ip || undefined,
        userAgent: r.user_agent || undefined,
        text: r.text || undefined,
        confirmation: r.ref || undefined,
      })),
    });
  });
  app.get('/:id/consent', async (c) => {
    const ws = c.get('workspaceId');
    const pid = await profileIn(deps.redis, deps.redisPrefix, ws, c.req.param('id'));
    return c.json({ profileId: pid, consents: await readConsent(deps.redis, deps.redisPrefix, ws, pid) });
  });
  app.put('/:id/consent', validate(ConsentBody), async (c) => {
    const ws = c.get('workspaceId');
    const body = c.req.valid('json');
    const all = 'consents' in body ? body.consents : [body];
    all.forEach((e, i) => {
      const at = 'consents' in body ? `consents.${i}` : 'body';
      if (e.confirm && (!e.subscribed || e.channel === '*' || !e.purpose || e.purpose === '*' || !e.text))
        throw new QueryError(
          400,
          `${at}.confirm: a confirmation is for a grant (subscribed: true) of one channel and purpose, with the text the person agreed to`,
        );
    });
    if (all.some((e) => e.confirm) && !deps.optIn)
      throw new QueryError(503, 'double opt-in is not available in this process');
    const entries = all.filter((e) => !e.confirm);
    const pid = await profileIn(deps.redis, deps.redisPrefix, ws, c.req.param('id'));
    const before = await readConsent(deps.redis, deps.redisPrefix, ws, pid);
    const actor = actorOf(c.get('apiKey'));
    const at = deps.now().getTime();
    // the write follows merges itself (one may land after the read above)
    let target: string | null = pid;
    if (entries.length > 0) target = await writeConsent(deps, ws, pid, entries, at, { source: 'api', actor });
    const confirmations = [];
    for (const e of all.filter((x) => x.confirm)) {
      if (target === null) break;
      const r = await deps.optIn!.request(
        ws,
        target,
        {
          channel: e.channel,
          purpose: e.purpose!,
          text: e.text!,
          source: 'api',
          actor,
          at,
        },
        (await readDoubleOptIn(deps.redis, deps.redisPrefix, ws)) ?? { purposes: [e.purpose!] },
      );
      if (r.status === 'erased') target = null;
      else {
        target = r.profileId;
        confirmations.push({ channel: e.channel, purpose: e.purpose, ...r });
      }
    }
    if (target === null) throw new QueryError(404, `profile ${c.req.param('id')} was erased`);
    const after = await readConsent(deps.redis, deps.redisPrefix, ws, target);
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor,
        action: 'update',
        entityType: 'consent',
        entityId: target,
        before,
        after,
      },
      deps.now(),
    );
    return c.json(
      confirmations.length > 0
        ? { profileId: target, consents: after, confirmations }
        : { profileId: target, consents: after },
    );
  });
  return app;
}

export function suppressionRoutes(deps: {
  redis: Redis;
  clickhouse: ClickHouseClient;
  redisPrefix: string;
  now: () => Date;
}) {
  const app = new Hono<QueryEnv>();
  const members = (body: Static<typeof SuppressionInput>) => {
    const out: string[] = [];
    for (const kind of ['email', 'phone', 'profileId'] as const) {
      const v = body[kind];
      if (v) out.push(suppressionMember(kind, v));
    }
    if (body.deviceToken) out.push(suppressionMember('device', body.deviceToken));
    if (out.length === 0) throw new QueryError(400, 'body: give email, phone, profileId or deviceToken');
    return out;
  };
  const audit = (c: { get(k: 'workspaceId' | 'apiKey'): string }, action: 'create' | 'delete', m: string[]) =>
    recordAudit(
      deps.clickhouse,
      {
        workspaceId: c.get('workspaceId'),
        actor: actorOf(c.get('apiKey')),
        action,
        entityType: 'suppression',
        entityId: m.join(','),
        before: action === 'delete' ? m : null,
        after: action === 'create' ? m : null,
      },
      deps.now(),
    );
  const key = (ws: string) => workspaceKeys(deps.redisPrefix, ws).suppressions;

  app.get('/', async (c) => {
    const limit = Math.min(1000, Math.max(1, Number(c.req.query('limit') ?? 100) || 100));
    const cursor = c.req.query('cursor') ?? '0';
    const [next, page] = await deps.redis.sscan(key(c.get('workspaceId')), cursor, 'COUNT', limit);
    return c.json({ suppressions: page.map(parseSuppressionMember), cursor: next === '0' ? null : next });
  });
  app.post('/', validate(SuppressionInput), async (c) => {
    const body = c.req.valid('json');
    const m = members(body);
    await deps.redis.sadd(key(c.get('workspaceId')), ...m);
    await audit(c, 'create', m);
    return c.json({ suppressions: m.map(parseSuppressionMember) }, 201);
  });
  // DELETE /v1/suppressions?email=…|phone=…|profileId=…|deviceToken=…
  app.delete('/', async (c) => {
    const q = {
      email: c.req.query('email'),
      phone: c.req.query('phone'),
      profileId: c.req.query('profileId'),
      deviceToken: c.req.query('deviceToken'),
    };
    const m = members(q);
    const removed = await deps.redis.srem(key(c.get('workspaceId')), ...m);
    if (removed === 0) throw new QueryError(404, 'not on the suppression list');
    await audit(c, 'delete', m);
    return c.body(null, 204);
  });
  return app;
}
