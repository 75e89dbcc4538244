// Settings of the caller's workspace, kept in Redis where the processor's apply script reads
// them (schemas/redis-keys.ts `settings`): for now what client (public) write keys may change
// on a known person. A setting left unset follows the deployment default.
import { Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Hono } from 'hono';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { ClientKeysMode } from '../../runtime/config.ts';
import type { Redis } from '../../runtime/redis.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { type QueryEnv, readJson } from '../app.ts';
import { actorOf, recordAudit } from '../audit.ts';
import { QueryError } from '../query-error.ts';

const Mode = Type.Union([Type.Literal('restricted'), Type.Literal('trusted')]);
const UpdateInput = TypeCompiler.Compile(
  Type.Object({ clientKeys: Type.Union([Mode, Type.Null()]) }, { additionalProperties: false }),
);

export interface WorkspaceSettings {
  /** In effect: the workspace's own choice, else the deployment default. */
  clientKeys: ClientKeysMode;
  /** Where it comes from. */
  clientKeysSource: 'workspace' | 'default';
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
    const own = await deps.redis.hget(workspaceKeys(deps.redisPrefix, ws).settings, 'clientKeys');
    return own === 'restricted' || own === 'trusted'
      ? { clientKeys: own, clientKeysSource: 'workspace' }
      : { clientKeys: deps.clientKeysDefault ?? 'restricted', clientKeysSource: 'default' };
  };

  app.get('/', async (c) => c.json(await read(c.get('workspaceId'))));

  /** `{clientKeys: "restricted"|"trusted"}`, or `null` to follow the deployment default again. */
  app.put('/', async (c) => {
    const ws = c.get('workspaceId');
    const body = await readJson(c.req.raw);
    if (!UpdateInput.Check(body)) {
      const e = UpdateInput.Errors(body).First();
      throw new QueryError(
        400,
        `${e?.path.replace(/^\//, '') || 'body'}: ${e?.message ?? 'invalid'} (clientKeys: "restricted", "trusted" or null)`,
      );
    }
    const before = await read(ws);
    const key = workspaceKeys(deps.redisPrefix, ws).settings;
    if (body.clientKeys === null) await deps.redis.hdel(key, 'clientKeys');
    else await deps.redis.hset(key, 'clientKeys', body.clientKeys);
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
