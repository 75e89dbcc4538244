// The embed snippet as the ingest host serves it (through app.request(), no port): its
// gzipped size, its caching and CORS headers, that definition text can never become markup
// in it (no HTML-parsing DOM sink anywhere in the source), and the CORS the snippet relies on
// for the form endpoints (any origin, no credentials, a preflight for JSON). The snippet
// running in a browser against the real stack: test/forms/embed.test.ts.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import type { FormDefinition } from '../schemas/form.ts';
import { createIngestApp } from './app.ts';
import { FORM_EMBED_PATH } from './form-embed.ts';
import { signFormToken } from './form-token.ts';

const SECRET = 'embed-secret-0123456789';
const form: FormDefinition = {
  id: 'frm_1',
  workspaceId: 'ws1',
  version: 1,
  status: 'active',
  name: 'Demo',
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
  fields: [{ name: 'email', label: 'Email', type: 'email', required: true }],
  success: { message: 'Thanks' },
};
const sent: unknown[] = [];
const producer: Producer = {
  connect: async () => {},
  disconnect: async () => {},
  send: async (_t, messages) => {
    sent.push(...messages);
  },
};
const log = createLogger({ level: 'silent', name: 'test' });
const app = createIngestApp({
  producer,
  eventsTopic: 'events',
  resolveWriteKey: (k) => (k === 'wk' ? 'ws1' : undefined),
  log,
  forms: {
    forms: { get: (ws, id) => (ws === 'ws1' && id === 'frm_1' ? form : undefined), refresh: async () => {} },
    producer,
    eventsTopic: 'events',
    queueConsent: async () => {},
    log,
    now: () => new Date(),
    secret: SECRET,
    minFillMs: 0,
    maxAgeMs: 86_400_000,
    produceTimeoutMs: 1000,
  },
});
const SOURCE = readFileSync(new URL('./form-embed.js', import.meta.url), 'utf8');
const ORIGIN = 'https://shop.example';

describe('GET /v1/forms/embed.js', () => {
  it('is under 10 KB gzipped, as served', async () => {
    const res = await app.request(FORM_EMBED_PATH, { headers: { 'accept-encoding': 'gzip, br' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-encoding')).toBe('gzip');
    const gz = Buffer.from(await res.arrayBuffer());
    expect(gunzipSync(gz).toString('utf8')).toBe(SOURCE);
    expect(gz.length).toBeLessThan(10 * 1024);
    // and without gzip, the file itself
    const plain = await app.request(FORM_EMBED_PATH);
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(await plain.text()).toBe(SOURCE);
  });

  it('is cacheable, revalidates with its ETag, and loads from any origin', async () => {
    const res = await app.request(FORM_EMBED_PATH, { headers: { origin: ORIGIN } });
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(res.headers.get('cache-control')).toMatch(/^public, max-age=86400/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    const etag = res.headers.get('etag')!;
    expect(etag).toMatch(/^W\/"[A-Za-z0-9_-]{27}"$/);
    const again = await app.request(FORM_EMBED_PATH, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    const other = await app.request(FORM_EMBED_PATH, { headers: { 'if-none-match': '"stale"' } });
    expect(other.status).toBe(200);
  });

  it('never turns text into markup: no HTML-parsing sink or eval in the source', () => {
    for (const sink of [
      'innerHTML',
      'outerHTML',
      'insertAdjacentHTML',
      'document.write',
      'createContextualFragment',
      'DOMParser',
      'eval(',
      'new Function',
      'srcdoc',
    ])
      expect(SOURCE, sink).not.toContain(sink);
    // definition text reaches the page through textContent / text nodes only
    expect(SOURCE).toContain('textContent');
  });
});

describe('CORS of the form endpoints (what the snippet on another origin needs)', () => {
  it('answers the preflight of a JSON submit for any origin, without credentials', async () => {
    const res = await app.request('/v1/forms/ws1/frm_1/submit', {
      method: 'OPTIONS',
      headers: {
        origin: ORIGIN,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('content-type');
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
  });

  it('lets the page read the JSON definition and the JSON answer of a submit', async () => {
    const def = await app.request('/v1/forms/ws1/frm_1', {
      headers: { origin: ORIGIN, accept: 'application/json' },
    });
    expect(def.status).toBe(200);
    expect(def.headers.get('access-control-allow-origin')).toBe('*');
    const body = (await def.json()) as { token: string; minFillMs: number; maxAgeMs: number };
    // the token's bounds, which the snippet honours (waits out / renews)
    expect([body.minFillMs, body.maxAgeMs]).toEqual([0, 86_400_000]);
    sent.length = 0;
    const res = await app.request('/v1/forms/ws1/frm_1/submit', {
      method: 'POST',
      headers: { origin: ORIGIN, 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'a@example.com', _token: body.token, anonymousId: 'anon-1' }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(await res.json()).toEqual({ success: true, message: 'Thanks' });
    expect(sent).toHaveLength(2);
    // a field error is readable cross-origin too
    const bad = await app.request('/v1/forms/ws1/frm_1/submit', {
      method: 'POST',
      headers: { origin: ORIGIN, 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'nope', _token: signFormToken(SECRET, 'ws1', 'frm_1', Date.now()) }),
    });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('access-control-allow-origin')).toBe('*');
    expect(((await bad.json()) as { errors: Record<string, string> }).errors).toEqual({
      email: 'not an email address',
    });
  });

  it('keeps the tracking API as it was: the origin reflected, with credentials', async () => {
    const res = await app.request('/v1/t', {
      method: 'OPTIONS',
      headers: {
        origin: ORIGIN,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
  });
});
