// The query API's body validation (query/validate.ts, readJson in query/context.ts): first on a
// small Hono app of its own (pure logic: typed body through, the 400's wording), then through
// createQueryApp against real Redis and chDB, on routes that use it: malformed JSON, wrong
// types, unknown fields, another content type, hostile nesting and a 10 MB body, each answered
// with a readable 400/413 in the API's `{error}` shape and nothing stored.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { Hono } from 'hono';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type ClickHouseClient, createClickHouse } from '../runtime/clickhouse.ts';
import { DefinitionStore } from '../runtime/definitions.ts';
import { createLogger } from '../runtime/log.ts';
import { WriteKeyStore } from '../runtime/write-keys.ts';
import { migrate } from '../schemas/migrations.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { uniqueId } from '../test/harness.ts';
import { createQueryApp } from './app.ts';
import { jsonDepth, MAX_JSON_DEPTH, type QueryEnv } from './context.ts';
import { QueryError } from './query-error.ts';
import { checkBody, fieldName, validate } from './validate.ts';

/** `[[[…]]]` nested `n` deep, built without recursion. */
const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

describe('validate(schema) on its own', () => {
  const Item = Type.Object({ n: Type.Integer({ minimum: 0 }) }, { additionalProperties: false });
  const Body = Type.Object(
    { name: Type.String({ minLength: 1, maxLength: 20 }), items: Type.Optional(Type.Array(Item)) },
    { additionalProperties: false },
  );
  const app = new Hono<QueryEnv>();
  app.onError((err, c) =>
    err instanceof QueryError
      ? c.json({ error: err.message }, err.status)
      : c.json({ error: 'internal' }, 500),
  );
  app.post('/plain', validate(Body), (c) => {
    const body = c.req.valid('json');
    // typed: name is a string, items an array of {n}
    return c.json({ name: body.name.toUpperCase(), total: (body.items ?? []).reduce((s, i) => s + i.n, 0) });
  });
  app.post('/hinted', validate(Body, { hint: 'name: a short string' }), (c) => c.json(c.req.valid('json')));
  const post = async (path: string, body: string, type = 'application/json') => {
    const res = await app.request(path, { method: 'POST', headers: { 'content-type': type }, body });
    return { status: res.status, body: (await res.json()) as { error?: string } & Record<string, unknown> };
  };

  it('passes a valid body to the handler, typed', async () => {
    const r = await post('/plain', JSON.stringify({ name: 'ada', items: [{ n: 2 }, { n: 3 }] }));
    expect(r).toEqual({ status: 200, body: { name: 'ADA', total: 5 } });
  });

  it('names the first wrong field, dotted, in {error}', async () => {
    expect(await post('/plain', JSON.stringify({ name: 5 }))).toEqual({
      status: 400,
      body: { error: 'name: Expected string' },
    });
    const deep = await post('/plain', JSON.stringify({ name: 'a', items: [{ n: 1 }, { n: -1 }] }));
    expect(deep.status).toBe(400);
    expect(deep.body.error).toMatch(/^items\.1\.n: Expected integer to be greater or equal to 0$/);
    const extra = await post('/plain', JSON.stringify({ name: 'a', admin: true }));
    expect(extra.status).toBe(400);
    expect(extra.body.error).toMatch(/^admin: Unexpected property$/);
    const missing = await post('/plain', '{}');
    expect(missing.body.error).toMatch(/^name: Expected required property$/);
    const notObject = await post('/plain', '[1,2]');
    expect(notObject.body.error).toMatch(/^body: Expected object$/);
    const nul = await post('/plain', 'null');
    expect(nul.body.error).toMatch(/^body: /);
    const long = await post('/plain', JSON.stringify({ name: 'x'.repeat(21) }));
    expect(long.body.error).toMatch(/^name: Expected string length less or equal to 20$/);
  });

  it('adds the hint of what a right body looks like', async () => {
    const r = await post('/hinted', JSON.stringify({ name: '' }));
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('name: Expected string length greater or equal to 1 (name: a short string)');
  });

  it('refuses malformed JSON, another content type and an empty body with a 400', async () => {
    const bad = await post('/plain', '{"name": "ada",');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/^malformed JSON: /);
    const text = await post('/plain', JSON.stringify({ name: 'ada' }), 'text/plain');
    expect(text).toEqual({ status: 400, body: { error: 'send the body as application/json' } });
    const empty = await post('/plain', '');
    expect(empty.status).toBe(400);
    expect(empty.body.error).toMatch(/^malformed JSON: /);
    // a charset parameter is fine
    expect((await post('/plain', '{"name":"a"}', 'application/json; charset=utf-8')).status).toBe(200);
  });

  it('refuses nesting deeper than MAX_JSON_DEPTH before parsing it', async () => {
    const hostile = await post('/plain', `{"name":"a","items":${nested(200_000)}}`);
    expect(hostile).toEqual({
      status: 400,
      body: { error: `body: nested deeper than ${MAX_JSON_DEPTH} levels` },
    });
    // at the limit it is parsed, and the schema answers
    const atLimit = await post('/plain', `{"name":"a","items":${nested(MAX_JSON_DEPTH - 1)}}`);
    expect(atLimit.status).toBe(400);
    expect(atLimit.body.error).toMatch(/^items\.0: Expected object$/);
  });

  it('counts depth outside strings only, escapes included', () => {
    expect(jsonDepth('{"a":[1,{"b":[]}]}')).toBe(4);
    expect(jsonDepth('"[[[[{{{{"')).toBe(0);
    expect(jsonDepth(JSON.stringify({ s: 'quote \\" then [[[[ and \\\\' }))).toBe(1);
    expect(jsonDepth(JSON.stringify({ s: '\\', t: [[1]] }))).toBe(3);
    expect(jsonDepth(nested(1_000_000))).toBe(MAX_JSON_DEPTH + 1); // stops early
  });

  it("says a field's own errorMessage instead of TypeBox's wording, missing fields too", () => {
    const Sample = Type.Object(
      {
        size: Type.Integer({ minimum: 1, maximum: 10, errorMessage: 'an integer from 1 to 10' }),
        tag: Type.Optional(Type.String()),
      },
      { errorMessage: 'an object {size, tag?}' },
    );
    expect(() => checkBody(Sample, { size: 11 })).toThrow(/^size: an integer from 1 to 10$/);
    expect(() => checkBody(Sample, {})).toThrow(/^size: an integer from 1 to 10$/);
    expect(() => checkBody(Sample, [])).toThrow(/^body: an object \{size, tag\?\}$/);
    // a field without one keeps TypeBox's wording
    expect(() => checkBody(Sample, { size: 1, tag: 2 })).toThrow(/^tag: Expected string$/);
  });

  it('turns JSON pointers into field names', () => {
    expect(fieldName('')).toBe('body');
    expect(fieldName('/consents/0/channel')).toBe('consents.0.channel');
    expect(fieldName('/a~1b/c~0d')).toBe('a/b.c~d');
    expect(checkBody(Body, { name: 'a' })).toEqual({ name: 'a' });
    expect(() => checkBody(Body, { name: 1 })).toThrow(/^name: Expected string$/);
  });
});

