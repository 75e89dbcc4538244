// Failed admin authentications are rate-limited per client address on the query service as
// started by `cdp start query`: over real sockets from different loopback addresses
// (127.0.0.2 guessing keys, 127.0.0.1 the real admin), the guesser gets 429 with Retry-After,
// even for a right key, while the admin elsewhere is never affected.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { testConfig, testLogger } from '../harness.ts';

const MAX_FAILURES = 5;
let cfg: Config;
let running: RunningServices;

beforeAll(async () => {
  cfg = testConfig({ CDP_ADMIN_AUTH_MAX_FAILURES: String(MAX_FAILURES) });
  running = await startServices(cfg, ['query'], testLogger(cfg));
});
afterAll(() => running?.stop());

/** GET a query route from a chosen local address, with a bearer key (or none). */
function get(from: string, key?: string, path = '/v1/segments') {
  const url = new URL(path, running.urls.query);
  return new Promise<{ status: number; retryAfter?: string; body: string }>((resolve, reject) => {
    const req = request(
      url,
      {
        localAddress: from,
        agent: false,
        headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('failed admin authentications', () => {
  it('answers 429 with Retry-After to an address after too many wrong keys; other addresses unaffected', async () => {
    const attacker = '127.0.0.2';
    const admin = '127.0.0.1';
    // a missing key is no guess: not counted
    for (let i = 0; i < MAX_FAILURES + 2; i++) expect((await get(attacker)).status).toBe(401);
    for (let i = 0; i < MAX_FAILURES; i++) {
      const r = await get(attacker, `guess-${i}-${'x'.repeat(32)}`);
      expect(r.status, r.body).toBe(401);
    }
    const limited = await get(attacker, 'guess-next');
    expect(limited.status).toBe(429);
    expect(JSON.parse(limited.body)).toEqual({
      error: 'too many failed admin authentications from this address',
    });
    const retryAfter = Number(limited.retryAfter);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // the right key from the locked-out address gets no answer either: guessing learns nothing
    expect((await get(attacker, cfg.keys.adminKey)).status).toBe(429);

    // the real admin, elsewhere, is not locked out
    const ok = await get(admin, cfg.keys.adminKey);
    expect(ok.status, ok.body).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ segments: [] });
  });

  it('never counts successful requests', async () => {
    const client = '127.0.0.3';
    for (let i = 0; i < 3 * MAX_FAILURES; i++)
      expect((await get(client, cfg.keys.adminKey)).status).toBe(200);
    for (let i = 0; i < MAX_FAILURES; i++) expect((await get(client, 'wrong-key')).status).toBe(401);
    expect((await get(client, 'wrong-key')).status).toBe(429);
  });

  it('leaves unsubscribe links and health checks alone', async () => {
    const client = '127.0.0.4';
    for (let i = 0; i <= MAX_FAILURES; i++) await get(client, 'wrong-key');
    expect((await get(client, 'wrong-key')).status).toBe(429);
    expect((await get(client, undefined, '/healthz')).status).toBe(200);
    // no admin key needed here; a bad token is a 400, not a 429
    expect((await get(client, undefined, '/v1/unsubscribe?token=nope')).status).toBe(400);
  });
});
