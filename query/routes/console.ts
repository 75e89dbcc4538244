// The marketer console at /console: static ES modules (Preact + htm, no build step) from
// query/console/, and the two libraries from node_modules, so nothing is fetched from the
// internet. hooks.mjs imports the bare specifier "preact"; it is rewritten to the served
// file, so the page needs no import map and the CSP can forbid inline scripts.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Hono } from 'hono';

const DIR = fileURLToPath(new URL('../console/', import.meta.url));
const VENDOR: Record<string, { path: () => string; rewrite?: (s: string) => string }> = {
  'preact.mjs': { path: () => fileURLToPath(import.meta.resolve('preact')) },
  'hooks.mjs': {
    path: () => fileURLToPath(import.meta.resolve('preact/hooks')),
    rewrite: (s) => s.replace(/from\s*"preact"/g, 'from"./preact.mjs"'),
  },
  'htm.mjs': { path: () => fileURLToPath(import.meta.resolve('htm')) },
};
const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  mjs: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  html: 'text/html; charset=utf-8',
  svg: 'image/svg+xml',
};
const HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** `ingestUrl`: the ingest host's public address, which the console puts in embed codes and page links. */
export function consoleRoutes(opts: { ingestUrl?: string } = {}) {
  const app = new Hono();
  // the vendored libraries are read once, on first request (nothing happens at import)
  const cache = new Map<string, Promise<string>>();
  const load = (key: string, read: () => Promise<string>) => {
    let p = cache.get(key);
    if (!p) {
      p = read();
      cache.set(key, p);
      p.catch(() => cache.delete(key));
    }
    return p;
  };
  const send = (body: string, name: string, cacheable: boolean) =>
    new Response(body, {
      headers: {
        'content-type': TYPES[name.slice(name.lastIndexOf('.') + 1)] ?? 'application/octet-stream',
        // the app's own modules change with the code; the vendored libraries only with a version
        'cache-control': cacheable ? 'public, max-age=86400' : 'no-cache',
        ...HEADERS,
      },
    });

  const index = async () => send(await readFile(`${DIR}index.html`, 'utf8'), 'index.html', false);
  app.get('/', index);
  app.get('/index.html', index);
  // what the page needs to know about the deployment (nothing secret: the ingest host is public)
  app.get(
    '/config.json',
    () =>
      new Response(JSON.stringify({ ingestUrl: opts.ingestUrl ?? null }), {
        headers: {
          'content-type': 'application/json; charset=utf-8',
          'cache-control': 'no-cache',
          ...HEADERS,
        },
      }),
  );
  app.get('/vendor/:file', async (c) => {
    const name = c.req.param('file');
    const v = Object.hasOwn(VENDOR, name) ? VENDOR[name] : undefined;
    if (!v) return c.json({ error: `no file ${name}` }, 404);
    const text = await load(`vendor/${name}`, async () => {
      const s = await readFile(v.path(), 'utf8');
      return v.rewrite ? v.rewrite(s) : s;
    });
    return send(text, name, true);
  });
  app.get('/app/:file', async (c) => {
    const name = c.req.param('file');
    // only plain file names of this folder: no paths, no dot files
    if (!/^[a-z0-9-]+\.(js|css|svg)$/.test(name)) return c.json({ error: `no file ${name}` }, 404);
    try {
      // read on each request (small files; an edit shows on reload without a restart)
      return send(await readFile(`${DIR}${name}`, 'utf8'), name, false);
    } catch {
      return c.json({ error: `no file ${name}` }, 404);
    }
  });
  return app;
}
