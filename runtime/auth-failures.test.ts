import { describe, expect, it } from 'vitest';
import { AuthFailureLimiter, clientKey } from './auth-failures.ts';

function limiter(maxFailures = 3, maxClients = 100) {
  const clock = { t: 1_000_000 };
  const l = new AuthFailureLimiter({ maxFailures, windowMs: 60_000, maxClients, now: () => clock.t });
  return { l, clock };
}

describe('AuthFailureLimiter', () => {
  it('refuses an address after maxFailures in the window, until the window ends', () => {
    const { l, clock } = limiter(3);
    expect(l.fail('198.51.100.7')).toBe(false);
    expect(l.fail('198.51.100.7')).toBe(false);
    expect(l.retryAfterSeconds('198.51.100.7')).toBe(0);
    expect(l.fail('198.51.100.7')).toBe(true);
    expect(l.retryAfterSeconds('198.51.100.7')).toBe(60);
    clock.t += 45_500;
    expect(l.retryAfterSeconds('198.51.100.7')).toBe(15);
    // another address is not affected
    expect(l.retryAfterSeconds('198.51.100.8')).toBe(0);
    clock.t += 14_500;
    expect(l.retryAfterSeconds('198.51.100.7')).toBe(0);
    // a new window starts from one failure
    l.fail('198.51.100.7');
    expect(l.retryAfterSeconds('198.51.100.7')).toBe(0);
  });

  it('counts an IPv6 /64 as one client, and IPv4-mapped addresses as IPv4', () => {
    expect(clientKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:0db8:0001:0002:ffff:1:2:3')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8::5')).toBe('2001:db8:0:0::/64');
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
    expect(clientKey('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(clientKey('unknown')).toBe('unknown');
    const { l } = limiter(2);
    l.fail('2001:db8:1:2::a');
    l.fail('2001:db8:1:2::b');
    expect(l.retryAfterSeconds('2001:db8:1:2::c')).toBeGreaterThan(0);
    expect(l.retryAfterSeconds('2001:db8:1:3::c')).toBe(0);
  });

  it('keeps memory bounded under failures from very many addresses', () => {
    const { l, clock } = limiter(3, 1000);
    for (let i = 0; i < 50_000; i++) {
      l.fail(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      if (i % 1000 === 0) clock.t += 10;
    }
    expect(l.size).toBeLessThanOrEqual(1000);
    // expired windows are dropped as new ones arrive
    clock.t += 61_000;
    l.fail('192.0.2.1');
    expect(l.size).toBe(1);
  });

  it('does nothing with a limit of 0', () => {
    const { l } = limiter(0);
    for (let i = 0; i < 100; i++) l.fail('192.0.2.1');
    expect(l.retryAfterSeconds('192.0.2.1')).toBe(0);
    expect(l.size).toBe(0);
  });
});
