// The OpenAPI document against the app it describes: every /v1 method and path registered on the
// query app (every optional route group mounted) is documented, and every documented /v1 path
// and method is registered. Paths compare with their parameters unnamed (`:id` = `{id}`).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type ClickHouseClient, createClickHouse } from '../runtime/clickhouse.ts';
import { DefinitionStore } from '../runtime/definitions.ts';
import { createLogger } from '../runtime/log.ts';
import { WriteKeyStore } from '../runtime/write-keys.ts';
import { uniqueId } from '../test/harness.ts';
import { createQueryApp, type QueryDeps } from './app.ts';
import { queryOpenApi } from './openapi.ts';

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/** `/v1/x/:id/y`, `/v1/x/:id{[0-9]+}/y` and `/v1/x/{id}/y` all become `/v1/x/{}/y`. */
const normalisePath = (p: string) =>
  p
    .replace(/\/:[^/{]+(\{[^}]*\})?/g, '/{}')
    .replace(/\/\{[^}/]+\}/g, '/{}')
    .replace(/\/$/, '') || '/';

let redis: Redis;
let ch: ClickHouseClient;
let app: ReturnType<typeof createQueryApp>;

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  ch = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-openapi-')) });
  const prefix = uniqueId('oa');
  app = createQueryApp({
    redis,
    clickhouse: ch,
    defs: new DefinitionStore(redis, prefix),
    writeKeys: new WriteKeyStore(redis, prefix),
    redisPrefix: prefix,
    resolveAdminKey: (k) => (k === 'admin-oa' ? 'ws-oa' : undefined),
    unsubscribeSecret: 'unused-in-this-suite-0123456789',
    log: createLogger({ level: 'silent', name: 'test' }),
    // every optional route group mounted; their routes are listed, never called
    exports: { dir: '/nonexistent', ttlMs: 1000, engine: 'chdb' },
    imports: { dir: '/nonexistent', maxBytes: 1024 },
    producer: {} as QueryDeps['producer'],
  });
}, 60_000);
afterAll(async () => {
  await ch?.close();
  redis?.disconnect();
});

function registered(): Set<string> {
  const out = new Set<string>();
  for (const r of app.routes) {
    if (r.method === 'ALL' || !r.path.startsWith('/v1')) continue;
    out.add(`${r.method} ${normalisePath(r.path)}`);
  }
  return out;
}

function documented(): Set<string> {
  const doc = queryOpenApi() as { paths: Record<string, Record<string, unknown>> };
  const out = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths)) {
    if (!path.startsWith('/v1')) continue;
    for (const m of METHODS) if (item[m]) out.add(`${m.toUpperCase()} ${normalisePath(path)}`);
  }
  return out;
}

describe('OpenAPI document vs registered routes', () => {
  it('normalises parameters the same on both sides', () => {
    expect(normalisePath('/v1/people/:id/tokens/:tokenId')).toBe('/v1/people/{}/tokens/{}');
    expect(normalisePath('/v1/people/{id}/tokens/{tokenId}')).toBe('/v1/people/{}/tokens/{}');
    expect(normalisePath('/v1/forms/:id/versions/:version{[0-9]+}')).toBe('/v1/forms/{}/versions/{}');
    expect(normalisePath('/v1/segments/')).toBe('/v1/segments');
  });

  it('documents every registered /v1 route', () => {
    const reg = registered();
    // the app has a good number of routes: a listing that came back empty would pass vacuously
    expect(reg.size).toBeGreaterThan(100);
    const doc = documented();
    expect([...reg].filter((r) => !doc.has(r)).sort()).toEqual([]);
  });

  it('registers every documented /v1 route', () => {
    const reg = registered();
    expect([...documented()].filter((r) => !reg.has(r)).sort()).toEqual([]);
  });

  it('names path parameters as the routes do, and declares each one', () => {
    const names = (p: string) => [...p.matchAll(/[:{]([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
    const routeNames = new Map<string, string[]>();
    for (const r of app.routes)
      if (r.method !== 'ALL' && r.path.startsWith('/v1'))
        routeNames.set(`${r.method} ${normalisePath(r.path)}`, names(r.path.replace(/\{[^}]*\}/g, '')));
    const doc = queryOpenApi() as {
      paths: Record<string, Record<string, { parameters?: Array<{ name: string; in: string }> }>>;
    };
    const wrong: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      if (!path.startsWith('/v1')) continue;
      for (const m of METHODS) {
        const op = item[m];
        if (!op) continue;
        const key = `${m.toUpperCase()} ${normalisePath(path)}`;
        const inPath = names(path);
        const declared = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
        if (JSON.stringify(routeNames.get(key)) !== JSON.stringify(inPath))
          wrong.push(`${key}: route names ${routeNames.get(key)?.join(',')}, document ${inPath.join(',')}`);
        if (JSON.stringify([...declared].sort()) !== JSON.stringify([...inPath].sort()))
          wrong.push(`${key}: path has ${inPath.join(',')}, parameters declare ${declared.join(',')}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('gives every operation a unique operationId and every $ref a schema', () => {
    const doc = queryOpenApi() as {
      paths: Record<string, Record<string, { operationId?: string }>>;
      components: { schemas: Record<string, unknown> };
    };
    const ids: string[] = [];
    for (const item of Object.values(doc.paths))
      for (const m of METHODS) if (item[m]) ids.push(item[m]!.operationId ?? `(none) ${m}`);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
    expect(ids.filter((id) => id.startsWith('(none)'))).toEqual([]);
    const refs = [...JSON.stringify(doc).matchAll(/"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(10);
    expect([...new Set(refs)].filter((r) => !(r in doc.components.schemas))).toEqual([]);
  });
});
