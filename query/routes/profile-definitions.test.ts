// /v1/computed-traits and /v1/scores through app.request(), against real Redis (the
// definition store) and chDB (the audit log): versioned CRUD, audit rows, and hostile or
// invalid input answered with a 400 that names the field.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createLogger } from '../../runtime/log.ts';
import { WriteKeyStore } from '../../runtime/write-keys.ts';
import { MAX_COMPUTED_TRAITS } from '../../schemas/computed-trait.ts';
import { MAX_SCORES } from '../../schemas/lead-score.ts';
import { migrate } from '../../schemas/migrations.ts';
import { globalKeys } from '../../schemas/redis-keys.ts';
import { uniqueId } from '../../test/harness.ts';
import { createQueryApp } from '../app.ts';

let redis: Redis;
let ch: ClickHouseClient;
let app: ReturnType<typeof createQueryApp>;
const prefix = uniqueId('defs');
const wsA = uniqueId('wsa_');
const wsB = uniqueId('wsb_');
const KEYS: Record<string, string> = { 'key-a': wsA, 'key-b': wsB };
let clock = Date.parse('2026-06-01T00:00:00Z');

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  ch = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-defs-')) });
  await migrate(ch);
  app = createQueryApp({
    redis,
    clickhouse: ch,
    defs: new DefinitionStore(redis, prefix),
    writeKeys: new WriteKeyStore(redis, prefix),
    redisPrefix: prefix,
    resolveAdminKey: (k) => KEYS[k],
    unsubscribeSecret: 'unused-in-this-suite-0123456789',
    log: createLogger({ level: 'silent', name: 'test' }),
    // a second per call, so audit rows of one definition are ordered by time
    now: () => {
      clock += 1000;
      return new Date(clock);
    },
  });
});
afterAll(async () => {
  await ch?.close();
  redis?.disconnect();
});

const call = async (method: string, path: string, body?: unknown, key = 'key-a') => {
  const res = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : null };
};

const auditOf = async (id: string) => {
  const rs = await ch.query({
    query: 'SELECT action, entity_type FROM audit_log WHERE entity_id = {id:String} ORDER BY at',
    query_params: { id },
    format: 'JSONEachRow',
  });
  return (await rs.json<{ action: string; entity_type: string }>()).map(
    (r) => `${r.entity_type}:${r.action}`,
  );
};

