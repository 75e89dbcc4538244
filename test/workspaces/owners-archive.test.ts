// The last owner of a workspace is kept (removing or demoting them answers 409, and two
// owners removed at the same time never leave none), and archiving reaches every way into a
// workspace: its BI credentials are refused on their next query (B's keep working), and the
// admin key's un-archive lets its people, write keys and BI credentials in again, audited.
// (On a real Redis Cluster: test/workspaces/cluster.test.ts.)
// Real Redis and chDB; the query API and the BI endpoint in process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueryApp } from '../../query/app.ts';
import { BiCredentialStore } from '../../query/bi-sql/credentials.ts';
import { createBiSqlApp } from '../../query/bi-sql/server.ts';
import { AuthFailureLimiter } from '../../runtime/auth-failures.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { Logger } from '../../runtime/log.ts';
import { WorkspaceStore } from '../../runtime/workspaces.ts';
import { WriteKeyStore, watchWriteKeys } from '../../runtime/write-keys.ts';
import { migrate } from '../../schemas/migrations.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let clients: Clients;
let ch: ClickHouseClient;
let log: Logger;
let app: ReturnType<typeof createQueryApp>;
let biApp: ReturnType<typeof createBiSqlApp>;
let biFailures: AuthFailureLimiter;

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
type Answer = { status: number; body: Record<string, any> };

async function call(key: string, method: string, path: string, body?: unknown, workspace?: string) {
  const headers: Record<string, string> = {
    authorization: `Bearer ${key}`,
    'content-type': 'application/json',
  };
  if (workspace !== undefined) headers['x-workspace'] = workspace;
  const res = await app.request(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, any> } as Answer;
}
const root = (method: string, path: string, body?: unknown, ws?: string) =>
  call(cfg.keys.adminKey, method, path, body, ws);

async function workspace() {
  const res = await root('POST', '/v1/workspaces', { name: uniqueId('Shop ') });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

async function person(ws: string, role: string, email = `${uniqueId('p')}@example.com`) {
  const added = await root('POST', '/v1/people', { email, role }, ws);
  expect(added.status, JSON.stringify(added.body)).toBeLessThan(300);
  const tok = await root('POST', `/v1/people/${added.body.id}/tokens`, undefined, ws);
  expect(tok.status).toBe(201);
  return { id: added.body.id as string, email, token: tok.body.token as string };
}

const owners = async (ws: string) =>
  ((await root('GET', '/v1/people', undefined, ws)).body.people as Array<{ id: string; role: string }>)
    .filter((p) => p.role === 'owner')
    .map((p) => p.id)
    .sort();

/** A query on the BI endpoint as a credential: the status and the body. */
async function bi(cred: { user: string; password: string }, query: string) {
  const res = await biApp.request('/?default_format=JSONEachRow', {
    method: 'POST',
    headers: { 'X-ClickHouse-User': cred.user, 'X-ClickHouse-Key': cred.password },
    body: query,
  });
  return { status: res.status, text: await res.text(), code: res.headers.get('x-clickhouse-exception-code') };
}

/** Audit rows of a workspace for an entity (the audit is written through a queue: waited on). */
const auditOf = (ws: string, entityId: string, n: number) =>
  eventually(
    `${n} audit rows for ${entityId}`,
    async () => {
      const r = await root('GET', `/v1/audit?entityId=${entityId}`, undefined, ws);
      const items = (r.body.items ?? []) as Array<Record<string, unknown>>;
      return items.length >= n ? items : undefined;
    },
    30_000,
  );

beforeAll(async () => {
  cfg = testConfig();
  log = testLogger(cfg);
  clients = createClients(cfg, log);
  ch = await clients.clickhouse();
  await migrate(ch);
  const redis = clients.redis();
  app = createQueryApp({
    redis,
    clickhouse: ch,
    defs: new DefinitionStore(redis, cfg.redis.prefix),
    writeKeys: new WriteKeyStore(redis, cfg.redis.prefix),
    workspaces: new WorkspaceStore(redis, cfg.redis.prefix, cfg.keys.workspace),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k: string) => (k === cfg.keys.adminKey ? cfg.keys.workspace : undefined),
    unsubscribeSecret: cfg.unsubscribe.secret,
    log,
    now: () => new Date(),
  });
  biFailures = new AuthFailureLimiter({ maxFailures: 3 });
  biApp = createBiSqlApp({
    clickhouse: ch,
    credentials: new BiCredentialStore(redis, cfg.redis.prefix),
    limits: {
      maxExecutionSeconds: 30,
      maxResultRows: 10_000,
      maxResultBytes: 10_000_000,
      maxMemoryBytes: 500_000_000,
      maxConcurrent: 4,
    },
    log,
    authFailures: biFailures,
  });
}, 120_000);
afterAll(async () => {
  await clients?.close();
});

