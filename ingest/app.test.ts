// Route behaviour through app.request(), without a port. The producer here records what it
// is given (or fails on purpose); the real Kafka path is covered by test/e2e.
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import { createIngestApp } from './app.ts';
import { RateLimiter } from './rate-limit.ts';

function recordingProducer(fail = false) {
  const sent: Array<{ topic: string; messages: OutgoingMessage[] }> = [];
  const producer: Producer = {
    connect: async () => {},
    disconnect: async () => {},
    send: async (topic, messages) => {
      if (fail) return new Promise<void>(() => {}); // never acknowledged
      sent.push({ topic, messages });
    },
  };
  return { producer, sent };
}

const log = createLogger({ level: 'silent', name: 'test' });
const auth = `Basic ${Buffer.from('wk-123456:').toString('base64')}`;

function setup(fail = false, rateLimiter?: RateLimiter) {
  const { producer, sent } = recordingProducer(fail);
  const app = createIngestApp({
    producer,
    eventsTopic: 'events',
    resolveWriteKey: (k) => (k === 'wk-123456' ? 'ws1' : undefined),
    log,
    now: () => new Date('2026-01-01T00:00:00Z'),
    produceTimeoutMs: 200,
    rateLimiter,
  });
  const post = (path: string, body: RequestInit['body'], headers: Record<string, string> = {}) =>
    app.request(path, {
      method: 'POST',
      body,
      headers: { authorization: auth, 'content-type': 'application/json', ...headers },
    });
  return { app, sent, post };
}

const values = (sent: ReturnType<typeof recordingProducer>['sent']) =>
  sent.flatMap((s) => s.messages.map((m) => JSON.parse(String(m.value))));

