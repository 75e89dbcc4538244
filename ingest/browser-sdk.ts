// What the browser SDK (analytics.js / @segment/analytics-next) loads from its CDN, served
// by this ingest host so that a page talks to nobody else:
//
//   GET /analytics.js/v1/{writeKey}/analytics.min.js  the standalone build (the snippet's script src)
//   GET /analytics-next/bundles/{chunk}.js            chunks it loads lazily, from `{cdn}/analytics-next/bundles/`
//   GET /v1/projects/{writeKey}/settings              settings pointing its apiHost at this host
//
// The standalone build takes its CDN from its own script URL when that is https
// (`https://host/analytics.js/v1/…`); a page served over http or through a proxy that
// rewrites paths sets `analytics._cdn = 'http://host'` in the snippet, as Segment documents
// for custom proxies. Only the files of the installed package's dist/umd are served, read
// once into memory by name; a request names a file, never a path.
//
// The settings' apiHost is CDP_INGEST_PUBLIC_URL when it is set, whatever the request's Host
// or X-Forwarded-* headers say: behind a cache or CDN, one answer built from a forged header
// would otherwise send every visitor's events to another host. Unset (local development),
// it is the request's Host over the connection's own protocol; X-Forwarded-Host and
// X-Forwarded-Proto are never trusted, like X-Forwarded-For elsewhere on this host. The
// answer is `Cache-Control: no-store`, so no shared cache keeps one request's answer for another.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { type Context, Hono } from 'hono';
import type { WriteKeyResolver } from './app.ts';

export interface BrowserSdkOptions {
  resolveWriteKey: WriteKeyResolver;
  /** Directory of the analytics-next UMD build; default: the installed package's dist/umd. */
  bundleDir?: string;
  /** CDP_INGEST_PUBLIC_URL when set: the settings' apiHost and protocol come from it alone. */
  publicUrl?: string;
}

/** One servable file: its bytes, a gzip form when the package ships a matching one, an ETag. */
export interface BundleAsset {
  body: Buffer;
  gzip?: Buffer;
  etag: string;
}

export interface BrowserBundle {
  /** dist/umd/standalone.js, served as analytics.min.js */
  standalone: BundleAsset;
  /** lazily loaded chunks by file name, e.g. `schemaFilter.bundle.a6a77355d52c20e3a83d.js` */
  chunks: ReadonlyMap<string, BundleAsset>;
}

/** Webpack chunk names of the UMD build: `[name].bundle.[contenthash].js`. */
const CHUNK_NAME = /^[A-Za-z0-9_-]+\.bundle\.[0-9a-f]{8,64}\.js$/;
const LOADER_NAMES = new Set(['analytics.min.js', 'analytics.js']);
const JS_TYPE = 'text/javascript; charset=utf-8';
// The loader's URL never changes between versions, so browsers revalidate it often; chunk
// names carry their content hash, so they never change at all.
const LOADER_CACHE = 'public, max-age=300';
const CHUNK_CACHE = 'public, max-age=31536000, immutable';
/** A Host header: a DNS name or IPv4 address, or a bracketed IPv6 one, and an optional port. */
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/** apiHost (host, port and path prefix, then /v1) and protocol of a public URL. */
export function apiHostOf(publicUrl: string): { apiHost: string; protocol: string } {
  const u = new URL(publicUrl);
  return { apiHost: `${u.host}${u.pathname.replace(/\/+$/, '')}/v1`, protocol: u.protocol.slice(0, -1) };
}

export function defaultBundleDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@segment/analytics-next/package.json')), 'dist', 'umd');
}

