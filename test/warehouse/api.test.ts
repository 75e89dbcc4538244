// The warehouse exports API on the real Redis and chDB: create, read, update, delete, audited
// with the S3 secret sealed at rest and never shown or audited; hostile definitions are 400s
// naming the field (paths leaving the root, endpoints with paths or credentials, loopback
// endpoints where they are not allowed, bad buckets, unknown fields, huge values); another
// workspace cannot see or change an export.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueryApp } from '../../query/app.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { open } from '../../runtime/secrets-key.ts';
import { WriteKeyStore } from '../../runtime/write-keys.ts';
import { migrate } from '../../schemas/migrations.ts';
import { warehouseAad, warehouseKeys } from '../../schemas/warehouse.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';

let cfg: Config;
let clients: Clients;
let ch: ClickHouseClient;
let app: ReturnType<typeof createQueryApp>;
const OTHER_KEY = `other-${randomBytes(8).toString('hex')}`;
const OTHER_WS = 'ws_other_tenant';

const call = async (method: string, path: string, body?: unknown, key = cfg.keys.adminKey) => {
  const res = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, any> };
};

const s3 = (over: Record<string, unknown> = {}) => ({
  name: 'lake',
  datasets: ['events', 'segment_changes'],
  target: {
    kind: 's3',
    endpoint: 'https://s3.eu-west-1.example.com',
    bucket: 'my-lake',
    prefix: 'cdp/raw',
    region: 'eu-west-1',
    accessKeyId: 'AKIDEXAMPLE',
    secretAccessKey: 'very-secret-value',
    ...over,
  },
});

beforeAll(async () => {
  cfg = testConfig({ CDP_SECRETS_KEY: randomBytes(32).toString('base64') });
  const log = testLogger(cfg);
  clients = createClients(cfg, log);
  ch = await clients.clickhouse();
  await migrate(ch);
  app = createQueryApp({
    redis: clients.redis(),
    clickhouse: ch,
    defs: new DefinitionStore(clients.redis(), cfg.redis.prefix),
    writeKeys: new WriteKeyStore(clients.redis(), cfg.redis.prefix),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k: string) =>
      k === cfg.keys.adminKey ? cfg.keys.workspace : k === OTHER_KEY ? OTHER_WS : undefined,
    unsubscribeSecret: cfg.unsubscribe.secret,
    secrets: cfg.channels.secrets,
    log,
    now: () => new Date(),
  });
}, 60_000);

afterAll(async () => {
  await clients?.close();
});

