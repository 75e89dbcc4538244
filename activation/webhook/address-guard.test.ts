import { describe, expect, it } from 'vitest';
import { refusal } from './address-guard.ts';
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
