import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.ts';
import { TokenBucket } from './rate-limit.ts';

describe('circuit breaker', () => {
  it('opens after consecutive failures, lets one probe through after the cooldown, closes on its success', () => {
    const b = new CircuitBreaker({ failures: 3, cooldownMs: 1000, maxCooldownMs: 4000 });
    expect(b.allow(0)).toBe(true);
    expect(b.failure(0)).toBe(false);
    b.success(); // a success in between resets the count
    expect(b.failure(1)).toBe(false);
    expect(b.failure(2)).toBe(false);
    expect(b.failure(3)).toBe(true);
    expect(b.current).toBe('open');
    expect(b.blocked(500)).toBe(true);
    expect(b.allow(500)).toBe(false);
    expect(b.blocked(1003)).toBe(false);
    // half-open: one probe, no second request while it runs
    expect(b.allow(1003)).toBe(true);
    expect(b.current).toBe('half_open');
    expect(b.allow(1004)).toBe(false);
    b.success();
    expect(b.current).toBe('closed');
    expect(b.allow(1005)).toBe(true);
  });

  it('a failed probe opens it again for twice as long, capped', () => {
    const b = new CircuitBreaker({ failures: 1, cooldownMs: 1000, maxCooldownMs: 2500 });
    b.failure(0);
    expect(b.allow(1000)).toBe(true);
    expect(b.failure(1000)).toBe(true);
    expect(b.allow(2999)).toBe(false);
    expect(b.allow(3000)).toBe(true);
    b.failure(3000);
    // 4000 capped at 2500
    expect(b.allow(5499)).toBe(false);
    expect(b.allow(5500)).toBe(true);
    // a permanent refusal of the probe tells nothing: the next request may probe
    b.neutral();
    expect(b.allow(5501)).toBe(true);
  });
});

describe('token bucket', () => {
  it('allows a burst of perSecond, then one every 1/perSecond', () => {
    const t = new TokenBucket(4, 0);
    expect([t.take(0), t.take(0), t.take(0), t.take(0)]).toEqual([0, 0, 0, 0]);
    expect(t.take(0)).toBe(250);
    expect(t.take(250)).toBe(0);
    expect(t.take(300)).toBe(200);
  });

  it('a fraction per second waits seconds, with a burst of one', () => {
    const t = new TokenBucket(0.5, 0);
    expect(t.take(0)).toBe(0);
    expect(t.take(0)).toBe(2000);
    expect(t.take(2000)).toBe(0);
  });
});