describe('warehouse exports API', () => {
  it('creates, updates and deletes an export, the secret sealed and never shown or audited', async () => {
    const created = await call('POST', '/v1/warehouse-exports', s3());
    expect(created.status).toBe(201);
    const d = created.body;
    expect(d).toMatchObject({
      id: expect.stringMatching(/^wh_[0-9a-f]{16}$/),
      version: 1,
      status: 'active',
      flushRows: 10_000,
      flushMs: 60_000,
      target: { kind: 's3', bucket: 'my-lake', prefix: 'cdp/raw', secretAccessKeySet: true },
    });
    expect(JSON.stringify(d)).not.toContain('very-secret-value');
    // at rest: sealed, bound to this workspace and export
    const raw = await clients
      .redis()
      .hget(warehouseKeys(cfg.redis.prefix).defs, `${cfg.keys.workspace}/${d.id}`);
    expect(raw).not.toContain('very-secret-value');
    const stored = JSON.parse(raw!);
    expect(
      open(cfg.channels.secrets, stored.target.secretAccessKey, warehouseAad(cfg.keys.workspace, d.id)),
    ).toBe('very-secret-value');
    expect(() =>
      open(cfg.channels.secrets, stored.target.secretAccessKey, warehouseAad(OTHER_WS, d.id)),
    ).toThrow();

    // an update without a secret keeps the stored one
    const { secretAccessKey: _s, ...noSecret } = s3().target;
    const updated = await call('PUT', `/v1/warehouse-exports/${d.id}`, {
      ...s3(),
      target: noSecret,
      status: 'paused',
      flushRows: 500,
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ version: 2, status: 'paused', flushRows: 500 });
    const kept = JSON.parse(
      (await clients.redis().hget(warehouseKeys(cfg.redis.prefix).defs, `${cfg.keys.workspace}/${d.id}`))!,
    );
    expect(kept.target.secretAccessKey).toEqual(stored.target.secretAccessKey);
    expect((await call('GET', `/v1/warehouse-exports/${d.id}`)).body).toEqual(updated.body);
    const stats = await call('GET', `/v1/warehouse-exports/${d.id}/stats`);
    expect(stats.body).toMatchObject({ rows: 0, files: 0, errors: 0, lastError: null, rangesPending: 0 });

    // another workspace sees nothing and cannot change it
    expect((await call('GET', `/v1/warehouse-exports/${d.id}`, undefined, OTHER_KEY)).status).toBe(404);
    expect((await call('DELETE', `/v1/warehouse-exports/${d.id}`, undefined, OTHER_KEY)).status).toBe(404);
    expect((await call('GET', '/v1/warehouse-exports', undefined, OTHER_KEY)).body.exports).toEqual([]);

    expect((await call('DELETE', `/v1/warehouse-exports/${d.id}`)).status).toBe(204);
    expect((await call('GET', `/v1/warehouse-exports/${d.id}`)).status).toBe(404);

    const audit = await eventually('audit rows', async () => {
      const rs = await ch.query({
        query:
          'SELECT action, before, after FROM audit_log WHERE entity_type = {t:String} AND entity_id = {id:String} ORDER BY at',
        query_params: { t: 'warehouse_export', id: d.id },
        format: 'JSONEachRow',
      });
      const rows = await rs.json<{ action: string; before: string; after: string }>();
      return rows.length >= 3 ? rows : false;
    });
    expect(audit.map((a) => a.action)).toEqual(['create', 'update', 'delete']);
    for (const a of audit) {
      expect(`${a.before}${a.after}`).not.toContain('very-secret-value');
      expect(`${a.before}${a.after}`).not.toContain('"ct"');
    }
  });

  it('refuses hostile definitions with a 400 naming the field', async () => {
    const dir = (path: unknown) => ({ name: 'd', datasets: ['events'], target: { kind: 'directory', path } });
    const cases: Array<[unknown, RegExp]> = [
      [dir('../other-workspace'), /target\.path/],
      [dir('/etc'), /target\.path/],
      [dir('a/../../b'), /target\.path/],
      [dir('a//b'), /target\.path/],
      [dir('a\\b'), /target\.path/],
      [dir('x'.repeat(201)), /target/],
      [s3({ endpoint: 'http://127.0.0.1:9000' }), /target\.endpoint: refused: loopback/],
      [s3({ endpoint: 'http://169.254.169.254' }), /target\.endpoint: refused/],
      [s3({ endpoint: 'http://[::ffff:10.0.0.1]' }), /target\.endpoint: refused/],
      [s3({ endpoint: 'https://user:pw@s3.example.com' }), /target\.endpoint: credentials/],
      [s3({ endpoint: 'https://s3.example.com/bucket?x=1' }), /target\.endpoint: scheme, host and port only/],
      [s3({ endpoint: 'file:///etc/passwd' }), /target\.endpoint: must be http or https/],
      [s3({ endpoint: 'not a url' }), /target\.endpoint: not a valid URL/],
      [s3({ bucket: 'Bad_Bucket' }), /target\.bucket/],
      [s3({ prefix: '../up' }), /target\.path/],
      [s3({ secretAccessKey: undefined }), /target\.secretAccessKey: required/],
      [s3({ extra: 1 }), /target/],
      [{ ...s3(), datasets: ['events', 'events'] }, /datasets/],
      [{ ...s3(), datasets: ['traits'] }, /datasets/],
      [{ ...s3(), flushRows: 0 }, /flushRows/],
      [{ ...s3(), __proto__: { admin: true }, constructor: 1 }, /body|constructor/],
    ];
    for (const [body, why] of cases) {
      const r = await call('POST', '/v1/warehouse-exports', body);
      expect(r.status, JSON.stringify(body).slice(0, 200)).toBe(400);
      expect(r.body.error ?? r.body.message ?? JSON.stringify(r.body)).toMatch(why);
    }
    expect((await call('POST', '/v1/warehouse-exports', '{not json')).status).toBe(400);
    expect((await call('GET', '/v1/warehouse-exports')).body.exports).toEqual([]);
  });
});
