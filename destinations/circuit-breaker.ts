// A circuit breaker per destination: after `failures` consecutive retriable failures (5xx,
// 408/429, timeouts, connection errors) it opens, and no request goes to the destination
// for `cooldownMs`; its deliveries are parked for later instead, so the destination's
// consumer keeps moving. After the cooldown one probe request is let through (half-open):
// success closes the breaker, failure opens it again for twice as long (capped).

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerOptions {
  failures: number;
  cooldownMs: number;
  maxCooldownMs: number;
}

export class CircuitBreaker {
  private state: BreakerState = 'closed';
  private consecutive = 0;
  private openUntil = 0;
  private cooldown: number;
  private probing = false;

  constructor(private readonly o: BreakerOptions) {
    this.cooldown = o.cooldownMs;
  }

  /** Whether a request may go now; in half-open, only the one probe. */
  allow(now: number): boolean {
    if (this.state === 'closed') return true;
    if (this.state === 'open') {
      if (now < this.openUntil) return false;
      this.state = 'half_open';
      this.probing = false;
    }
    if (this.probing) return false;
    this.probing = true;
    return true;
  }

  /** True while open and before its probe may go (no change of state). */
  blocked(now: number): boolean {
    return this.state === 'open' && now < this.openUntil;
  }

  success(): void {
    this.state = 'closed';
    this.consecutive = 0;
    this.probing = false;
    this.cooldown = this.o.cooldownMs;
  }

  /** A retriable failure; answers true when it opened the breaker. */
  failure(now: number): boolean {
    this.consecutive++;
    if (this.state === 'half_open') {
      this.cooldown = Math.min(this.cooldown * 2, this.o.maxCooldownMs);
      this.trip(now);
      return true;
    }
    if (this.state === 'closed' && this.consecutive >= this.o.failures) {
      this.trip(now);
      return true;
    }
    return false;
  }

  /** A request that ended without telling whether the destination is up (a permanent refusal). */
  neutral(): void {
    if (this.state === 'half_open') this.probing = false;
  }

  get current(): BreakerState {
    return this.state;
  }

  private trip(now: number): void {
    this.state = 'open';
    this.probing = false;
    this.openUntil = now + this.cooldown;
  }
}
