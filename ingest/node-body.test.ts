// The body as read from the Node request under a real HTTP server (the fast path that skips
// building a web Request): limits, gzip, chunked uploads, bad bytes; and the connection
// stays usable after a refused body.
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, type RunningServer } from '../runtime/http.ts';
import type { OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import { createIngestApp } from './app.ts';

const WRITE_KEY = 'wk-node-body';
const sent: OutgoingMessage[] = [];
const producer: Producer = {
  connect: async () => {},
  disconnect: async () => {},
  send: async (_t, messages) => void sent.push(...messages),
};
let server: RunningServer;

beforeAll(async () => {
  const app = createIngestApp({
    producer,
    eventsTopic: 'events',
    resolveWriteKey: (k) => (k === WRITE_KEY ? 'ws' : undefined),
    log: createLogger({ level: 'silent', name: 'test' }),
    produceTimeoutMs: 1000,
  });
  server = await listen(app, '127.0.0.1', 0);
});
afterAll(() => server?.close());

/** Posts a JSON body and answers status and the response's headers. */
function postHeaders(body: string, headers: Record<string, string>) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>(
    (resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: server.port,
          path: '/v1/track',
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(body)),
            ...headers,
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
        },
      );
      req.on('error', reject);
      req.end(body);
    },
  );
}

/** Posts raw bytes (chunked when asked) and answers status and parsed body. */
function post(body: Buffer, headers: Record<string, string> = {}, chunked = false) {
  return new Promise<{ status: number; json: { success: boolean; error?: string } }>((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        path: '/v1/track',
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`,
          'content-type': 'application/json',
          ...(chunked ? {} : { 'content-length': String(body.length) }),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) }),
        );
      },
    );
    req.on('error', reject);
    if (chunked) {
      // in pieces, as a streaming client sends them
      for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.subarray(i, i + 64 * 1024));
      req.end();
    } else req.end(body);
  });
}

const event = Buffer.from(JSON.stringify({ userId: 'u1', event: 'Clicked' }));

describe('ingest body from the Node request', () => {
  it('accepts plain, gzip and chunked bodies', async () => {
    sent.length = 0;
    expect((await post(event)).status).toBe(200);
    expect((await post(gzipSync(event), { 'content-encoding': 'gzip' })).status).toBe(200);
    expect((await post(event, {}, true)).status).toBe(200);
    expect(sent).toHaveLength(3);
  });

  it('refuses oversized, bombed, non-UTF-8 and malformed bodies with clear errors, and keeps serving', async () => {
    sent.length = 0;
    const big = Buffer.alloc(600 * 1024, 'a');
    const chunkedBig = await post(big, {}, true);
    expect(chunkedBig.status).toBe(413);
    expect(chunkedBig.json.error).toMatch(/over 512000 bytes/);
    expect((await post(big)).status).toBe(413);
    const bomb = gzipSync(Buffer.alloc(5 * 1024 * 1024, ' '));
    expect((await post(bomb, { 'content-encoding': 'gzip' })).status).toBe(413);
    const notUtf8 = await post(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    expect(notUtf8).toMatchObject({ status: 400, json: { error: 'body is not valid UTF-8' } });
    const malformed = await post(Buffer.from('{"userId":'));
    expect(malformed.status).toBe(400);
    expect(malformed.json.error).toMatch(/malformed JSON/);
    expect(sent).toHaveLength(0);
    // the server still answers normally after all of that
    expect((await post(event)).status).toBe(200);
  });
});

describe('CORS of the event calls under a real server (headers read from the Node request)', () => {
  const auth = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`;
  const event = JSON.stringify({ type: 'track', event: 'E', userId: 'u-cors' });

  it("allows the caller's origin with credentials, and says the answer varies by origin", async () => {
    const res = await postHeaders(event, { authorization: auth, origin: 'https://shop.example' });
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe('https://shop.example');
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    expect(res.headers.vary).toBe('Origin');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
  });

  it('reads the write key from the Node request, and a refusal carries the CORS headers too', async () => {
    const refused = await postHeaders(event, { authorization: 'Basic eDo=', origin: 'https://shop.example' });
    expect(refused.status).toBe(401);
    expect(refused.headers['access-control-allow-origin']).toBe('https://shop.example');
    const noOrigin = await postHeaders(event, { authorization: auth });
    expect(noOrigin.status).toBe(200);
    expect(noOrigin.headers['access-control-allow-origin']).toBe('*');
  });
});
