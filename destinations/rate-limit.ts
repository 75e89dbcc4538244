// A token bucket per destination and worker process: `perSecond` tokens a second, a burst of
// at most max(1, perSecond). `wait` answers how long until a token is free (0: take it now).

export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly burst: number;

  constructor(
    private readonly perSecond: number,
    now: number,
  ) {
    this.burst = Math.max(1, perSecond);
    this.tokens = this.burst;
    this.last = now;
  }

  /** Takes a token if there is one (answers 0), else answers the ms until there is one. */
  take(now: number): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / this.perSecond) * 1000);
  }
}
