import type { LookupAddress } from 'node:dns';
import { createServer } from 'node:http';
import { describe, expect, it } from 'vitest';
import { type Resolve, refusal } from './address-guard.ts';
import { sendWebhook } from './send-webhook.ts';

const strict = { allowLoopback: false, allowPrivate: false };

describe('webhook destination guard', () => {
  it.each([
    '127.0.0.1',
    '127.1.2.3',
    '::1',
    '10.0.0.1',
    '172.16.5.4',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
    'fd00::1',
    'fe80::1',
  ])('refuses %s', (addr) => {
    expect(refusal(addr, strict)).toBeDefined();
  });

  it.each(['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946', '8.8.8.8'])('allows public %s', (addr) => {
    expect(refusal(addr, strict)).toBeUndefined();
  });

  it('allows loopback only when configured', () => {
    expect(refusal('127.0.0.1', { allowLoopback: true, allowPrivate: false })).toBeUndefined();
    expect(refusal('10.0.0.1', { allowLoopback: true, allowPrivate: false })).toBeDefined();
  });

  it.each([
    'http://127.0.0.1:9/x',
    'http://2130706433/x', // decimal form of 127.0.0.1
    'http://0177.0.0.1/x', // octal form
    'http://0x7f.0.0.1/x', // hex form
    'http://[::1]:9/x',
    'http://[::ffff:7f00:1]/x', // IPv4-mapped, hex
    'http://169.254.169.254/latest/meta-data',
    'http://localhost:9/x', // a name that resolves to loopback
    'http://167772161/x', // decimal form of 10.0.0.1
    'http://012.0.0.1/x', // octal form of 10.0.0.1
    'http://[::ffff:10.0.0.1]/x', // IPv4-mapped private
    'http://[::ffff:a9fe:a9fe]/latest', // IPv4-mapped metadata address, hex
  ])('refuses to send to %s without connecting', async (url) => {
    const r = await sendWebhook(
      { url, secret: 'whsec_AAAA', id: 'msg_x', body: '{}', timestampSeconds: 1 },
      { ...strict, timeoutMs: 1000 },
    );
    expect(r.ok).toBe(false);
    expect(r.retriable).toBe(false);
    expect(r.error).toMatch(/refused/);
  });
});

/** A resolver with fixed answers, standing in for DNS. */
const fakeDns =
  (answers: Record<string, string[]>): Resolve =>
  (host, _opts, cb) => {
    const list = answers[host];
    if (!list) return cb(Object.assign(new Error(`no such host ${host}`), { code: 'ENOTFOUND' }), []);
    cb(
      null,
      list.map((address): LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 })),
    );
  };

describe('webhook destinations by name and by redirect', () => {
  it.each([
    ['internal.example', ['10.1.2.3']],
    ['metadata.example', ['169.254.169.254']],
    ['mixed.example', ['93.184.216.34', '192.168.0.10']], // any private answer refuses
    ['v6.example', ['fd12::1']],
  ])('refuses a name resolving to a private address: %s', async (host, addrs) => {
    const r = await sendWebhook(
      { url: `http://${host}/x`, secret: 'whsec_AAAA', id: 'msg_x', body: '{}', timestampSeconds: 1 },
      { ...strict, timeoutMs: 1000, resolve: fakeDns({ [host]: addrs }) },
    );
    expect(r).toMatchObject({ ok: false, retriable: false });
    expect(r.error).toMatch(/destination refused/);
  });

  it('does not follow a redirect (to a private address or anywhere)', async () => {
    let reachedTarget = 0;
    const target = createServer((_q, s) => {
      reachedTarget++;
      s.end();
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const tp = (target.address() as { port: number }).port;
    for (const location of [
      'http://10.0.0.1/x',
      'http://169.254.169.254/latest/meta-data',
      `http://127.0.0.1:${tp}/x`,
    ]) {
      const redirector = createServer((_q, s) => {
        s.statusCode = 307;
        s.setHeader('location', location);
        s.end();
      });
      await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
      const port = (redirector.address() as { port: number }).port;
      const r = await sendWebhook(
        {
          url: `http://127.0.0.1:${port}/x`,
          secret: 'whsec_AAAA',
          id: 'msg_x',
          body: '{}',
          timestampSeconds: 1,
        },
        { allowLoopback: true, allowPrivate: false, timeoutMs: 2000 },
      );
      expect(r).toMatchObject({ ok: false, status: 307, retriable: false });
      expect(r.error).toContain(`redirect to ${location} not followed`);
      await new Promise<void>((res) => redirector.close(() => res()));
    }
    expect(reachedTarget).toBe(0);
    await new Promise<void>((res) => target.close(() => res()));
  });
});
