// The consent routes addressed by a profile id (GET/PUT /v1/profiles/{id}/consent, GET
// …/consent/history) against real Redis and chDB, with two workspaces: a profile id the
// caller's workspace does not have (another workspace's, an unknown one) is a 404 as on
// GET /v1/profiles/{id}, and nothing is read, written or logged for it; the owning
// workspace keeps reading and writing its person's consent, also through a merged-away id.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createLogger } from '../../runtime/log.ts';
import { migrate } from '../../schemas/migrations.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { uniqueId } from '../../test/harness.ts';
import { createQueryApp } from '../app.ts';

const prefix = uniqueId('consent');
const A = uniqueId('ws_a_');
const B = uniqueId('ws_b_');
const keyOf = { [A]: 'admin-a', [B]: 'admin-b' } as Record<string, string>;
let redis: Redis;
let ch: ClickHouseClient;
let app: ReturnType<typeof createQueryApp>;

async function call(ws: string, method: string, path: string, body?: unknown) {
  const res = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${keyOf[ws]}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

const logRows = async (ws: string) => {
  const rs = await ch.query({
    query: 'SELECT profile_id, channel FROM consent_log WHERE workspace_id = {ws:String} ORDER BY channel',
    query_params: { ws },
    format: 'JSONEachRow',
  });
  return rs.json<{ profile_id: string; channel: string }>();
};

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  ch = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-consent-')) });
  await migrate(ch);
  app = createQueryApp({
    redis,
    clickhouse: ch,
    defs: new DefinitionStore(redis, prefix),
    writeKeys: {} as never,
    redisPrefix: prefix,
    resolveAdminKey: (k) => (k === 'admin-a' ? A : k === 'admin-b' ? B : undefined),
    unsubscribeSecret: 'unused-in-this-suite',
    log: createLogger({ level: 'silent', name: 'test' }),
  });
  const now = String(Date.now());
  // A: a person (p-ada) and an id merged into them (p-old); B: a person of its own
  const a = workspaceKeys(prefix, A);
  await redis.hset(a.profile('p-ada'), { id: 'p-ada', firstSeenAt: now, lastSeenAt: now });
  await redis.sadd(a.profileIdentities('p-ada'), 'user:ada', 'email:ada@a.test');
  await redis.hset(a.profile('p-old'), { id: 'p-old', mergedInto: 'p-ada' });
  const b = workspaceKeys(prefix, B);
  await redis.hset(b.profile('p-bea'), { id: 'p-bea', firstSeenAt: now, lastSeenAt: now });
});
afterAll(async () => {
  redis?.disconnect();
  await ch?.close();
});

describe('consent of a profile id in another workspace', () => {
  it("A records and reads its person's consent, also through a merged-away id", async () => {
    const put = await call(A, 'PUT', '/v1/profiles/p-ada/consent', {
      channel: 'email',
      purpose: 'news',
      subscribed: false,
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({
      profileId: 'p-ada',
      consents: [{ channel: 'email', purpose: 'news', subscribed: false }],
    });
    for (const id of ['p-ada', 'p-old']) {
      const got = await call(A, 'GET', `/v1/profiles/${id}/consent`);
      expect(got.status, id).toBe(200);
      expect(got.body).toMatchObject({
        profileId: 'p-ada',
        consents: [{ channel: 'email', purpose: 'news', subscribed: false }],
      });
      const history = await call(A, 'GET', `/v1/profiles/${id}/consent/history`);
      expect(history.status, id).toBe(200);
      expect(history.body.profileId).toBe('p-ada');
      expect(history.body.history).toMatchObject([
        { profileId: 'p-ada', channel: 'email', purpose: 'news', status: 'revoked', source: 'api' },
      ]);
    }
    // via the merged-away id, the write lands on the survivor
    expect(
      (await call(A, 'PUT', '/v1/profiles/p-old/consent', { channel: 'sms', subscribed: false })).body
        .profileId,
    ).toBe('p-ada');
  });

  it("B's admin key gets 404 for A's profile id, as GET /v1/profiles/{id} does, and nothing is written", async () => {
    const consentBefore = await redis.hgetall(workspaceKeys(prefix, A).consent('p-ada'));
    const logBefore = await logRows(A);
    expect((await call(B, 'GET', '/v1/profiles/p-ada')).status).toBe(404);
    for (const id of ['p-ada', 'p-old']) {
      for (const [method, path, body] of [
        ['GET', `/v1/profiles/${id}/consent`],
        ['GET', `/v1/profiles/${id}/consent/history`],
        ['PUT', `/v1/profiles/${id}/consent`, { channel: 'email', purpose: 'news', subscribed: true }],
        ['PUT', `/v1/profiles/${id}/consent`, { consents: [{ channel: '*', subscribed: false }] }],
      ] as const) {
        const r = await call(B, method, path, body);
        expect(r, `${method} ${path}`).toEqual({ status: 404, body: { error: `no profile ${id}` } });
      }
    }
    // nothing about the id in B; A's person is as before
    expect(await redis.exists(workspaceKeys(prefix, B).consent('p-ada'))).toBe(0);
    expect(await redis.exists(workspaceKeys(prefix, B).consent('p-old'))).toBe(0);
    expect(await logRows(B)).toEqual([]);
    expect(await redis.hgetall(workspaceKeys(prefix, A).consent('p-ada'))).toEqual(consentBefore);
    expect(await logRows(A)).toEqual(logBefore);
    // B's own person is found; A does not find B's
    expect((await call(B, 'GET', '/v1/profiles/p-bea/consent')).body).toEqual({
      profileId: 'p-bea',
      consents: [],
    });
    expect((await call(A, 'GET', '/v1/profiles/p-bea/consent')).status).toBe(404);
    expect((await call(A, 'GET', '/v1/profiles/p-bea/consent/history')).status).toBe(404);
  });

  it('an id no workspace has is a 404 on every consent route', async () => {
    for (const [method, path, body] of [
      ['GET', '/v1/profiles/p-nobody/consent'],
      ['GET', '/v1/profiles/p-nobody/consent/history'],
      ['PUT', '/v1/profiles/p-nobody/consent', { channel: 'email', subscribed: false }],
    ] as const) {
      const r = await call(A, method, path, body);
      expect(r, `${method} ${path}`).toEqual({ status: 404, body: { error: 'no profile p-nobody' } });
    }
    expect(await redis.exists(workspaceKeys(prefix, A).consent('p-nobody'))).toBe(0);
    // a body that is wrong is still a 400 first (validation comes before the lookup)
    expect((await call(A, 'PUT', '/v1/profiles/p-nobody/consent', { channel: 'email' })).status).toBe(400);
  });
});