describe('routes that validate with it (createQueryApp, real Redis and chDB)', () => {
  let redis: Redis;
  let ch: ClickHouseClient;
  let app: ReturnType<typeof createQueryApp>;
  let writeKeys: WriteKeyStore;
  const prefix = uniqueId('val');
  const ws = uniqueId('ws_');

  beforeAll(async () => {
    redis = new Redis(inject('redisUrl'));
    ch = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-validate-')) });
    await migrate(ch);
    writeKeys = new WriteKeyStore(redis, prefix);
    app = createQueryApp({
      redis,
      clickhouse: ch,
      defs: new DefinitionStore(redis, prefix),
      writeKeys,
      redisPrefix: prefix,
      resolveAdminKey: (k) => (k === 'admin-v' ? ws : undefined),
      unsubscribeSecret: 'unused-in-this-suite-0123456789',
      log: createLogger({ level: 'silent', name: 'test' }),
    });
  }, 60_000);
  afterAll(async () => {
    await ch?.close();
    redis?.disconnect();
  });

  const call = async (method: string, path: string, body: string, type = 'application/json') => {
    const res = await app.request(path, {
      method,
      headers: { authorization: 'Bearer admin-v', 'content-type': type },
      ...(method === 'GET' ? {} : { body }),
    });
    const text = await res.text();
    return { status: res.status, error: (JSON.parse(text) as { error?: string }).error, text };
  };

  it('POST /v1/write-keys: wrong types, unknown fields, malformed and hostile bodies are 400s; nothing is created', async () => {
    const cases: Array<[string, RegExp]> = [
      [JSON.stringify({ name: 5 }), /^name: Expected string$/],
      [JSON.stringify({ name: 'k', kind: 'root' }), /^kind: /],
      [JSON.stringify({ name: 'k', workspaceId: 'someone-else' }), /^workspaceId: Unexpected property$/],
      ['{"name": "k"', /^malformed JSON: /],
      ['"just a string"', /^body: Expected object$/],
      [`{"name":"k","x":${nested(300_000)}}`, /^body: nested deeper than 100 levels$/],
    ];
    const answers = await Promise.all(cases.map(([body]) => call('POST', '/v1/write-keys', body)));
    answers.forEach((r, i) => {
      expect(r.status, cases[i]![0].slice(0, 40)).toBe(400);
      expect(r.error, cases[i]![0].slice(0, 40)).toMatch(cases[i]![1]);
    });
    const form = await call('POST', '/v1/write-keys', 'name=k', 'application/x-www-form-urlencoded');
    expect(form).toMatchObject({ status: 400, error: 'send the body as application/json' });
    expect(await writeKeys.list(ws)).toEqual([]);

    const ok = await call('POST', '/v1/write-keys', JSON.stringify({ name: 'site', kind: 'client' }));
    expect(ok.status).toBe(201);
    expect(JSON.parse(ok.text)).toMatchObject({ name: 'site', kind: 'client', workspaceId: ws });
    expect((await writeKeys.list(ws)).map((k) => k.name)).toEqual(['site']);
  }, 60_000);

  it('a 10 MB body is refused with 413 before it is read', async () => {
    const huge = JSON.stringify({ name: 'x'.repeat(10 * 1024 * 1024) });
    const r = await call('POST', '/v1/write-keys', huge);
    expect(r).toMatchObject({ status: 413, error: 'body over 1 MiB' });
    const settings = await call(
      'PUT',
      '/v1/settings',
      JSON.stringify({ clientKeys: 'x'.repeat(2 * 1024 * 1024) }),
    );
    expect(settings.status).toBe(413);
  });

  it('PUT /v1/settings: the field, the problem and what a right body looks like', async () => {
    const r = await call('PUT', '/v1/settings', JSON.stringify({ clientKeys: 'open' }));
    expect(r.status).toBe(400);
    expect(r.error).toMatch(/^clientKeys: .*\(clientKeys: "restricted", "trusted" or null; doubleOptIn: /);
    const nestedField = await call(
      'PUT',
      '/v1/settings',
      JSON.stringify({ doubleOptIn: { purposes: ['marketing'], ttlHours: 'soon' } }),
    );
    expect(nestedField.status).toBe(400);
    expect(nestedField.error).toMatch(/^doubleOptIn(\.ttlHours)?: /);
  });

  it('PUT /v1/profiles/{id}/consent and POST /v1/suppressions refuse wrong bodies with 400s', async () => {
    const consent = await call(
      'PUT',
      '/v1/profiles/p1/consent',
      JSON.stringify({ channel: 'email', subscribed: 'yes' }),
    );
    expect(consent.status).toBe(400);
    expect(consent.error).toMatch(/^[a-z.0-9]+: /);
    const sup = await call('POST', '/v1/suppressions', JSON.stringify({ email: 42 }));
    expect(sup).toMatchObject({ status: 400, error: 'email: Expected string' });
    const deep = await call('POST', '/v1/suppressions', `{"email":${nested(500)}}`);
    expect(deep).toMatchObject({ status: 400, error: 'body: nested deeper than 100 levels' });
    expect(await redis.scard(workspaceKeys(prefix, ws).suppressions)).toBe(0);
  });

  it('a segment rule nested a hundred thousand deep is a 400, not a stack overflow', async () => {
    const rule = `${'{"!":['.repeat(100_000)}true${']}'.repeat(100_000)}`;
    const r = await call('POST', '/v1/segments', `{"name":"deep","rule":${rule}}`);
    expect(r).toMatchObject({ status: 400, error: 'body: nested deeper than 100 levels' });
    const list = await call('GET', '/v1/segments', '');
    expect(JSON.parse(list.text)).toEqual({ segments: [] });
  });
});