describe('the last owner', () => {
  it('cannot be removed or demoted, by themself or the admin key, until another owner exists', async () => {
    const ws = await workspace();
    const first = await person(ws, 'owner');
    const marketer = await person(ws, 'marketer');

    for (const key of [first.token, cfg.keys.adminKey]) {
      const removed = await call(key, 'DELETE', `/v1/people/${first.id}`, undefined, ws);
      expect(removed.status).toBe(409);
      expect(removed.body.error).toMatch(/last owner of workspace .* make someone else an owner first/);
      const demoted = await call(key, 'POST', '/v1/people', { email: first.email, role: 'analyst' }, ws);
      expect(demoted.status).toBe(409);
      expect(demoted.body.error).toContain(`${first.id} is the last owner of workspace ${ws}`);
    }
    // re-adding the owner as owner is no demotion
    expect((await root('POST', '/v1/people', { email: first.email, role: 'owner' }, ws)).status).toBe(200);
    // other people come and go as before
    expect((await call(first.token, 'DELETE', `/v1/people/${marketer.id}`)).status).toBe(204);
    expect(await owners(ws)).toEqual([first.id]);
    // the owner still works
    expect((await call(first.token, 'GET', '/v1/people')).status).toBe(200);

    // with a second owner the first may step down, then the second is the last
    const second = await person(ws, 'owner');
    const stepDown = await call(first.token, 'POST', '/v1/people', { email: first.email, role: 'analyst' });
    expect(stepDown.status, JSON.stringify(stepDown.body)).toBe(200);
    expect(stepDown.body.role).toBe('analyst');
    expect(await owners(ws)).toEqual([second.id]);
    expect((await call(second.token, 'DELETE', `/v1/people/${second.id}`)).status).toBe(409);
    expect(await owners(ws)).toEqual([second.id]);
    // refused changes are not in the audit log: the demotion that happened is, once (besides
    // the owner-to-owner re-add)
    const audit = await auditOf(ws, first.id, 3);
    const roleChanges = audit
      .filter((a) => a.action === 'update')
      .map((a) => `${(a.before as { role: string }).role}>${(a.after as { role: string }).role}`)
      .sort();
    expect(roleChanges).toEqual(['owner>analyst', 'owner>owner']);
    // and a person who is an owner elsewhere is still refused here: the count is per workspace
    const other = await workspace();
    expect((await root('POST', '/v1/people', { email: second.email, role: 'owner' }, other)).status).toBe(
      200,
    );
    expect((await root('DELETE', `/v1/people/${second.id}`, undefined, ws)).status).toBe(409);
    expect((await root('DELETE', `/v1/people/${second.id}`, undefined, other)).status).toBe(409);
  });

  it('two owners removed or demoted at the same time never leave the workspace without one', async () => {
    for (let round = 0; round < 8; round++) {
      const ws = await workspace();
      const a = await person(ws, 'owner');
      const b = await person(ws, 'owner');
      const c = await person(ws, 'owner');
      // each owner removes or demotes another (and themselves) at once: at most two of the
      // three may go
      const answers = await Promise.all([
        call(a.token, 'DELETE', `/v1/people/${b.id}`),
        call(b.token, 'POST', '/v1/people', { email: c.email, role: 'marketer' }),
        call(c.token, 'DELETE', `/v1/people/${a.id}`),
        root('DELETE', `/v1/people/${c.id}`, undefined, ws),
        call(a.token, 'POST', '/v1/people', { email: a.email, role: 'developer' }),
      ]);
      for (const r of answers) expect([200, 204, 403, 404, 409], JSON.stringify(r.body)).toContain(r.status);
      const left = await owners(ws);
      expect(left, `round ${round}: ${answers.map((r) => r.status)}`).toHaveLength(1);
      // the one left is a real member who can act
      const keeper = [a, b, c].find((p) => p.id === left[0])!;
      expect((await call(keeper.token, 'GET', '/v1/people')).status).toBe(200);
      expect(answers.some((r) => r.status === 409)).toBe(true);
    }
  });
});

