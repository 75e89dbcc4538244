// Per-write-key token buckets, counted in events (a batch of 100 takes 100 tokens).
// The limit holds per ingest instance; with N instances behind a balancer a key gets up to
// N times the rate, which is what edge limits usually promise.

export interface RateDecision {
  ok: boolean;
  /** Whole seconds until the request would fit, when refused. */
  retryAfterSeconds: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  take(key: string, n: number): RateDecision {
    if (this.ratePerSecond <= 0) return { ok: true, retryAfterSeconds: 0 };
    const t = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: t };
    b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.ratePerSecond);
    b.at = t;
    this.buckets.set(key, b);
    if (n > this.burst) return { ok: false, retryAfterSeconds: Math.ceil(n / this.ratePerSecond) };
    if (b.tokens >= n) {
      b.tokens -= n;
      return { ok: true, retryAfterSeconds: 0 };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((n - b.tokens) / this.ratePerSecond)) };
  }
}
