import { Type } from '@sinclair/typebox';
import { Hono } from 'hono';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import { maskWriteKey, type WriteKeyRecord, type WriteKeyStore } from '../../runtime/write-keys.ts';
import { actorOf, recordAudit } from '../audit.ts';
import type { QueryEnv } from '../context.ts';
import { QueryError } from '../query-error.ts';
import { validate } from '../validate.ts';

export const WriteKeyInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    kind: Type.Optional(
      Type.Union([Type.Literal('server'), Type.Literal('client')], {
        default: 'server',
        description:
          '`client` for keys that ship in browsers and apps (public): they cannot take over or change how a known person is reached; see GET/PUT /v1/settings',
      }),
    ),
  },
  { additionalProperties: false },
);

const masked = (r: WriteKeyRecord): WriteKeyRecord => ({ ...r, key: maskWriteKey(r.key) });

/**
 * Write keys of the caller's workspace: create, list, revoke. Revoked keys answer 401 at
 * ingest. The full key is shown once, in the answer to its creation; lists and the audit
 * log show it masked.
 */
export function writeKeyRoutes(deps: {
  clickhouse: ClickHouseClient;
  writeKeys: WriteKeyStore;
  now: () => Date;
}) {
  const app = new Hono<QueryEnv>();

  app.post('/', validate(WriteKeyInput), async (c) => {
    const ws = c.get('workspaceId');
    const body = c.req.valid('json');
    const rec = await deps.writeKeys.create(ws, body.name, deps.now(), body.kind ?? 'server');
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor: actorOf(c.get('apiKey')),
        action: 'create',
        entityType: 'write_key',
        entityId: rec.id,
        before: null,
        after: masked(rec),
      },
      deps.now(),
    );
    return c.json(rec, 201);
  });

  app.get('/', async (c) =>
    c.json({ writeKeys: (await deps.writeKeys.list(c.get('workspaceId'))).map(masked) }),
  );

  app.delete('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const res = await deps.writeKeys.revoke(ws, c.req.param('id'), deps.now());
    if (!res) throw new QueryError(404, `no write key ${c.req.param('id')}`);
    const [before, after] = res;
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor: actorOf(c.get('apiKey')),
        action: 'delete',
        entityType: 'write_key',
        entityId: before.id,
        before: masked(before),
        after: masked(after),
      },
      deps.now(),
    );
    return c.body(null, 204);
  });
  return app;
}