/** Reads the standalone build and its chunks from `dir` (dist/umd of @segment/analytics-next). */
export async function loadBrowserBundle(dir: string = defaultBundleDir()): Promise<BrowserBundle> {
  const names = await readdir(dir);
  const gzNames = new Set(names.filter((n) => n.endsWith('.js.gz')));
  const read = async (name: string): Promise<BundleAsset> => {
    const body = await readFile(join(dir, name));
    let gzip: Buffer | undefined;
    if (gzNames.has(`${name}.gz`)) {
      const gz = await readFile(join(dir, `${name}.gz`));
      // use the shipped gzip form only when it is exactly this file
      try {
        if (gunzipSync(gz).equals(body)) gzip = gz;
      } catch {
        gzip = undefined;
      }
    }
    // weak: the gzip and identity forms are the same content
    const etag = `W/"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    return { body, gzip, etag };
  };
  if (!names.includes('standalone.js')) throw new Error(`no standalone.js in ${dir}`);
  const chunks = new Map<string, BundleAsset>();
  for (const name of names.filter((n) => CHUNK_NAME.test(n)).sort()) chunks.set(name, await read(name));
  return { standalone: await read('standalone.js'), chunks };
}

/** True when Accept-Encoding allows gzip (`gzip`, `x-gzip` or `*`, without `q=0`). */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let star = false;
  for (const part of header.toLowerCase().split(',')) {
    const [coding, ...params] = part.split(';').map((s) => s.trim());
    const q = params.find((p) => p.startsWith('q='));
    const allowed = !q || Number(q.slice(2)) > 0;
    if (coding === 'gzip' || coding === 'x-gzip') return allowed;
    if (coding === '*') star = allowed;
  }
  return star;
}

export function browserSdkRoutes(opts: BrowserSdkOptions): Hono {
  const app = new Hono();
  // Read on first use, once: the package may be missing where no page loads the SDK from here.
  let bundle: Promise<BrowserBundle | undefined> | undefined;
  const getBundle = () => {
    bundle ??= loadBrowserBundle(opts.bundleDir ?? defaultBundleDir()).catch(() => undefined);
    return bundle;
  };
  const unavailable = (c: Context) =>
    c.json({ success: false, error: 'browser SDK bundle not installed on this host' }, 404);

  app.get('/analytics.js/v1/:writeKey/:file', async (c) => {
    const file = c.req.param('file');
    if (!LOADER_NAMES.has(file)) return c.json({ success: false, error: `no file ${file}` }, 404);
    if (!opts.resolveWriteKey(c.req.param('writeKey')))
      return c.json({ success: false, error: 'unknown write key' }, 404);
    const b = await getBundle();
    return b ? sendAsset(c, b.standalone, LOADER_CACHE) : unavailable(c);
  });

  app.get('/analytics-next/bundles/:file', async (c) => {
    const b = await getBundle();
    if (!b) return unavailable(c);
    const asset = b.chunks.get(c.req.param('file'));
    if (!asset) return c.json({ success: false, error: 'no such bundle' }, 404);
    return sendAsset(c, asset, CHUNK_CACHE);
  });

  const configured = opts.publicUrl ? apiHostOf(opts.publicUrl) : undefined;
  app.get('/v1/projects/:writeKey/settings', (c) => {
    // neither this answer nor the 404 may be kept by a shared cache for other requests
    c.header('Cache-Control', 'no-store');
    const writeKey = c.req.param('writeKey');
    if (!opts.resolveWriteKey(writeKey)) return c.json({ success: false, error: 'unknown write key' }, 404);
    let target = configured;
    if (!target) {
      const url = new URL(c.req.url);
      const header = c.req.header('host');
      const host = header && HOST.test(header) ? header : url.host;
      target = { apiHost: `${host}/v1`, protocol: url.protocol.slice(0, -1) };
    }
    return c.json({
      integrations: {
        'Segment.io': {
          apiKey: writeKey,
          apiHost: target.apiHost,
          protocol: target.protocol,
          unbundledIntegrations: [],
          addBundledMetadata: true,
          maybeBundledConfigIds: {},
        },
      },
      plan: {
        track: { __default: { enabled: true, integrations: {} } },
        identify: { __default: { enabled: true } },
        group: { __default: { enabled: true } },
      },
      edgeFunction: {},
      analyticsNextEnabled: true,
      middlewareSettings: {},
      enabledMiddleware: {},
      metrics: { sampleRate: 0 },
      legacyVideoPluginsEnabled: false,
      remotePlugins: [],
    });
  });
  return app;
}

function sendAsset(c: Context, asset: BundleAsset, cacheControl: string): Response {
  const headers: Record<string, string> = {
    'content-type': JS_TYPE,
    'cache-control': cacheControl,
    etag: asset.etag,
    vary: 'Accept-Encoding',
    'x-content-type-options': 'nosniff',
    // lets a page load it with <script crossorigin> (error details, subresource integrity)
    'access-control-allow-origin': '*',
  };
  const inm = c.req.header('if-none-match');
  const opaque = asset.etag.replace(/^W\//, '');
  if (inm && (inm.trim() === '*' || inm.split(',').some((t) => t.trim().replace(/^W\//, '') === opaque)))
    return new Response(null, { status: 304, headers });
  if (asset.gzip && acceptsGzip(c.req.header('accept-encoding')))
    return new Response(bytes(asset.gzip), {
      status: 200,
      headers: { ...headers, 'content-encoding': 'gzip' },
    });
  return new Response(bytes(asset.body), { status: 200, headers });
}

const bytes = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
