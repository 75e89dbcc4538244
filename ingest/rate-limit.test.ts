import { describe, expect, it } from 'vitest';
import { RateLimiter } from './rate-limit.ts';

describe('RateLimiter', () => {
  it('allows a burst, refuses past it with a Retry-After, and refills over time', () => {
    let t = 0;
    const rl = new RateLimiter(100, 200, () => t);
    expect(rl.take('k', 150).ok).toBe(true);
    expect(rl.take('k', 50).ok).toBe(true);
    const refused = rl.take('k', 50);
    expect(refused).toEqual({ ok: false, retryAfterSeconds: 1 });
    t += 500; // 50 tokens back
    expect(rl.take('k', 50).ok).toBe(true);
    expect(rl.take('k', 1).ok).toBe(false);
  });

  it('keeps keys apart', () => {
    const rl = new RateLimiter(1, 1, () => 0);
    expect(rl.take('a', 1).ok).toBe(true);
    expect(rl.take('b', 1).ok).toBe(true);
    expect(rl.take('a', 1).ok).toBe(false);
  });

  it('keeps at most maxKeys buckets (keys from data): refilled ones go first, a drained one stays drained', () => {
    let t = 0;
    const rl = new RateLimiter(1, 1, () => t, 100);
    const size = () => (rl as unknown as { buckets: Map<string, unknown> }).buckets.size;
    for (let i = 0; i < 99; i++) expect(rl.take(`old${i}`, 1).ok).toBe(true);
    t = 5000; // the old ones refilled
    expect(rl.take('hot', 1).ok).toBe(true);
    expect(rl.take('hot', 1).ok).toBe(false);
    for (let i = 0; i < 50; i++) rl.take(`new${i}`, 1);
    expect(size()).toBeLessThanOrEqual(100);
    expect(rl.take('hot', 1).ok).toBe(false);
    for (let i = 0; i < 10_000; i++) rl.take(`flood${i}`, 1);
    expect(size()).toBeLessThanOrEqual(100);
  });

  it('refuses a request larger than the burst with the time it would take', () => {
    const rl = new RateLimiter(10, 20, () => 0);
    expect(rl.take('k', 100)).toEqual({ ok: false, retryAfterSeconds: 10 });
  });

  it('is off with a zero rate', () => {
    const rl = new RateLimiter(0, 0, () => 0);
    expect(rl.take('k', 1_000_000).ok).toBe(true);
  });
});