describe('ingest routes', () => {
  it('accepts a track call and produces it keyed by workspace and identity', async () => {
    const { sent, post } = setup();
    const res = await post(
      '/v1/track',
      JSON.stringify({ userId: 'u1', event: 'Signed Up', messageId: 'm1' }),
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ success: true });
    expect(sent).toHaveLength(1);
    expect(sent[0]!.messages[0]!.key).toBe('ws1:u1');
    expect(values(sent)[0]).toMatchObject({
      workspaceId: 'ws1',
      type: 'track',
      messageId: 'm1',
      event: 'Signed Up',
    });
  });

  it.each(['/v1/t', '/v1/i', '/v1/p', '/v1/s'])('serves the short form %s', async (path) => {
    const { post } = setup();
    const res = await post(path, JSON.stringify({ anonymousId: 'a1', event: 'x' }));
    expect(res.status).toBe(200);
  });

  it('accepts text/plain and gzip bodies, and the write key in the body', async () => {
    const { sent, app } = setup();
    const body = gzipSync(JSON.stringify({ writeKey: 'wk-123456', anonymousId: 'a', name: 'Home' }));
    const res = await app.request('/v1/page', {
      method: 'POST',
      body,
      headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip' },
    });
    expect(res.status).toBe(200);
    expect(values(sent)[0]).toMatchObject({ type: 'page', name: 'Home', anonymousId: 'a' });
  });

  it('rejects a whole batch when one event is invalid, naming it', async () => {
    const { sent, post } = setup();
    const res = await post(
      '/v1/batch',
      JSON.stringify({
        batch: [
          { type: 'track', userId: 'u', event: 'ok' },
          { type: 'track', userId: 'u' },
        ],
      }),
    );
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/^batch\[1\]\.event: required for track/);
    expect(sent).toHaveLength(0);
  });

  it.each([
    ['no key', {}, 401],
    ['unknown key', { authorization: `Basic ${Buffer.from('nope:').toString('base64')}` }, 401],
    ['wrong content type', { 'content-type': 'application/xml' }, 415],
    ['unknown encoding', { 'content-encoding': 'br' }, 415],
  ])('answers %s with a JSON error', async (_name, headers, status) => {
    const { app } = setup();
    const h: Record<string, string> = { 'content-type': 'application/json', ...headers };
    if (!('authorization' in headers) && _name !== 'no key') h.authorization = auth;
    const res = await app.request('/v1/track', {
      method: 'POST',
      body: '{"userId":"u","event":"e"}',
      headers: h,
    });
    expect(res.status).toBe(status);
    expect(await res.json()).toMatchObject({ success: false, error: expect.any(String) });
  });

  it.each([
    ['malformed JSON', '{"userId":', 400],
    ['empty body', '', 400],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 400],
    [
      'an event over 32 KB',
      JSON.stringify({ userId: 'u', event: 'e', properties: { s: 'x'.repeat(40_000) } }),
      400,
    ],
    [
      'a body over 500 KB',
      JSON.stringify({ userId: 'u', event: 'e', properties: { s: 'x'.repeat(600_000) } }),
      413,
    ],
    ['a gzip bomb', gzipSync(Buffer.alloc(5_000_000, 32)), 413],
  ])('answers %s with a 4xx', async (name, body, status) => {
    const { post } = setup();
    const headers: Record<string, string> = name === 'a gzip bomb' ? { 'content-encoding': 'gzip' } : {};
    const res = await post('/v1/track', body as RequestInit['body'], headers);
    expect(res.status).toBe(status);
    expect(((await res.json()) as { success: boolean }).success).toBe(false);
  });

  it('answers 503 with Retry-After when Kafka does not acknowledge in time', async () => {
    const { post } = setup(true);
    const res = await post('/v1/identify', JSON.stringify({ userId: 'u' }));
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
  });

  it('answers 429 with Retry-After past a write key’s rate, counting batch events', async () => {
    const { sent, post } = setup(false, new RateLimiter(10, 10, () => 0));
    const batch = (n: number) =>
      JSON.stringify({
        batch: Array.from({ length: n }, () => ({ type: 'track', userId: 'u', event: 'e' })),
      });
    expect((await post('/v1/batch', batch(8))).status).toBe(200);
    const res = await post('/v1/batch', batch(3));
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(((await res.json()) as { error: string }).error).toMatch(/rate limit/);
    expect((await post('/v1/track', JSON.stringify({ userId: 'u', event: 'e' }))).status).toBe(200);
    expect(values(sent)).toHaveLength(9);
  });

  it('serves an OpenAPI 3.1 document naming every route', async () => {
    const { app } = setup();
    const res = await app.request('/openapi.json');
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe('3.1.0');
    for (const p of [
      'track',
      'identify',
      'page',
      'screen',
      'group',
      'alias',
      'batch',
      'import',
      't',
      'i',
      'p',
      's',
      'g',
      'a',
      'b',
    ])
      expect(doc.paths).toHaveProperty(`/v1/${p}`);
    expect(doc.paths).toHaveProperty('/v1/projects/{writeKey}/settings');
  });

  it("answers an event call with CORS headers for the caller's origin, a refused one too", async () => {
    const { post } = setup();
    const body = JSON.stringify({ type: 'track', event: 'E', userId: 'u1' });
    const ok = await post('/v1/t', body, { origin: 'https://shop.example' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://shop.example');
    expect(ok.headers.get('access-control-allow-credentials')).toBe('true');
    expect(ok.headers.get('vary')).toBe('Origin');
    expect(ok.headers.get('content-type')).toMatch(/^application\/json/);
    // a browser can read why it was refused
    const refused = await post('/v1/track', body, {
      origin: 'https://shop.example',
      authorization: 'Basic eDo=',
    });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe('https://shop.example');
    expect(refused.headers.get('access-control-allow-credentials')).toBe('true');
    // without an Origin (a server-side caller): any origin, as before
    const server = await post(
      '/v1/batch',
      JSON.stringify({ batch: [{ type: 'track', event: 'E', userId: 'u2' }] }),
    );
    expect(server.status).toBe(200);
    expect(server.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('answers a CORS preflight that asks for Authorization', async () => {
    const { app } = setup();
    const res = await app.request('/v1/t', {
      method: 'OPTIONS',
      headers: {
        origin: 'https://shop.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://shop.example');
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
  });
});
