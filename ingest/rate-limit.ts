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
    /** Keys kept at most (keys from data, such as client addresses): full buckets go first. */
    private readonly maxKeys = Number.POSITIVE_INFINITY,
  ) {}

  take(key: string, n: number): RateDecision {
    if (this.ratePerSecond <= 0) return { ok: true, retryAfterSeconds: 0 };
    const t = this.now();
    if (this.buckets.size >= this.maxKeys && !this.buckets.has(key)) this.prune(t);
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

  /** Forgets buckets that refilled (as good as new); then the oldest, down to 90% of the bound. */
  private prune(t: number): void {
    for (const [k, b] of this.buckets)
      if (b.tokens + ((t - b.at) / 1000) * this.ratePerSecond >= this.burst) this.buckets.delete(k);
    for (const k of this.buckets.keys()) {
      if (this.buckets.size < this.maxKeys * 0.9) break;
      this.buckets.delete(k);
    }
  }
}
