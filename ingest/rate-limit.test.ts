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

  it('refuses a request larger than the burst with the time it would take', () => {
    const rl = new RateLimiter(10, 20, () => 0);
    expect(rl.take('k', 100)).toEqual({ ok: false, retryAfterSeconds: 10 });
  });

  it('is off with a zero rate', () => {
    const rl = new RateLimiter(0, 0, () => 0);
    expect(rl.take('k', 1_000_000).ok).toBe(true);
  });
});
