// A destination's deliveries waiting for another attempt: a Redis sorted set of its own
// (schemas/redis-keys.ts destinationRetries), scored by when each is due (or, behind an open
// circuit, by a priority that is already due: worker.ts circuitScore). Parking a failed
// delivery there lets the destination's consumer go on at once (its offsets are committed
// once the delivery is parked, which is durable as Redis is), and one destination's
// retries never sit in front of another's. A poller claims due entries by moving their score
// a lease ahead (one script call), so two workers never take the same entry, and a worker
// that dies mid-attempt leaves its entries to come back when the lease ends: at-least-once,
// with the same `webhook-id`.
import type { Redis } from '../runtime/redis.ts';
import type { DeliveryItem } from '../schemas/destination.ts';
import { globalKeys } from '../schemas/redis-keys.ts';

/** What the ledger and dead letters need to know of an item beyond what is sent. */
export interface ItemMeta {
  /** The source message's key (dead letters keep it). */
  key: string;
  /** The topic it came from (dead letters name it). */
  topic?: string;
  profileId: string;
  segmentId: string;
  segmentVersion: number;
  epoch: number;
  /** When the source message reached Kafka (ms): delivery latency is counted from it. */
  producedAt: number;
}

export interface Delivery {
  /** `webhook-id`: the same for every attempt of this delivery. */
  webhookId: string;
  /** Attempts made so far. */
  attempt: number;
  items: DeliveryItem[];
  meta: ItemMeta[];
}

const CLAIM = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], m) end
return due`;

export function retrySet(redis: Redis, prefix: string, destinationId: string) {
  const key = globalKeys(prefix).destinationRetries(destinationId);
  return {
    key,
    /** Parks deliveries until `dueAt` (ms). */
    async park(entries: Array<{ delivery: Delivery; dueAt: number }>): Promise<void> {
      if (entries.length === 0) return;
      const args: Array<string | number> = [];
      for (const e of entries) args.push(e.dueAt, JSON.stringify(e.delivery));
      await redis.zadd(key, ...args);
    },
    /** Claims up to `limit` due deliveries for `leaseMs`; each comes with its member to finish it. */
    async claim(
      now: number,
      limit: number,
      leaseMs: number,
    ): Promise<Array<{ member: string; delivery: Delivery }>> {
      const members = (await redis.eval(CLAIM, 1, key, now, limit, now + leaseMs)) as string[];
      return members.map((member) => ({ member, delivery: JSON.parse(member) as Delivery }));
    },
    /** Ends a claimed entry: removed, and parked again as its next attempt when given. */
    async finish(member: string, next?: { delivery: Delivery; dueAt: number }): Promise<void> {
      const m = redis.multi().zrem(key, member);
      if (next) m.zadd(key, next.dueAt, JSON.stringify(next.delivery));
      const res = await m.exec();
      for (const [err] of res ?? []) if (err) throw err;
    },
    size(): Promise<number> {
      return redis.zcard(key);
    },
    async clear(): Promise<void> {
      await redis.del(key);
    },
  };
}
export type RetrySet = ReturnType<typeof retrySet>;
