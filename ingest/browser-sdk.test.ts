// The browser SDK's routes through app.request(), without a port: settings, the standalone
// build and its lazy chunks from the installed @segment/analytics-next, and nothing else.
// The real browser loading them is test/sdk/browser-sdk.test.ts.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import { createIngestApp } from './app.ts';
import { acceptsGzip, browserSdkRoutes, defaultBundleDir, loadBrowserBundle } from './browser-sdk.ts';

const resolveWriteKey = (k: string) => (k === 'wk-123456' ? 'ws1' : undefined);
const umd = defaultBundleDir();
const standalone = readFileSync(join(umd, 'standalone.js'));
const chunkNames = readdirSync(umd).filter((n) => /\.bundle\.[0-9a-f]+\.js$/.test(n));
const LOADER = '/analytics.js/v1/wk-123456/analytics.min.js';

function routes(bundleDir?: string) {
  return browserSdkRoutes({ resolveWriteKey, ...(bundleDir ? { bundleDir } : {}) });
}

type SettingsBody = { integrations: { 'Segment.io': { apiHost: string; protocol: string } } };

async function expect404Json(res: Response) {
  expect(res.status).toBe(404);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  expect(await res.json()).toMatchObject({ success: false, error: expect.any(String) });
}

describe('settings', () => {
  it('points the SDK at this host, as the request reached it, without a public URL; X-Forwarded-* never trusted', async () => {
    const res = await routes().request('/v1/projects/wk-123456/settings', {
      headers: {
        host: 'ingest.example.com:8443',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'evil.example',
      },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toMatchObject({
      integrations: {
        'Segment.io': { apiKey: 'wk-123456', apiHost: 'ingest.example.com:8443/v1', protocol: 'http' },
      },
    });
    // a Host that is no host name is not echoed
    const odd = await routes().request('http://ingest.local/v1/projects/wk-123456/settings', {
      headers: { host: 'evil.example/"><x' },
    });
    expect(((await odd.json()) as SettingsBody).integrations['Segment.io'].apiHost).toBe('ingest.local/v1');
  });

  it('with CDP_INGEST_PUBLIC_URL, points the SDK there whatever Host and X-Forwarded-* say, and is no-store', async () => {
    const sdk = browserSdkRoutes({ resolveWriteKey, publicUrl: 'https://collect.example.com/' });
    const app = createIngestApp({
      producer: { send: async () => {} } as unknown as Producer,
      eventsTopic: 'events',
      resolveWriteKey,
      log: createLogger({ level: 'silent', name: 'test' }),
      publicUrl: 'https://collect.example.com/edge',
    });
    const cases: Array<[Hono, string, Record<string, string>, string]> = [
      [
        sdk,
        '/v1/projects/wk-123456/settings',
        { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http' },
        'collect.example.com/v1',
      ],
      [
        sdk,
        'http://evil.example/v1/projects/wk-123456/settings',
        { host: 'evil.example' },
        'collect.example.com/v1',
      ],
      // through the ingest app as main.ts builds it, with a path prefix
      [
        app,
        'http://evil.example/v1/projects/wk-123456/settings',
        { host: 'evil.example', 'x-forwarded-host': 'evil.example' },
        'collect.example.com/edge/v1',
      ],
    ];
    for (const [routes, path, headers, apiHost] of cases) {
      const res = await routes.request(path, { headers });
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(((await res.json()) as SettingsBody).integrations['Segment.io']).toMatchObject({
        apiKey: 'wk-123456',
        apiHost,
        protocol: 'https',
      });
    }
  });

  it('answers 404 JSON for an unknown write key', async () => {
    const res = await routes().request('/v1/projects/nope/settings');
    expect(res.status).toBe(404);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ success: false, error: 'unknown write key' });
  });
});

describe('the standalone build', () => {
  it.each(['analytics.min.js', 'analytics.js'])('serves dist/umd/standalone.js as %s', async (file) => {
    const res = await routes().request(`/analytics.js/v1/wk-123456/${file}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('public, max-age=300');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('vary')).toBe('Accept-Encoding');
    expect(res.headers.get('content-encoding')).toBeNull();
    expect(Buffer.from(await res.arrayBuffer()).equals(standalone)).toBe(true);
  });

  it('answers 404 JSON for an unknown write key', async () => {
    await expect404Json(await routes().request('/analytics.js/v1/nope/analytics.min.js'));
  });

  it.each([
    '/analytics.js/v1/wk-123456/other.js',
    '/analytics.js/v1/wk-123456/standalone.js',
    '/analytics.js/v1/wk-123456/..%2F..%2Fpackage.json',
    '/analytics.js/v1/wk-123456/analytics.min.js.gz',
  ])('serves no other file: %s', async (path) => {
    await expect404Json(await routes().request(path));
  });

  it('sends the shipped gzip form when the client accepts it', async () => {
    const res = await routes().request(LOADER, { headers: { 'accept-encoding': 'gzip, deflate, br' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-encoding')).toBe('gzip');
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(gunzipSync(Buffer.from(await res.arrayBuffer())).equals(standalone)).toBe(true);
    const refused = await routes().request(LOADER, { headers: { 'accept-encoding': 'gzip;q=0, br' } });
    expect(refused.headers.get('content-encoding')).toBeNull();
  });

  it('answers 304 to a matching If-None-Match, for either encoding', async () => {
    const app = routes();
    const first = await app.request(LOADER);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^W\/"[\w-]+"$/);
    const again = await app.request(LOADER, {
      headers: { 'if-none-match': etag, 'accept-encoding': 'gzip' },
    });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    expect(again.headers.get('etag')).toBe(etag);
    const stale = await app.request(LOADER, { headers: { 'if-none-match': 'W/"something-else"' } });
    expect(stale.status).toBe(200);
  });

  it('answers HEAD without a body', async () => {
    const res = await routes().request(LOADER, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await res.text()).toBe('');
  });
});

describe('lazy chunks', () => {
  it('serves every chunk of the installed build, cached for good', async () => {
    expect(chunkNames.length).toBeGreaterThan(0);
    // the names the standalone build asks for are the files there (webpack `[name].bundle.[hash].js`)
    for (const name of chunkNames) {
      const hash = name.split('.')[2]!;
      expect(standalone.includes(hash)).toBe(true);
      const res = await routes().request(`/analytics-next/bundles/${name}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(Buffer.from(await res.arrayBuffer()).equals(readFileSync(join(umd, name)))).toBe(true);
    }
  });

  it.each([
    '/analytics-next/bundles/standalone.js',
    '/analytics-next/bundles/index.js',
    `/analytics-next/bundles/${chunkNames[0]}.map`,
    `/analytics-next/bundles/${chunkNames[0]}.gz`,
    '/analytics-next/bundles/..%2Fpackage.json',
    '/analytics-next/bundles/..%2F..%2F..%2Fpackage.json',
    '/analytics-next/bundles/%2e%2e%2f%2e%2e%2fpackage.json',
    '/analytics-next/bundles/..%5C..%5Cpackage.json',
    '/analytics-next/bundles/%2Fetc%2Fpasswd',
    '/analytics-next/bundles/../../package.json',
    '/analytics-next/bundles/x.bundle.0123456789abcdef.js',
  ])('serves no other file and no path: %s', async (path) => {
    const res = await createApp().request(path);
    await expect404Json(res);
  });
});

describe('without the package', () => {
  it('answers 404 JSON for the scripts and still serves settings', async () => {
    const app = routes(mkdtempSync(join(tmpdir(), 'cdp-no-bundle-')));
    await expect404Json(await app.request(LOADER));
    await expect404Json(await app.request(`/analytics-next/bundles/${chunkNames[0]}`));
    expect((await app.request('/v1/projects/wk-123456/settings')).status).toBe(200);
  });

  it('ignores a gzip file that is not the same content', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cdp-bundle-'));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'standalone.js'), 'console.log("new")');
    writeFileSync(join(dir, 'standalone.js.gz'), gzipSync('console.log("old")'));
    writeFileSync(join(dir, 'a.bundle.0123456789abcdef.js'), 'chunk()');
    writeFileSync(join(dir, 'a.bundle.0123456789abcdef.js.gz'), 'not gzip');
    const bundle = await loadBrowserBundle(dir);
    expect(bundle.standalone.gzip).toBeUndefined();
    expect([...bundle.chunks.keys()]).toEqual(['a.bundle.0123456789abcdef.js']);
    const res = await routes(dir).request(LOADER, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.headers.get('content-encoding')).toBeNull();
    expect(await res.text()).toBe('console.log("new")');
  });
});

describe('acceptsGzip', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['identity', false],
    ['gzip', true],
    ['GZIP', true],
    ['deflate, gzip;q=0.5', true],
    ['x-gzip', true],
    ['gzip;q=0', false],
    ['gzip; q=0.0', false],
    ['*', true],
    ['*;q=0', false],
    ['br, *', true],
    ['*, gzip;q=0', false],
  ])('%s → %s', (header, expected) => {
    expect(acceptsGzip(header)).toBe(expected);
  });
});

describe('mounted in the ingest app', () => {
  it('serves the build and answers settings cross-origin', async () => {
    const app = createApp();
    expect((await app.request(LOADER)).status).toBe(200);
    const res = await app.request('/v1/projects/wk-123456/settings', {
      headers: { origin: 'https://shop.example.com' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://shop.example.com');
  });
});

function createApp() {
  const producer: Producer = { connect: async () => {}, disconnect: async () => {}, send: async () => {} };
  return createIngestApp({
    producer,
    eventsTopic: 'events',
    resolveWriteKey,
    log: createLogger({ level: 'silent', name: 'test' }),
  });
}
