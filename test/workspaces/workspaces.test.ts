// Workspaces, people and roles on the query API with real Redis and chDB: the deployment's
// admin key creates workspaces and people; people act with their own tokens and their role
// decides what they may do (query/roles.ts); hostile callers (guessed tokens, another
// workspace's ids, privilege escalation, archived workspaces, concurrent creates) are refused
// with a clear answer; the audit log names the person; everything survives a restart.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueryApp, type QueryDeps } from '../../query/app.ts';
import { permissionFor, ROUTE_PERMISSIONS } from '../../query/roles.ts';
import { AuthFailureLimiter } from '../../runtime/auth-failures.ts';
import { fingerprint, fingerprintKey } from '../../runtime/channel-credentials.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { Logger } from '../../runtime/log.ts';
import { keyring, parseSecretKey } from '../../runtime/secrets-key.ts';
import { WorkspaceStore } from '../../runtime/workspaces.ts';
import { WriteKeyStore, watchWriteKeys } from '../../runtime/write-keys.ts';
import { migrate } from '../../schemas/migrations.ts';
import { globalTag } from '../../schemas/redis-keys.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let clients: Clients;
let ch: ClickHouseClient;
let log: Logger;
let app: ReturnType<typeof createQueryApp>;
const MAX_FAILURES = 4;

function build(limiter?: AuthFailureLimiter, extra: Partial<QueryDeps> = {}) {
  const redis = clients.redis();
  return createQueryApp({
    ...extra,
    redis,
    clickhouse: ch,
    defs: new DefinitionStore(redis, cfg.redis.prefix),
    writeKeys: new WriteKeyStore(redis, cfg.redis.prefix),
    workspaces: new WorkspaceStore(redis, cfg.redis.prefix, cfg.keys.workspace),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k: string) => (k === cfg.keys.adminKey ? cfg.keys.workspace : undefined),
    unsubscribeSecret: cfg.unsubscribe.secret,
    adminAuthFailures: limiter,
    log,
    now: () => new Date(),
  });
}

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
type Answer = { status: number; body: Record<string, any> };

