// Settings of the caller's workspace, kept in Redis where the processor's apply script reads
// them (schemas/redis-keys.ts `settings`): what client (public) write keys may change on a
// known person, and which consent purposes need a double opt-in confirmation (with the
// link's lifetime and the mail: schemas/double-opt-in.ts). A setting left unset follows the
// deployment default; a PUT changes the settings it names and is audited.
import { Type } from '@sinclair/typebox';
import { Hono } from 'hono';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { ClientKeysMode } from '../../runtime/config.ts';
import type { Redis } from '../../runtime/redis.ts';
import { DoubleOptInSettings, doubleOptInCheck, doubleOptInError } from '../../schemas/double-opt-in.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { actorOf, recordAudit } from '../audit.ts';
import type { QueryEnv } from '../context.ts';
import { QueryError } from '../query-error.ts';
import { validate } from '../validate.ts';

const Mode = Type.Union([Type.Literal('restricted'), Type.Literal('trusted')]);
export const WorkspaceSettingsInput = Type.Object(
  {
    clientKeys: Type.Optional(
      Type.Union([Mode, Type.Null()], {
        description:
          '`restricted`: client keys cannot take over or rewrite known people; `trusted`: they act like server keys; null: the deployment default (CDP_CLIENT_KEYS)',
      }),
    ),
    doubleOptIn: Type.Optional(
      Type.Union([DoubleOptInSettings, Type.Null()], {
        description:
          'Double opt-in: {purposes, ttlHours?, from?, template?: {subject, text, html?}}, or null to turn it off. ' +
          'A purpose listed is opt-in: only a confirmed (or API) grant lets campaigns send on it',
      }),
    ),
  },
  { additionalProperties: false },
);
const SETTINGS_HINT =
  'clientKeys: "restricted", "trusted" or null; doubleOptIn: {purposes: [...], ttlHours?, from?, template?: {subject, text, html?}} or null';

export interface WorkspaceSettings {
  /** In effect: the workspace's own choice, else the deployment default. */
  clientKeys: ClientKeysMode;
  /** Where it comes from. */
  clientKeysSource: 'workspace' | 'default';
  /** Purposes whose grants need confirming by a link; null: none. */
  doubleOptIn: DoubleOptInSettings | null;
}

export function workspaceSettingsRoutes(deps: {
  redis: Redis;
  clickhouse: ClickHouseClient;
  redisPrefix: string;
  /** CDP_CLIENT_KEYS */
  clientKeysDefault?: ClientKeysMode;
  now: () => Date;
}) {
  const app = new Hono<QueryEnv>();
  const read = async (ws: string): Promise<WorkspaceSettings> => {
    const [own, doiRaw] = await deps.redis.hmget(
      workspaceKeys(deps.redisPrefix, ws).settings,
      'clientKeys',
      'doubleOptIn',
    );
    let doubleOptIn: DoubleOptInSettings | null = null;
    try {
      const v = doiRaw ? (JSON.parse(doiRaw) as unknown) : null;
      if (doubleOptInCheck.Check(v)) doubleOptIn = v;
    } catch {}
    return own === 'restricted' || own === 'trusted'
      ? { clientKeys: own, clientKeysSource: 'workspace', doubleOptIn }
      : { clientKeys: deps.clientKeysDefault ?? 'restricted', clientKeysSource: 'default', doubleOptIn };
  };

  app.get('/', async (c) => c.json(await read(c.get('workspaceId'))));

  /**
   * `{clientKeys: "restricted"|"trusted"|null}` (null: follow the deployment default again)
   * and/or `{doubleOptIn: {purposes, ttlHours?, from?, template?} | null}`.
   */
  app.put('/', validate(WorkspaceSettingsInput, { hint: SETTINGS_HINT }), async (c) => {
    const ws = c.get('workspaceId');
    const body = c.req.valid('json');
    if (body.clientKeys === undefined && body.doubleOptIn === undefined)
      throw new QueryError(400, 'body: give clientKeys or doubleOptIn');
    if (body.doubleOptIn) {
      const why = doubleOptInError(body.doubleOptIn);
      if (why) throw new QueryError(400, why);
    }
    const before = await read(ws);
    const key = workspaceKeys(deps.redisPrefix, ws).settings;
    if (body.clientKeys === null) await deps.redis.hdel(key, 'clientKeys');
    else if (body.clientKeys !== undefined) await deps.redis.hset(key, 'clientKeys', body.clientKeys);
    // optInPurposes: the list as the contact policy script reads it (`,a,b,`)
    if (body.doubleOptIn === null) await deps.redis.hdel(key, 'doubleOptIn', 'optInPurposes');
    else if (body.doubleOptIn !== undefined)
      await deps.redis.hset(
        key,
        'doubleOptIn',
        JSON.stringify(body.doubleOptIn),
        'optInPurposes',
        `,${body.doubleOptIn.purposes.join(',')},`,
      );
    const after = await read(ws);
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor: actorOf(c.get('apiKey')),
        action: 'update',
        entityType: 'workspace_settings',
        entityId: ws,
        before,
        after,
      },
      deps.now(),
    );
    return c.json(after);
  });
  return app;
}