describe('archiving', () => {
  it("stops the workspace's BI credentials at their next query, not the other workspace's; un-archiving lets them in again", async () => {
    const a = await workspace();
    const b = await workspace();
    const ownerA = await person(a, 'owner');
    const ownerB = await person(b, 'owner');
    const credA = (await call(ownerA.token, 'POST', '/v1/bi-credentials', { name: 'metabase' })).body as {
      user: string;
      password: string;
    };
    const credB = (await call(ownerB.token, 'POST', '/v1/bi-credentials', { name: 'metabase' })).body as {
      user: string;
      password: string;
    };
    const q = 'SELECT count() AS n FROM bi_events';
    expect((await bi(credA, q)).status).toBe(200);
    expect((await bi(credB, q)).status).toBe(200);

    expect((await call(ownerA.token, 'POST', `/v1/workspaces/${a}/archive`)).status).toBe(200);
    // refused saying why, as ClickHouse refuses access, and more than the failure limit of
    // times: the right password of an archived workspace is no guess and locks nobody out
    for (let i = 0; i < 5; i++) {
      const refused = await bi(credA, q);
      expect(refused.status).toBe(403);
      expect(refused.code).toBe('497');
      expect(refused.text).toContain(`workspace ${a} is archived; its BI credentials no longer work`);
    }
    const wrong = await bi({ user: credA.user, password: 'bip_wrong' }, q);
    expect(wrong.text).toContain('Authentication failed');
    expect(wrong.text).not.toContain('archived');
    expect((await bi(credB, q)).status).toBe(200);
    // the credential is still listed for the admin key (archived data stays), and the archived
    // owner cannot make a new one
    expect((await call(ownerA.token, 'POST', '/v1/bi-credentials', { name: 'x' })).status).toBe(403);
    const listed = await root('GET', '/v1/bi-credentials', undefined, a);
    expect(listed.body.biCredentials.map((c: { user: string }) => c.user)).toEqual([credA.user]);

    // un-archived by the admin key: the same credential works again
    const back = await root('POST', `/v1/workspaces/${a}/unarchive`);
    expect(back.status, JSON.stringify(back.body)).toBe(200);
    expect(back.body.archivedAt).toBeNull();
    expect((await bi(credA, q)).status).toBe(200);
    expect((await call(ownerA.token, 'GET', '/v1/people')).status).toBe(200);
  });

  it('un-archiving is for the admin key only, audited, and brings back write keys at ingest', async () => {
    const ws = await workspace();
    const owner = await person(ws, 'owner');
    const wk = await call(owner.token, 'POST', '/v1/write-keys', { name: 'site' });
    expect(wk.status).toBe(201);
    const watcher = watchWriteKeys({
      store: new WriteKeyStore(clients.redis(), cfg.redis.prefix),
      bootstrap: new Map([[cfg.keys.writeKey, cfg.keys.workspace]]),
      log,
      intervalMs: 50,
    });
    try {
      await eventually(
        'write key active',
        async () => watcher.resolve(wk.body.key)?.workspaceId === ws,
        30_000,
      );
      // not archived: answered as it is, nothing audited
      const noop = await root('POST', `/v1/workspaces/${ws}/unarchive`);
      expect(noop.status).toBe(200);
      expect(noop.body.archivedAt).toBeNull();

      expect((await call(owner.token, 'POST', `/v1/workspaces/${ws}/archive`)).status).toBe(200);
      await eventually('write key refused', async () => watcher.resolve(wk.body.key) === undefined, 30_000);
      // the archived workspace's owner, and an owner of another workspace, may not un-archive it
      expect((await call(owner.token, 'POST', `/v1/workspaces/${ws}/unarchive`, undefined, ws)).status).toBe(
        403,
      );
      const elsewhere = await person(await workspace(), 'owner');
      const refused = await call(elsewhere.token, 'POST', `/v1/workspaces/${ws}/unarchive`);
      expect(refused.status).toBe(403);
      expect((await root('POST', '/v1/workspaces/ws_0000000000000000/unarchive')).status).toBe(404);
      expect(
        (await root('GET', '/v1/workspaces')).body.workspaces.find((w: { id: string }) => w.id === ws),
      ).toMatchObject({ archivedAt: expect.any(String) });

      const back = await root('POST', `/v1/workspaces/${ws}/unarchive`);
      expect(back.status).toBe(200);
      await eventually(
        'write key back',
        async () => watcher.resolve(wk.body.key)?.workspaceId === ws,
        30_000,
      );
      expect((await call(owner.token, 'GET', '/v1/write-keys')).status).toBe(200);
      expect(
        (await root('GET', '/v1/workspaces')).body.workspaces.find((w: { id: string }) => w.id === ws),
      ).toMatchObject({ archivedAt: null });
    } finally {
      watcher.stop();
    }
    // audited in the workspace: archive by its owner, un-archive by the admin key (once: the
    // un-archive of a workspace that was not archived changed nothing)
    const rows = await auditOf(ws, ws, 3);
    const updates = rows.filter((r) => r.action === 'update');
    expect(updates).toHaveLength(2);
    const unarchived = updates.find((r) => (r.after as { archivedAt: unknown }).archivedAt === null)!;
    expect(unarchived.actor).toMatch(/^key:/);
    expect((unarchived.before as { archivedAt: unknown }).archivedAt).toEqual(expect.any(String));
  });
});
