// Serves the embeddable form snippet (ingest/form-embed.js) as GET /v1/forms/embed.js: read
// once, gzipped once, answered with an ETag (304 on a match) and cached a day by browsers and
// CDNs, a week more while revalidating; a deploy reaches every page within a day. Anyone may
// load it (Access-Control-Allow-Origin *, Cross-Origin-Resource-Policy cross-origin): a page
// may use <script crossorigin>, and pages isolated with COEP may load it.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { type Context, Hono } from 'hono';
import { acceptsGzip } from './browser-sdk.ts';

export const FORM_EMBED_PATH = '/v1/forms/embed.js';
export const FORM_EMBED_CACHE = 'public, max-age=86400, stale-while-revalidate=604800';

export interface EmbedAsset {
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

let cached: EmbedAsset | undefined;

/** The snippet as served (read from next to this file on first use). */
export function formEmbedAsset(): EmbedAsset {
  if (cached) return cached;
  const body = readFileSync(new URL('./form-embed.js', import.meta.url));
  cached = {
    body,
    gzip: gzipSync(body, { level: 9 }),
    // weak: the gzip and identity forms are the same content
    etag: `W/"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
  };
  return cached;
}

export function formEmbedRoutes(): Hono {
  const app = new Hono();
  app.get(FORM_EMBED_PATH, (c: Context) => {
    const asset = formEmbedAsset();
    const headers: Record<string, string> = {
      'content-type': 'text/javascript; charset=utf-8',
      'cache-control': FORM_EMBED_CACHE,
      etag: asset.etag,
      vary: 'Accept-Encoding',
      'x-content-type-options': 'nosniff',
      'access-control-allow-origin': '*',
      'cross-origin-resource-policy': 'cross-origin',
    };
    const inm = c.req.header('if-none-match');
    const opaque = asset.etag.slice(2);
    if (inm && (inm.trim() === '*' || inm.split(',').some((t) => t.trim().replace(/^W\//, '') === opaque)))
      return new Response(null, { status: 304, headers });
    if (c.req.method === 'HEAD') return new Response(null, { status: 200, headers });
    if (acceptsGzip(c.req.header('accept-encoding')))
      return new Response(bytes(asset.gzip), {
        status: 200,
        headers: { ...headers, 'content-encoding': 'gzip' },
      });
    return new Response(bytes(asset.body), { status: 200, headers });
  });
  return app;
}

const bytes = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
