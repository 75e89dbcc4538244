import { Type } from '@sinclair/typebox';
import { Hono } from 'hono';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { Redis } from '../../runtime/redis.ts';
import { actorOf, recordAudit } from '../audit.ts';
import { BiCredentialStore } from '../bi-sql/credentials.ts';
import type { QueryEnv } from '../context.ts';
import { QueryError } from '../query-error.ts';
import { validate } from '../validate.ts';

export const BiCredentialInput = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);

/**
 * Credentials for BI tools on the SQL endpoint (query/bi-sql/server.ts) of the caller's
 * workspace: create (the password is in this answer only), list, revoke. A revoked
 * credential is refused on its next query.
 */
export function biCredentialRoutes(deps: {
  clickhouse: ClickHouseClient;
  redis: Redis;
  redisPrefix: string;
  now: () => Date;
}) {
  const store = new BiCredentialStore(deps.redis, deps.redisPrefix);
  const app = new Hono<QueryEnv>();

  app.post('/', validate(BiCredentialInput), async (c) => {
    const ws = c.get('workspaceId');
    const body = c.req.valid('json');
    const created = await store.create(ws, body.name, deps.now());
    const { password: _, ...shown } = created;
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor: actorOf(c.get('apiKey')),
        action: 'create',
        entityType: 'bi_credential',
        entityId: created.user,
        before: null,
        after: shown,
      },
      deps.now(),
    );
    return c.json(created, 201);
  });

  app.get('/', async (c) => c.json({ biCredentials: await store.list(c.get('workspaceId')) }));

  app.delete('/:user', async (c) => {
    const ws = c.get('workspaceId');
    const res = await store.revoke(ws, c.req.param('user'), deps.now());
    if (!res) throw new QueryError(404, `no BI credential ${c.req.param('user')}`);
    const [before, after] = res;
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor: actorOf(c.get('apiKey')),
        action: 'delete',
        entityType: 'bi_credential',
        entityId: before.user,
        before,
        after,
      },
      deps.now(),
    );
    return c.body(null, 204);
  });
  return app;
}