describe('/v1/computed-traits', () => {
  it('creates, reads, versions, lists per workspace, deletes, and audits each change', async () => {
    const created = await call('POST', '/v1/computed-traits', {
      name: 'revenue_30d',
      kind: 'sum',
      event: 'Order Completed',
      property: 'revenue',
      where: { '==': [{ var: 'currency' }, 'EUR'] },
      window: '30d',
    });
    expect(created.status).toBe(201);
    const id = created.body!.id as string;
    expect(id).toMatch(/^ct_/);
    expect(created.body).toMatchObject({ workspaceId: wsA, version: 1, kind: 'sum', window: '30d' });

    const put = await call('PUT', `/v1/computed-traits/${id}`, {
      name: 'revenue_7d',
      kind: 'sum',
      event: 'Order Completed',
      property: 'revenue',
      window: '7d',
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ id, name: 'revenue_7d', version: 2, window: '7d' });
    expect(put.body!.where).toBeUndefined(); // a PUT replaces the definition
    expect((await call('GET', `/v1/computed-traits/${id}`)).body).toMatchObject({ version: 2 });

    // another workspace sees none of it
    expect((await call('GET', `/v1/computed-traits/${id}`, undefined, 'key-b')).status).toBe(404);
    const listB = await call('GET', '/v1/computed-traits', undefined, 'key-b');
    expect(listB.body).toEqual({ computedTraits: [] });
    const listA = await call('GET', '/v1/computed-traits');
    expect((listA.body!.computedTraits as Array<{ id: string }>).map((d) => d.id)).toContain(id);

    // the processors reload on the revision counter
    const rev = await redis.get(globalKeys(prefix).revision);
    expect((await call('DELETE', `/v1/computed-traits/${id}`)).status).toBe(204);
    expect(await redis.get(globalKeys(prefix).revision)).not.toBe(rev);
    expect((await call('GET', `/v1/computed-traits/${id}`)).status).toBe(404);
    expect(await auditOf(id)).toEqual([
      'computed_trait:create',
      'computed_trait:update',
      'computed_trait:delete',
    ]);
  });

  it('refuses a second definition with the same name (409)', async () => {
    const body = { name: 'logins', kind: 'count', event: 'Logged In' };
    expect((await call('POST', '/v1/computed-traits', body)).status).toBe(201);
    const again = await call('POST', '/v1/computed-traits', body);
    expect(again.status).toBe(409);
    expect(again.body!.error).toMatch(/^name: /);
  });

  const BAD: Array<[string, unknown, RegExp]> = [
    ['malformed JSON', '{"name": "x", ', /malformed JSON/],
    ['an array', [1, 2], /^body: /],
    ['null', null, /^body: /],
    ['an unknown field', { name: 'x', kind: 'count', event: 'E', extra: 1 }, /^extra: unknown field/],
    [
      'a __proto__ key',
      '{"name":"x","kind":"count","event":"E","__proto__":{"admin":true}}',
      /^__proto__: unknown field/,
    ],
    [
      'an unknown kind',
      { name: 'x', kind: 'avg', event: 'E', property: 'p' },
      /^kind: one of count, sum, min, max, last/,
    ],
    ['no property for a sum', { name: 'x', kind: 'sum', event: 'E' }, /^property: required for kind sum/],
    [
      'a property path with an empty part',
      { name: 'x', kind: 'max', event: 'E', property: 'a..b' },
      /^property: /,
    ],
    [
      'a prototype property path',
      { name: 'x', kind: 'max', event: 'E', property: '__proto__.x' },
      /^property: /,
    ],
    ['a bad window unit', { name: 'x', kind: 'count', event: 'E', window: '2w' }, /^window: bad window "2w"/],
    [
      'a window over 400 days',
      { name: 'x', kind: 'count', event: 'E', window: '401d' },
      /^window: bad window/,
    ],
    ['a window of the wrong type', { name: 'x', kind: 'count', event: 'E', window: 7 }, /^window: /],
    ['a name that is not a rule path', { name: 'a.b', kind: 'count', event: 'E' }, /^name: letters, digits/],
    ['an empty event', { name: 'x', kind: 'count', event: '' }, /^event: /],
    [
      'a filter with an unknown operator',
      { name: 'x', kind: 'count', event: 'E', where: { eval: ['1'] } },
      /^where: unknown operator "eval"/,
    ],
    [
      'a filter that is not an object',
      { name: 'x', kind: 'count', event: 'E', where: 'true' },
      /^where: the filter must be/,
    ],
    [
      'a filter with a __proto__ operator',
      '{"name":"x","kind":"count","event":"E","where":{"__proto__":[1]}}',
      /^where: unknown operator "__proto__"/,
    ],
    [
      'a filter nested too deep',
      { name: 'x', kind: 'count', event: 'E', where: nest(40) },
      /^where.*too large or too deep/,
    ],
  ];
  for (const [what, body, error] of BAD)
    it(`answers 400 naming the field for ${what}`, async () => {
      const res = await call('POST', '/v1/computed-traits', body);
      expect(res.status).toBe(400);
      expect(res.body!.error).toMatch(error);
    });

  it('answers 413 for a body over 1 MiB and 401 without an admin key', async () => {
    const huge = { name: 'x', kind: 'count', event: 'E', description: 'x'.repeat(1_100_000) };
    expect((await call('POST', '/v1/computed-traits', huge)).status).toBe(413);
    const res = await app.request('/v1/computed-traits', { method: 'GET' });
    expect(res.status).toBe(401);
  });

  it(`refuses more than ${MAX_COMPUTED_TRAITS} per workspace`, async () => {
    const have = (
      (await call('GET', '/v1/computed-traits', undefined, 'key-b')).body!.computedTraits as unknown[]
    ).length;
    for (let i = have; i < MAX_COMPUTED_TRAITS; i++)
      expect(
        (await call('POST', '/v1/computed-traits', { name: `c${i}`, kind: 'count', event: 'E' }, 'key-b'))
          .status,
      ).toBe(201);
    const over = await call(
      'POST',
      '/v1/computed-traits',
      { name: 'one_more', kind: 'count', event: 'E' },
      'key-b',
    );
    expect(over.status).toBe(400);
    expect(over.body!.error).toMatch(/too many computed traits/);
  });
});

