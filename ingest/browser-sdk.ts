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

  app.get('/v1/projects/:writeKey/settings', (c) => {
    const writeKey = c.req.param('writeKey');
    if (!opts.resolveWriteKey(writeKey)) return c.json({ success: false, error: 'unknown write key' }, 404);
    const url = new URL(c.req.url);
    const proto = (c.req.header('x-forwarded-proto') ?? url.protocol.replace(':', '')).split(',')[0]!.trim();
    const host = c.req.header('x-forwarded-host') ?? c.req.header('host') ?? url.host;
    return c.json({
      integrations: {
        'Segment.io': {
          apiKey: writeKey,
          apiHost: `${host}/v1`,
          protocol: proto,
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
