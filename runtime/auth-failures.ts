// Failed authentications counted per client address: after `maxFailures` within a window,
// that address is refused (429 with Retry-After) until the window ends, whatever key it
// sends, so guessing keys gets nowhere; other addresses, the real admin's among them, are
// not affected, and successful requests cost nothing. Memory is bounded: at most
// `maxClients` addresses are tracked, the stalest forgotten first. IPv6 clients are counted
// per /64, the block one host usually holds, so rotating addresses within it does not help.
import { isIPv4, isIPv6 } from 'node:net';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';

export interface AuthFailureOptions {
  maxFailures: number;
  windowMs?: number;
  maxClients?: number;
  now?: () => number;
}

interface Entry {
  failures: number;
  windowStart: number;
}

export class AuthFailureLimiter {
  private readonly clients = new Map<string, Entry>();
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;

  constructor(o: AuthFailureOptions) {
    this.maxFailures = o.maxFailures;
    this.windowMs = o.windowMs ?? 60_000;
    this.maxClients = o.maxClients ?? 10_000;
    this.now = o.now ?? Date.now;
  }

  /** Whole seconds this address must wait before it may try again; 0 when it may now. */
  retryAfterSeconds(address: string): number {
    if (this.maxFailures <= 0) return 0;
    const e = this.clients.get(clientKey(address));
    if (!e || e.failures < this.maxFailures) return 0;
    const left = e.windowStart + this.windowMs - this.now();
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  /** Records a failed attempt; true when this one reached the limit (worth a log line). */
  fail(address: string): boolean {
    if (this.maxFailures <= 0) return false;
    const key = clientKey(address);
    const t = this.now();
    const e = this.clients.get(key);
    if (e && t - e.windowStart < this.windowMs) {
      e.failures++;
      return e.failures === this.maxFailures;
    }
    // a new window: (re)inserted last, so the Map's order is the windows' order
    this.clients.delete(key);
    this.evict(t);
    this.clients.set(key, { failures: 1, windowStart: t });
    return this.maxFailures === 1;
  }

  /** Addresses tracked now (for tests and metrics). */
  get size(): number {
    return this.clients.size;
  }

  private evict(t: number): void {
    for (const [key, e] of this.clients) {
      if (this.clients.size < this.maxClients && t - e.windowStart < this.windowMs) return;
      this.clients.delete(key);
    }
  }
}

/** The unit counted: an IPv4 address, or the /64 of an IPv6 one (IPv4-mapped as IPv4). */
export function clientKey(address: string): string {
  const a = address.trim().toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1]!;
  if (isIPv4(a) || !isIPv6(a)) return a;
  const [head = '', tail] = a.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/** The peer address of a request served by @hono/node-server; `unknown` elsewhere (tests). */
export function remoteAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