describe('segments reading computed traits and scores', () => {
  it('must name existing ones; those read cannot be deleted or renamed', async () => {
    const unknown = await call('POST', '/v1/segments', {
      name: 'spenders',
      rule: { '>=': [{ var: 'computed.spend_90d' }, 100] },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body!.error).toBe('rule: computed.spend_90d names no computed trait');
    const noScore = await call('POST', '/v1/segments', {
      name: 'hot',
      rule: { '>': [{ var: 'scores.nope' }, 1] },
    });
    expect(noScore.body!.error).toBe('rule: scores.nope names no score');

    const trait = await call('POST', '/v1/computed-traits', {
      name: 'spend_90d',
      kind: 'sum',
      event: 'Order',
      property: 'revenue',
      window: '90d',
    });
    const score = await call('POST', '/v1/scores', { name: 'heat', rules: [{ event: 'Order', points: 1 }] });
    const seg = await call('POST', '/v1/segments', {
      name: 'spenders',
      rule: { and: [{ '>=': [{ var: 'computed.spend_90d' }, 100] }, { '>': [{ var: 'scores.heat' }, 1] }] },
    });
    expect(seg.status).toBe(201);
    const segId = seg.body!.id as string;
    for (const [path, body] of [
      [
        `/v1/computed-traits/${trait.body!.id}`,
        { name: 'spend', kind: 'sum', event: 'Order', property: 'revenue' },
      ],
      [`/v1/scores/${score.body!.id}`, { name: 'heat2', rules: [{ event: 'Order', points: 1 }] }],
    ] as const) {
      const del = await call('DELETE', path);
      expect(del.status).toBe(409);
      expect(del.body!.error).toContain(segId);
      expect((await call('PUT', path, body)).status).toBe(409);
    }
    // once the segment no longer reads them, they can go
    expect((await call('DELETE', `/v1/segments/${segId}`)).status).toBe(204);
    expect((await call('DELETE', `/v1/computed-traits/${trait.body!.id}`)).status).toBe(204);
    expect((await call('DELETE', `/v1/scores/${score.body!.id}`)).status).toBe(204);
  });
});

describe('/v1/scores', () => {
  it('creates, versions and deletes a score, audited', async () => {
    const created = await call('POST', '/v1/scores', {
      name: 'lead',
      halfLifeDays: 14,
      rules: [
        { event: 'Demo Requested', points: 50 },
        { event: 'Page Viewed', where: { '==': [{ var: 'path' }, '/pricing'] }, points: 5 },
        { event: 'Unsubscribed', points: -30 },
        { trait: { '==': [{ var: 'traits.role' }, 'cto'] }, points: 20 },
      ],
    });
    expect(created.status).toBe(201);
    const id = created.body!.id as string;
    expect(id).toMatch(/^sc_/);
    const put = await call('PUT', `/v1/scores/${id}`, {
      name: 'lead',
      rules: [{ event: 'Signed Up', points: 1 }],
    });
    expect(put.body).toMatchObject({ version: 2, rules: [{ event: 'Signed Up', points: 1 }] });
    expect(put.body!.halfLifeDays).toBeUndefined();
    expect((await call('DELETE', `/v1/scores/${id}`)).status).toBe(204);
    expect(await auditOf(id)).toEqual(['score:create', 'score:update', 'score:delete']);
  });

  const rule = { event: 'E', points: 1 };
  const BAD: Array<[string, unknown, RegExp]> = [
    ['no rules', { name: 's', rules: [] }, /^rules: a list of 1 to 50 rules/],
    [
      'too many rules',
      { name: 's', rules: Array.from({ length: 51 }, () => rule) },
      /^rules: a list of 1 to 50/,
    ],
    ['a rule that is not an object', { name: 's', rules: [5] }, /^rules\.0: a rule is/],
    [
      'points that are not a number',
      { name: 's', rules: [{ event: 'E', points: 'ten' }] },
      /^rules\.0\.points: /,
    ],
    ['points out of range', { name: 's', rules: [{ event: 'E', points: 1e9 }] }, /^rules\.0\.points: /],
    [
      'an event rule with an unknown field',
      { name: 's', rules: [{ ...rule, weight: 2 }] },
      /^rules\.0\.weight: unknown field/,
    ],
    [
      'a rule mixing event and trait',
      { name: 's', rules: [{ ...rule, trait: { var: 'traits.x' } }] },
      /^rules\.0\.event: unknown field/,
    ],
    [
      'a trait rule reading events',
      { name: 's', rules: [{ trait: { '>': [{ event_count: ['E', '1d'] }, 1] }, points: 1 }] },
      /^rules\.0\.trait: may read only traits/,
    ],
    [
      'a trait rule reading another score',
      { name: 's', rules: [{ trait: { '>': [{ var: 'scores.other' }, 1] }, points: 1 }] },
      /^rules\.0\.trait: may read only traits/,
    ],
    [
      'a trait rule with an unknown operator',
      { name: 's', rules: [{ trait: { exec: [] }, points: 1 }] },
      /^rules\.0\.trait\.exec: unknown operator/,
    ],
    [
      'a bad where of an event rule',
      { name: 's', rules: [{ event: 'E', where: [1], points: 1 }] },
      /^rules\.0\.where: /,
    ],
    [
      'a half-life of zero',
      { name: 's', rules: [rule], halfLifeDays: 0 },
      /^halfLifeDays: a number of days above 0/,
    ],
    ['a negative half-life', { name: 's', rules: [rule], halfLifeDays: -3 }, /^halfLifeDays: /],
    ['an unknown field', { name: 's', rules: [rule], decay: '7d' }, /^decay: unknown field/],
    [
      'a __proto__ key in a rule',
      '{"name":"s","rules":[{"event":"E","points":1,"__proto__":{"x":1}}]}',
      /^rules\.0\.__proto__: unknown field/,
    ],
  ];
  for (const [what, body, error] of BAD)
    it(`answers 400 naming the field for ${what}`, async () => {
      const res = await call('POST', '/v1/scores', body);
      expect(res.status).toBe(400);
      expect(res.body!.error).toMatch(error);
    });

  it(`refuses more than ${MAX_SCORES} per workspace`, async () => {
    for (let i = 0; i < MAX_SCORES; i++)
      expect((await call('POST', '/v1/scores', { name: `s${i}`, rules: [rule] }, 'key-b')).status).toBe(201);
    const over = await call('POST', '/v1/scores', { name: 'one_more', rules: [rule] }, 'key-b');
    expect(over.status).toBe(400);
    expect(over.body!.error).toMatch(/too many scores/);
  });
});

function nest(depth: number): unknown {
  let node: unknown = { var: 'x' };
  for (let i = 0; i < depth; i++) node = { '!': [node] };
  return node;
}