async function call(
  key: string,
  method: string,
  path: string,
  body?: unknown,
  workspace?: string,
  on = app,
): Promise<Answer> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${key}`,
    'content-type': 'application/json',
  };
  if (workspace !== undefined) headers['x-workspace'] = workspace;
  const res = await on.request(path, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, any> };
}
const root = (method: string, path: string, body?: unknown, ws?: string) =>
  call(cfg.keys.adminKey, method, path, body, ws);

/** A person in a workspace with a role, and a token the admin key issued for them. */
async function person(ws: string, role: string, email = `${uniqueId('p')}@example.com`) {
  const added = await root('POST', '/v1/people', { email, name: `${role} person`, role }, ws);
  expect(added.status, JSON.stringify(added.body)).toBeLessThan(300);
  const tok = await root('POST', `/v1/people/${added.body.id}/tokens`, undefined, ws);
  expect(tok.status, JSON.stringify(tok.body)).toBe(201);
  expect(tok.body.token).toMatch(/^cdp_pt_/);
  return {
    id: added.body.id as string,
    email,
    token: tok.body.token as string,
    tokenId: tok.body.id as string,
  };
}

async function workspace(name = uniqueId('Shop ')) {
  const res = await root('POST', '/v1/workspaces', { name });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

const segment = () => ({ name: uniqueId('s'), rule: { '==': [{ var: 'traits.plan' }, 'pro'] } });

beforeAll(async () => {
  cfg = testConfig();
  log = testLogger(cfg);
  clients = createClients(cfg, log);
  ch = await clients.clickhouse();
  await migrate(ch);
  app = build();
});
afterAll(async () => {
  await clients?.close();
});

describe('role table', () => {
  it('names every registered /v1 route (default deny catches the rest)', () => {
    // every optional route group mounted (nothing is called)
    const full = build(undefined, {
      exports: { dir: '/nonexistent', ttlMs: 1000, engine: 'chdb' },
      imports: { dir: '/nonexistent', maxBytes: 1024 },
      producer: {} as QueryDeps['producer'],
    });
    const missing: string[] = [];
    for (const r of full.routes) {
      if (r.method === 'ALL' || !r.path.startsWith('/v1/') || r.path.startsWith('/v1/unsubscribe')) continue;
      const concrete = r.path.replace(/:[^/]+/g, 'x1');
      if (!permissionFor(r.method, concrete)) missing.push(`${r.method} ${r.path}`);
    }
    expect(missing).toEqual([]);
    // and the table names no route that does not exist (a typo would deny a real one)
    const registered = new Set(full.routes.map((r) => `${r.method} ${r.path.replace(/:[^/]+/g, ':')}`));
    const stale = ROUTE_PERMISSIONS.filter(([m, p]) => !registered.has(`${m} ${p.replace(/:[^/]+/g, ':')}`));
    expect(stale.map((r) => r.join(' '))).toEqual([]);
  });

  it('prefers literal segments over parameters and refuses unknown routes', () => {
    expect(permissionFor('POST', '/v1/segments/preview')).toBe('analyze');
    expect(permissionFor('POST', '/v1/segments')).toBe('market');
    expect(permissionFor('GET', '/v1/segments/abc')).toBe('read');
    expect(permissionFor('POST', '/v1/nothing')).toBeUndefined();
    expect(permissionFor('PATCH', '/v1/segments/abc')).toBeUndefined();
  });
});

describe('workspaces', () => {
  it('the admin key creates, lists and archives workspaces; names are unique, even when created concurrently', async () => {
    const name = uniqueId('Acme ');
    const results = await Promise.all(
      Array.from({ length: 8 }, () => root('POST', '/v1/workspaces', { name })),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(7);
    const id = results.find((r) => r.status === 201)!.body.id as string;
    expect(id).toMatch(/^ws_[0-9a-f]{16}$/);
    // case and surrounding space do not make another name
    expect((await root('POST', '/v1/workspaces', { name: ` ${name.toUpperCase()} ` })).status).toBe(409);

    const list = await root('GET', '/v1/workspaces');
    expect(list.status).toBe(200);
    const ids = list.body.workspaces.map((w: { id: string }) => w.id);
    expect(ids[0]).toBe(cfg.keys.workspace);
    expect(ids.filter((x: string) => x === id)).toHaveLength(1);

    const archived = await root('POST', `/v1/workspaces/${id}/archive`);
    expect(archived.status).toBe(200);
    expect(archived.body.archivedAt).toEqual(expect.any(String));
    // the deployment's workspace is never archived; unknown ones are not found
    expect((await root('POST', `/v1/workspaces/${cfg.keys.workspace}/archive`)).status).toBe(409);
    expect((await root('POST', '/v1/workspaces/ws_nope/archive')).status).toBe(404);
  });

  it('refuses malformed and hostile workspace input with a clear error', async () => {
    for (const [body, status] of [
      [{}, 400],
      [{ name: '' }, 400],
      [{ name: '   ' }, 400],
      [{ name: 'x'.repeat(101) }, 400],
      [{ name: 'line\nbreak' }, 400],
      [{ name: 'ok', id: 'mine' }, 400],
      [{ name: 42 }, 400],
      ['{not json', 400],
    ] as const) {
      const res = await root('POST', '/v1/workspaces', body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.error).toEqual(expect.any(String));
    }
    const res = await app.request('/v1/workspaces', {
      method: 'POST',
      headers: { authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'text/plain' },
      body: '{"name":"x"}',
    });
    expect(res.status).toBe(400);
    // a workspace header that is no id, and one that names nothing
    expect((await root('GET', '/v1/segments', undefined, '../../etc')).status).toBe(400);
    expect((await root('GET', '/v1/segments', undefined, 'ws_unknown')).status).toBe(404);
  });
});

describe('people and roles', () => {
  it('each role does what the matrix allows and nothing else', async () => {
    const ws = await workspace();
    const owner = await person(ws, 'owner');
    const marketer = await person(ws, 'marketer');
    const analyst = await person(ws, 'analyst');
    const developer = await person(ws, 'developer');

    const me = await call(marketer.token, 'GET', '/v1/me');
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({
      kind: 'person',
      workspaceId: ws,
      role: 'marketer',
      person: { id: marketer.id, email: marketer.email },
    });

    // [who, method, path, body, expected]
    const cases: Array<[typeof owner, string, string, unknown, number]> = [
      [marketer, 'POST', '/v1/segments', segment(), 201],
      [analyst, 'POST', '/v1/segments', segment(), 403],
      [developer, 'POST', '/v1/segments', segment(), 403],
      [owner, 'POST', '/v1/segments', segment(), 201],
      [analyst, 'GET', '/v1/segments', undefined, 200],
      [analyst, 'GET', '/v1/audit', undefined, 200],
      [developer, 'POST', '/v1/write-keys', { name: 'site' }, 201],
      [marketer, 'POST', '/v1/write-keys', { name: 'site' }, 403],
      [analyst, 'GET', '/v1/write-keys', undefined, 403],
      [analyst, 'PUT', '/v1/settings', {}, 403],
      [marketer, 'GET', '/v1/people', undefined, 403],
      [developer, 'GET', '/v1/people', undefined, 403],
      [owner, 'GET', '/v1/people', undefined, 200],
      [marketer, 'DELETE', '/v1/profiles/someone', undefined, 403],
      [analyst, 'DELETE', '/v1/profiles/someone', undefined, 403],
      // only the deployment's admin key creates workspaces
      [owner, 'POST', '/v1/workspaces', { name: uniqueId('mine ') }, 403],
    ];
    for (const [who, method, path, body, status] of cases) {
      const res = await call(who.token, method, path, body);
      expect(res.status, `${method} ${path} as ${who.email}: ${JSON.stringify(res.body)}`).toBe(status);
      if (status === 403) expect(res.body.error).toMatch(/role may not|no access/);
    }
    // a route no table entry names is refused to people (default deny)
    expect((await call(owner.token, 'GET', '/v1/nowhere')).status).toBe(403);
    // the owner manages people: the list has all four with their roles
    const people = await call(owner.token, 'GET', '/v1/people');
    expect(people.body.people.map((p: { email: string; role: string }) => [p.email, p.role]).sort()).toEqual(
      [
        [owner.email, 'owner'],
        [marketer.email, 'marketer'],
        [analyst.email, 'analyst'],
        [developer.email, 'developer'],
      ].sort(),
    );
  });

  it('refuses privilege escalation and reaching into another workspace', async () => {
    const a = await workspace();
    const b = await workspace();
    const ownerA = await person(a, 'owner');
    const marketerA = await person(a, 'marketer');
    const ownerB = await person(b, 'owner');
    const segB = await call(ownerB.token, 'POST', '/v1/segments', segment());
    expect(segB.status).toBe(201);

    // a marketer cannot make anyone (themselves included) an owner
    expect(
      (await call(marketerA.token, 'POST', '/v1/people', { email: marketerA.email, role: 'owner' })).status,
    ).toBe(403);
    // the owner of A cannot act in B, add themselves to it, nor create workspaces
    for (const [m, p, body] of [
      ['GET', '/v1/segments', undefined],
      ['POST', '/v1/people', { email: ownerA.email, role: 'owner' }],
      ['POST', `/v1/workspaces/${b}/archive`, undefined],
    ] as const) {
      const res = await call(ownerA.token, m, p, body, b);
      expect(res.status, `${m} ${p}`).toBe(403);
      expect(res.body.error).toBe(`no access to workspace ${b}`);
    }
    expect((await call(ownerA.token, 'POST', `/v1/workspaces/${b}/archive`)).status).toBe(403);
    // B's ids in A's paths are not found: segments, people, tokens
    expect((await call(ownerA.token, 'GET', `/v1/segments/${segB.body.id}`)).status).toBe(404);
    expect((await call(ownerA.token, 'PUT', `/v1/segments/${segB.body.id}`, segment())).status).toBe(404);
    expect((await call(ownerA.token, 'DELETE', `/v1/segments/${segB.body.id}`)).status).toBe(404);
    expect((await call(ownerA.token, 'POST', `/v1/people/${ownerB.id}/tokens`)).status).toBe(404);
    expect((await call(ownerA.token, 'DELETE', `/v1/people/${ownerB.id}`)).status).toBe(404);
    expect(
      (await call(ownerA.token, 'DELETE', `/v1/people/${ownerB.id}/tokens/${ownerB.tokenId}`)).status,
    ).toBe(404);
    // B's ids in A's bodies: a campaign on B's segment is refused, nothing is created
    const cross = await call(ownerA.token, 'POST', '/v1/campaigns', {
      name: uniqueId('c'),
      segmentId: segB.body.id,
      on: 'enter',
      channel: 'webhook',
      webhook: { url: 'https://hooks.example.com/x' },
    });
    expect(cross.status, JSON.stringify(cross.body)).toBeGreaterThanOrEqual(400);
    expect(cross.status).toBeLessThan(500);
    expect((await call(ownerA.token, 'GET', '/v1/campaigns')).body.campaigns ?? []).toEqual([]);
    // B's segment is untouched
    expect((await call(ownerB.token, 'GET', `/v1/segments/${segB.body.id}`)).status).toBe(200);

    // the owner of A may not pull B's owner into A (that would change how B's owner's token
    // works and let A's owner mint tokens in their name): 403, nothing of B's person disclosed,
    // and B's owner's token still needs no x-workspace
    const pulled = await call(ownerA.token, 'POST', '/v1/people', {
      email: ownerB.email.toUpperCase(),
      role: 'analyst',
    });
    expect(pulled.status, JSON.stringify(pulled.body)).toBe(403);
    expect(JSON.stringify(pulled.body)).not.toContain(ownerB.id);
    expect(JSON.stringify(pulled.body)).not.toContain(b);
    expect((await call(ownerB.token, 'GET', '/v1/segments')).status).toBe(200);
    expect((await call(ownerA.token, 'GET', `/v1/people/${ownerB.id}/tokens`)).status).toBe(404);

    // the deployment's admin key adds B's owner to A as an analyst; A's owner then issues them
    // a token: it works in A only, never in B (an owner cannot mint access to a workspace they
    // do not own)
    const added = await root('POST', '/v1/people', { email: ownerB.email.toUpperCase(), role: 'analyst' }, a);
    expect(added.status).toBe(200); // an existing person, now also in A
    expect(added.body.id).toBe(ownerB.id);
    const minted = await call(ownerA.token, 'POST', `/v1/people/${ownerB.id}/tokens`);
    expect(minted.status).toBe(201);
    expect(minted.body.workspaceIds).toEqual([a]);
    expect((await call(minted.body.token, 'GET', '/v1/segments', undefined, a)).status).toBe(200);
    expect((await call(minted.body.token, 'GET', '/v1/segments', undefined, b)).status).toBe(403);
    expect((await call(minted.body.token, 'GET', '/v1/segments')).status).toBe(200); // one workspace: A
    // B's owner's own token now spans two workspaces: they must say which
    const both = await call(ownerB.token, 'GET', '/v1/segments');
    expect(both.status).toBe(400);
    expect(both.body.error).toMatch(/x-workspace/);
    const me = await call(ownerB.token, 'GET', '/v1/me');
    expect(me.status).toBe(200);
    expect(me.body.workspaces.map((w: { id: string; role: string }) => [w.id, w.role]).sort()).toEqual(
      [
        [a, 'analyst'],
        [b, 'owner'],
      ].sort(),
    );
    expect((await call(ownerB.token, 'POST', '/v1/segments', segment(), a)).status).toBe(403); // analyst in A
    // A's owner revokes only tokens limited to A: not B's owner's own token
    expect(
      (await call(ownerA.token, 'DELETE', `/v1/people/${ownerB.id}/tokens/${ownerB.tokenId}`)).status,
    ).toBe(404);
    const listed = await call(ownerA.token, 'GET', `/v1/people/${ownerB.id}/tokens`);
    expect(listed.body.tokens.map((t: { id: string }) => t.id)).toEqual([minted.body.id]);
    expect(JSON.stringify(listed.body)).not.toContain('cdp_pt_');
  });

  it('refuses malformed people input', async () => {
    const ws = await workspace();
    const owner = await person(ws, 'owner');
    for (const body of [
      {},
      { email: 'not-an-email', role: 'analyst' },
      { email: 'a@b.co', role: 'root' },
      { email: 'a@b.co', role: 'analyst', admin: true },
      { email: `${'a'.repeat(250)}@b.co`, role: 'analyst' },
      { email: 'a@b.co', role: 'analyst', name: 'x\u0000y' },
      { email: '<script>@b.co', role: 'analyst' },
    ]) {
      const res = await call(owner.token, 'POST', '/v1/people', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toEqual(expect.any(String));
    }
  });

  it('revoked tokens, removed people and archived workspaces stop working; the admin key still reaches archived data', async () => {
    const ws = await workspace();
    const owner = await person(ws, 'owner');
    const marketer = await person(ws, 'marketer');
    const analyst = await person(ws, 'analyst');
    const seg = await call(marketer.token, 'POST', '/v1/segments', segment());
    expect(seg.status).toBe(201);

    // revoked: unknown key
    expect(
      (await call(owner.token, 'DELETE', `/v1/people/${analyst.id}/tokens/${analyst.tokenId}`)).status,
    ).toBe(404); // the admin key's, unlimited
    expect(
      (await root('DELETE', `/v1/people/${analyst.id}/tokens/${analyst.tokenId}`, undefined, ws)).status,
    ).toBe(204);
    expect((await call(analyst.token, 'GET', '/v1/segments')).status).toBe(401);
    // removed from the workspace: no access
    expect((await call(owner.token, 'DELETE', `/v1/people/${marketer.id}`)).status).toBe(204);
    expect((await call(marketer.token, 'GET', '/v1/segments', undefined, ws)).status).toBe(403);

    // a write key of the workspace works at ingest until the workspace is archived
    const wk = await call(owner.token, 'POST', '/v1/write-keys', { name: 'site' });
    expect(wk.status).toBe(201);
    const watcher = watchWriteKeys({
      store: new WriteKeyStore(clients.redis(), cfg.redis.prefix),
      bootstrap: new Map([[cfg.keys.writeKey, cfg.keys.workspace]]),
      log,
      intervalMs: 50,
    });
    try {
      await eventually('write key active', async () => watcher.resolve(wk.body.key)?.workspaceId === ws);
      const archived = await call(owner.token, 'POST', `/v1/workspaces/${ws}/archive`);
      expect(archived.status).toBe(200);
      await eventually('write key refused', async () => watcher.resolve(wk.body.key) === undefined);
      expect(watcher.resolve(cfg.keys.writeKey)?.workspaceId).toBe(cfg.keys.workspace);
    } finally {
      watcher.stop();
    }
    const refused = await call(owner.token, 'GET', '/v1/segments');
    expect(refused.status).toBe(403);
    // the data is kept: the admin key still reads it
    const kept = await root('GET', `/v1/segments/${seg.body.id}`, undefined, ws);
    expect(kept.status).toBe(200);
    expect(kept.body.id).toBe(seg.body.id);
  });

  it('audit rows name the person, in their workspace only', async () => {
    const a = await workspace();
    const b = await workspace();
    const marketer = await person(a, 'marketer');
    const ownerB = await person(b, 'owner');
    const seg = await call(marketer.token, 'POST', '/v1/segments', segment());
    expect(seg.status).toBe(201);
    const rows = await eventually('audit row', async () => {
      const res = await call(marketer.token, 'GET', `/v1/audit?entityType=segment&entityId=${seg.body.id}`);
      return res.body.items?.length ? res.body.items : undefined;
    });
    expect(rows[0].actor).toBe(`person:${marketer.id} ${marketer.email}`);
    // the admin key's rows keep its fingerprint; adding people is audited too
    const people = await root('GET', `/v1/audit?entityType=person&entityId=${marketer.id}`, undefined, a);
    expect(people.body.items?.[0]?.actor).toMatch(/^key:[0-9a-f]{12}$/);
    // B sees none of A's rows
    const other = await call(ownerB.token, 'GET', `/v1/audit?entityId=${seg.body.id}`);
    expect(other.status).toBe(200);
    expect(other.body.items).toEqual([]);
  });
});

describe('webhook signing secrets', () => {
  it('are write-only for every role: campaigns and journeys answer secretSet and a fingerprint; an edit without one keeps it', async () => {
    const sk = parseSecretKey(randomBytes(32).toString('base64'));
    const withKey = build(undefined, { secrets: keyring(sk) });
    const fp = (secret: string) => fingerprint(secret, fingerprintKey(sk.key));
    const defs = new DefinitionStore(clients.redis(), cfg.redis.prefix);
    const ws = await workspace();
    const marketer = await person(ws, 'marketer');
    const analyst = await person(ws, 'analyst');
    const as = (who: string, method: string, path: string, body?: unknown) =>
      call(who, method, path, body, who === cfg.keys.adminKey ? ws : undefined, withKey);

    const seg = await as(marketer.token, 'POST', '/v1/segments', segment());
    expect(seg.status).toBe(201);
    const campaignBody = {
      name: uniqueId('c'),
      segmentId: seg.body.id,
      on: 'enter',
      channel: 'webhook',
      webhook: { url: 'https://crm.example/hook' },
    };
    // a generated secret is shown once: in the answer of the create
    const created = await as(marketer.token, 'POST', '/v1/campaigns', campaignBody);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const secret = created.body.webhook.secret as string;
    expect(secret).toMatch(/^whsec_/);
    expect(created.body.webhook).toEqual({
      url: 'https://crm.example/hook',
      secretSet: true,
      secretFingerprint: fp(secret),
      secret,
    });
    const cid = created.body.id as string;
    // a journey: a webhook step (generated secret) and a webhook send (secret given: never shown)
    const given = `whsec_${randomBytes(24).toString('base64')}`;
    const journeyBody = {
      name: uniqueId('j'),
      entry: { event: 'Trial Started' },
      reEntry: 'never',
      nodes: [
        { id: 'crm', type: 'webhook', webhook: { url: 'https://crm.example/lead' }, next: 'tell' },
        {
          id: 'tell',
          type: 'send',
          channel: 'webhook',
          webhook: { url: 'https://ops.example/p', secret: given },
        },
      ],
    };
    const jc = await as(marketer.token, 'POST', '/v1/journeys', journeyBody);
    expect(jc.status, JSON.stringify(jc.body)).toBe(201);
    const jSecret = jc.body.nodes[0].webhook.secret as string;
    expect(jSecret).toMatch(/^whsec_/);
    expect(jc.body.nodes[1].webhook).toEqual({
      url: 'https://ops.example/p',
      secretSet: true,
      secretFingerprint: fp(given),
    });
    const jid = jc.body.id as string;

    // the analyst (read only) and the admin key alike: no secret, anywhere
    for (const who of [analyst.token, cfg.keys.adminKey, marketer.token]) {
      const one = await as(who, 'GET', `/v1/campaigns/${cid}`);
      const list = await as(who, 'GET', '/v1/campaigns');
      const j = await as(who, 'GET', `/v1/journeys/${jid}`);
      const jl = await as(who, 'GET', '/v1/journeys');
      for (const res of [one, list, j, jl]) {
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        expect(JSON.stringify(res.body)).not.toContain('whsec_');
      }
      const wanted = { url: 'https://crm.example/hook', secretSet: true, secretFingerprint: fp(secret) };
      expect(one.body.webhook).toEqual(wanted);
      expect(list.body.campaigns.find((c: { id: string }) => c.id === cid).webhook).toEqual(wanted);
      for (const def of [j.body, jl.body.journeys.find((x: { id: string }) => x.id === jid)])
        expect(def.nodes.map((n: { webhook: unknown }) => n.webhook)).toEqual([
          { url: 'https://crm.example/lead', secretSet: true, secretFingerprint: fp(jSecret) },
          { url: 'https://ops.example/p', secretSet: true, secretFingerprint: fp(given) },
        ]);
    }
    // without CDP_SECRETS_KEY: only secretSet
    expect((await call(analyst.token, 'GET', `/v1/campaigns/${cid}`)).body.webhook).toEqual({
      url: 'https://crm.example/hook',
      secretSet: true,
    });
    // an analyst still cannot write
    expect((await as(analyst.token, 'PUT', `/v1/campaigns/${cid}`, campaignBody)).status).toBe(403);

    // an edit without the secret keeps the stored one (activation signs with it); nothing shown
    const put = await as(marketer.token, 'PUT', `/v1/campaigns/${cid}`, { ...campaignBody, name: 'renamed' });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(JSON.stringify(put.body)).not.toContain('whsec_');
    expect(put.body.webhook.secretFingerprint).toBe(fp(secret));
    expect((await defs.get('campaigns', ws, cid))?.webhook?.secret).toBe(secret);
    const paused = await as(marketer.token, 'POST', `/v1/campaigns/${cid}/pause`);
    expect(JSON.stringify(paused.body)).not.toContain('whsec_');
    // a new secret given replaces it, and is not echoed
    const next = `whsec_${randomBytes(24).toString('base64')}`;
    const replaced = await as(marketer.token, 'PUT', `/v1/campaigns/${cid}`, {
      ...campaignBody,
      webhook: { url: 'https://crm.example/hook', secret: next },
    });
    expect(replaced.status).toBe(200);
    expect(JSON.stringify(replaced.body)).not.toContain('whsec_');
    expect(replaced.body.webhook.secretFingerprint).toBe(fp(next));
    expect((await defs.get('campaigns', ws, cid))?.webhook?.secret).toBe(next);

    // a journey edit (a new version) without secrets keeps each step's
    const jput = await as(marketer.token, 'PUT', `/v1/journeys/${jid}`, {
      ...journeyBody,
      nodes: [
        { id: 'crm', type: 'webhook', webhook: { url: 'https://crm.example/lead' }, next: 'tell' },
        { id: 'tell', type: 'send', channel: 'webhook', webhook: { url: 'https://ops.example/p' } },
      ],
    });
    expect(jput.status, JSON.stringify(jput.body)).toBe(200);
    expect(jput.body.version).toBe(2);
    expect(JSON.stringify(jput.body)).not.toContain('whsec_');
    const stored = await defs.get('journeys', ws, jid);
    expect(stored?.nodes.map((n) => ('webhook' in n ? n.webhook?.secret : undefined))).toEqual([
      jSecret,
      given,
    ]);
    const activated = await as(marketer.token, 'POST', `/v1/journeys/${jid}/activate`);
    expect(activated.body.status).toBe('active');
    expect(JSON.stringify(activated.body)).not.toContain('whsec_');
  });
});

describe('tokens', () => {
  it('are stored only as hashes and survive a restart', async () => {
    const ws = await workspace();
    const owner = await person(ws, 'owner');
    const raw = await clients.redis().hgetall(`${globalTag(cfg.redis.prefix)}:people:tokens`);
    expect(JSON.stringify(raw)).not.toContain(owner.token);
    const restarted = build();
    const me = await call(owner.token, 'GET', '/v1/me', undefined, undefined, restarted);
    expect(me.status).toBe(200);
    expect(me.body.person.email).toBe(owner.email);
  });

  it('guessed tokens are counted by the failure limiter; right ones are not', async () => {
    const limited = build(new AuthFailureLimiter({ maxFailures: MAX_FAILURES }));
    const ws = await workspace();
    const owner = await person(ws, 'owner');
    for (let i = 0; i < 3; i++)
      expect((await call(owner.token, 'GET', '/v1/me', undefined, undefined, limited)).status).toBe(200);
    for (let i = 0; i < MAX_FAILURES; i++) {
      const guess = `cdp_pt_${uniqueId('')}${'A'.repeat(24)}`;
      expect((await call(guess, 'GET', '/v1/me', undefined, undefined, limited)).status).toBe(401);
    }
    const res = await call(owner.token, 'GET', '/v1/me', undefined, undefined, limited);
    expect(res.status).toBe(429);
  });
});
