// The token endpoint's answer is read bounded and only RFC 6749's error fields reach an error
// message (which ends up in the ledger): a service account pointed somewhere else, or an
// endpoint answering with something that is not a token, leaks nothing and cannot flood memory.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceAccount } from '../../test/push-providers.ts';
import { FCM_SCOPE, GoogleTokenSource, parseServiceAccount, TokenError } from './google-oauth.ts';

const INTERNAL = 'internal-metadata-secret-0123456789';
let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/oauth-error') {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: 'invalid_grant',
            error_description: `Invalid JWT\u0000 signature ${'x'.repeat(400)}`,
            internal: INTERNAL,
          }),
        );
      } else if (req.url === '/html-error') {
        res.writeHead(502, { 'content-type': 'text/html' });
        res.end(`<html>${INTERNAL}</html>`);
      } else if (req.url === '/huge') {
        // a 200 that never ends being big: read no further than the cap
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(16 * 1024, 0x20);
        let sent = 0;
        const more = () => {
          while (sent < 4 * 1024 * 1024) {
            sent += chunk.length;
            if (!res.write(chunk)) return res.once('drain', more);
          }
          res.end();
        };
        res.on('error', () => {});
        more();
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: 'ya29.ok', expires_in: 3600 }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  base = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const source = (path: string) =>
  new GoogleTokenSource(parseServiceAccount(serviceAccount(`${base}${path}`).json), FCM_SCOPE, {
    now: Date.now,
    timeoutMs: 5000,
  });

async function failure(path: string): Promise<TokenError> {
  try {
    await source(path).token();
  } catch (err) {
    expect(err).toBeInstanceOf(TokenError);
    return err as TokenError;
  }
  throw new Error('expected the token fetch to fail');
}

describe('Google token endpoint answers', () => {
  it('a token when the endpoint gives one', async () => {
    expect(await source('/token').token()).toBe('ya29.ok');
  });

  it('an error answer: only `error` and a bounded, printable `error_description`, never the body', async () => {
    const e = await failure('/oauth-error');
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/^token endpoint HTTP 400: invalid_grant \(Invalid JWT\? signature x+\)$/);
    expect(e.message).not.toContain(INTERNAL);
    expect(e.message.length).toBeLessThan(260);
    const html = await failure('/html-error');
    expect(html.message).toBe('token endpoint HTTP 502');
  });

  it('an answer over 64 KB is not read to its end', async () => {
    const used = process.memoryUsage().arrayBuffers;
    const e = await failure('/huge');
    expect(e.message).toBe('token endpoint answer over 64 KB');
    expect(process.memoryUsage().arrayBuffers - used).toBeLessThan(2 * 1024 * 1024);
  });
});
