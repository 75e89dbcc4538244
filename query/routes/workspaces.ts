import { Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { type Context, Hono } from 'hono';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import {
  LastOwner,
  MemberElsewhere,
  normaliseEmail,
  ROLES,
  WORKSPACE_NAME_MAX,
  WorkspaceConflict,
  type WorkspaceStore,
} from '../../runtime/workspaces.ts';
import { type AuditEntry, actorOf, recordAudit } from '../audit.ts';
import { type QueryEnv, readJson } from '../context.ts';
import { QueryError } from '../query-error.ts';
import { ROLE_PERMISSIONS } from '../roles.ts';
import { checkBody } from '../validate.ts';

const CreateWorkspace = TypeCompiler.Compile(
  Type.Object(
    {
      name: Type.String({
        minLength: 1,
        maxLength: WORKSPACE_NAME_MAX,
        pattern: '^[^\\x00-\\x1f\\x7f]*\\S[^\\x00-\\x1f\\x7f]*$',
      }),
    },
    { additionalProperties: false },
  ),
);
const AddPerson = TypeCompiler.Compile(
  Type.Object(
    {
      email: Type.String({ minLength: 3, maxLength: 254 }),
      name: Type.Optional(Type.String({ maxLength: 200, pattern: '^[^\\x00-\\x1f\\x7f]*$' })),
      role: Type.Union(ROLES.map((r) => Type.Literal(r))),
    },
    { additionalProperties: false },
  ),
);

/** The last owner kept: a clear 409 instead of a workspace nobody may manage. */
function lastOwnerConflict(err: unknown): never {
  if (err instanceof LastOwner) throw new QueryError(409, err.message);
  if (err instanceof MemberElsewhere) throw new QueryError(403, err.message);
  throw err;
}

/**
 * Workspaces and people: who am I (GET /me), workspaces (list; create and un-archive with the
 * deployment's admin key; archive), the people of the caller's workspace with their roles, and their
 * tokens. What each needs is in query/roles.ts, enforced by the auth middleware; here only
 * what depends on the data (a token issued by a workspace's owner works in that workspace only).
 */
export function workspaceRoutes(deps: {
  clickhouse: ClickHouseClient;
  workspaces: WorkspaceStore;
  now: () => Date;
}) {
  const app = new Hono<QueryEnv>();
  const store = deps.workspaces;
  const audit = (
    c: Context<QueryEnv>,
    e: Omit<AuditEntry, 'workspaceId' | 'actor'>,
    ws = c.get('workspaceId'),
  ) => recordAudit(deps.clickhouse, { ...e, workspaceId: ws, actor: actorOf(c.get('apiKey')) }, deps.now());
  const isRoot = (c: Context<QueryEnv>) => c.get('principal').kind === 'root';

  app.get('/me', async (c) => {
    const p = c.get('principal');
    const ws = c.get('workspaceId') || null;
    if (p.kind === 'root')
      return c.json({
        kind: 'root',
        person: null,
        workspaceId: ws,
        role: 'owner',
        permissions: [...ROLE_PERMISSIONS.owner, 'root'],
      });
    const names = new Map((await store.listWorkspaces()).map((w) => [w.id, w.name]));
    return c.json({
      kind: 'person',
      person: p.person,
      workspaceId: ws,
      role: p.role ?? null,
      permissions: p.role ? ROLE_PERMISSIONS[p.role] : [],
      workspaces: [...p.roles].map(([id, role]) => ({ id, name: names.get(id) ?? id, role })),
    });
  });

  app.get('/workspaces', async (c) => {
    const p = c.get('principal');
    const all = await store.listWorkspaces();
    if (p.kind === 'root') return c.json({ workspaces: all });
    return c.json({
      workspaces: all.filter((w) => p.roles.has(w.id)).map((w) => ({ ...w, role: p.roles.get(w.id) })),
    });
  });

  app.post('/workspaces', async (c) => {
    const body = checkBody(CreateWorkspace, await readJson(c.req.raw));
    try {
      const ws = await store.createWorkspace(body.name.trim(), deps.now());
      await audit(
        c,
        { action: 'create', entityType: 'workspace', entityId: ws.id, before: null, after: ws },
        ws.id,
      );
      return c.json(ws, 201);
    } catch (err) {
      if (err instanceof WorkspaceConflict) throw new QueryError(409, err.message);
      throw err;
    }
  });

  app.post('/workspaces/:id/archive', async (c) => {
    const id = c.req.param('id');
    // an owner archives the workspace they act in; the admin key any
    if (!isRoot(c) && id !== c.get('workspaceId')) throw new QueryError(403, `no access to workspace ${id}`);
    let res: Awaited<ReturnType<WorkspaceStore['archiveWorkspace']>>;
    try {
      res = await store.archiveWorkspace(id, deps.now());
    } catch (err) {
      if (err instanceof WorkspaceConflict) throw new QueryError(409, err.message);
      throw err;
    }
    if (!res) throw new QueryError(404, `no workspace ${id}`);
    await audit(
      c,
      { action: 'update', entityType: 'workspace', entityId: id, before: res[0], after: res[1] },
      id,
    );
    return c.json(res[1]);
  });

  app.post('/workspaces/:id/unarchive', async (c) => {
    // the admin key only (query/roles.ts: root); an owner of an archived workspace has no
    // access to it any more
    const id = c.req.param('id');
    const res = await store.unarchiveWorkspace(id);
    if (!res) throw new QueryError(404, `no workspace ${id}`);
    if (res[0].archivedAt !== null)
      await audit(
        c,
        { action: 'update', entityType: 'workspace', entityId: id, before: res[0], after: res[1] },
        id,
      );
    return c.json(res[1]);
  });

  app.get('/people', async (c) => c.json({ people: await store.listPeople(c.get('workspaceId')) }));

  app.post('/people', async (c) => {
    const ws = c.get('workspaceId');
    const body = checkBody(AddPerson, await readJson(c.req.raw));
    const email = normaliseEmail(body.email);
    if (!email) throw new QueryError(400, 'email: not an email address');
    const before = await store.personByEmail(email);
    const beforeRole = before ? await store.roleIn(ws, before.id) : undefined;
    // an owner adds new people or changes the role of their own; someone who belongs to other
    // workspaces only the admin key adds (403 without their id, name or workspaces)
    const { person, created } = await store
      .addPerson(ws, email, body.name?.trim() ?? '', body.role, deps.now(), { onlyOwnPeople: !isRoot(c) })
      .catch(lastOwnerConflict);
    await audit(c, {
      action: beforeRole ? 'update' : 'create',
      entityType: 'person',
      entityId: person.id,
      before: beforeRole ? { ...person, role: beforeRole } : null,
      after: { ...person, role: body.role },
    });
    return c.json({ ...person, role: body.role }, created ? 201 : 200);
  });

  /** A member of the caller's workspace, or 404 (people of other workspaces are not found). */
  const member = async (c: Context<QueryEnv>) => {
    const id = c.req.param('id') ?? '';
    const role = await store.roleIn(c.get('workspaceId'), id);
    const person = role ? await store.person(id) : undefined;
    if (!person || !role) throw new QueryError(404, `no person ${id} in this workspace`);
    return { person, role };
  };

  app.delete('/people/:id', async (c) => {
    const { person, role } = await member(c);
    await store.removePerson(c.get('workspaceId'), person.id).catch(lastOwnerConflict);
    await audit(c, {
      action: 'delete',
      entityType: 'person',
      entityId: person.id,
      before: { ...person, role },
      after: null,
    });
    return c.body(null, 204);
  });

  app.get('/people/:id/tokens', async (c) => {
    const { person } = await member(c);
    const ws = c.get('workspaceId');
    const tokens = await store.listTokens(person.id);
    return c.json({
      tokens: isRoot(c)
        ? tokens
        : // an owner sees the tokens limited to their workspace: the ones they may revoke
          tokens.filter((t) => t.workspaceIds?.length === 1 && t.workspaceIds[0] === ws),
    });
  });

  app.post('/people/:id/tokens', async (c) => {
    const { person } = await member(c);
    const ws = c.get('workspaceId');
    // the admin key's tokens work wherever the person belongs; an owner's only here
    const { token, record } = await store.issueToken(person.id, isRoot(c) ? null : [ws], deps.now());
    await audit(c, {
      action: 'create',
      entityType: 'person_token',
      entityId: record.id,
      before: null,
      after: record,
    });
    return c.json({ ...record, token }, 201);
  });

  app.delete('/people/:id/tokens/:token', async (c) => {
    const { person } = await member(c);
    const ws = c.get('workspaceId');
    const after = await store.revokeToken(
      person.id,
      c.req.param('token'),
      deps.now(),
      isRoot(c) ? undefined : ws,
    );
    if (!after) throw new QueryError(404, `no token ${c.req.param('token')} of this workspace`);
    await audit(c, { action: 'delete', entityType: 'person_token', entityId: after.id, before: null, after });
    return c.body(null, 204);
  });

  return app;
}
