// Sends that must wait (quiet hours, retries far in the future, a busy claim, a campaign's
// send rate) are kept durably in a Redis sorted set scored by when they may run. A poller
// moves due ones to the retry topic, a little ahead of their time (LEAD_MS): the worker
// holds each until its time (pipeline.ts), so a send paced by a rate goes at its slot rather
// than in a burst with the poll before it. Moving is at-least-once (crash between produce
// and remove → produced twice), which the send-key claim makes harmless; a short lock keeps
// workers from all doing it.
import { randomBytes } from 'node:crypto';
import type { Producer } from '../runtime/kafka/index.ts';
import { sendOrDeadLetter } from '../runtime/kafka/send-bounded.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import { ACTIVATION_HEADERS, type ActivationJob } from '../schemas/activation-job.ts';
import { globalKeys } from '../schemas/redis-keys.ts';

export interface DelayedSend {
  job: ActivationJob;
  attempt: number;
  firstSeen: number;
  reason: string;
}

export function delayedSends(deps: { redis: Redis; redisPrefix: string }) {
  const keys = globalKeys(deps.redisPrefix);
  return {
    /** Queue sends to run at their time (pipelined; members are deterministic, so re-adding is a no-op). */
    async add(items: Array<DelayedSend & { notBefore: number }>): Promise<void> {
      if (items.length === 0) return;
      const p = deps.redis.pipeline();
      for (const { notBefore, ...rest } of items)
        p.zadd(keys.activationDelayed, notBefore, JSON.stringify(rest));
      const res = await p.exec();
      for (const [err] of res ?? []) if (err) throw err;
    },
    async size(): Promise<number> {
      return deps.redis.zcard(keys.activationDelayed);
    },
  };
}

/**
 * Brings a campaign's delayed sends forward to `at` (a new send rate: they come back and take
 * a slot at it, so a higher rate speeds up a broadcast already queued). Scans the whole set
 * once; a member moved on meanwhile is not put back (ZADD XX).
 */
export async function bringForward(
  deps: { redis: Redis; redisPrefix: string },
  workspaceId: string,
  campaignId: string,
  at: number,
): Promise<number> {
  const key = globalKeys(deps.redisPrefix).activationDelayed;
  const match = `*"campaignId":${JSON.stringify(campaignId).replace(/[*?[\]\\]/g, '\\$&')}*`;
  let cursor = '0';
  let moved = 0;
  do {
    const [next, found] = await deps.redis.zscan(key, cursor, 'MATCH', match, 'COUNT', 1000);
    cursor = next;
    const p = deps.redis.pipeline();
    let n = 0;
    for (let i = 0; i < found.length; i += 2) {
      const member = found[i]!;
      if (Number(found[i + 1]) <= at) continue;
      const d = JSON.parse(member) as DelayedSend;
      if (d.job.campaignId !== campaignId || d.job.change.workspaceId !== workspaceId) continue;
      p.zadd(key, 'XX', at, member);
      n++;
    }
    if (n > 0) await p.exec();
    moved += n;
  } while (cursor !== '0');
  return moved;
}

/**
 * How far ahead of their time sends leave the delayed set: more than a poll interval plus
 * the retry topic's round trip on a busy worker, less than the pipeline's inline wait.
 */
export const LEAD_MS = 1000;

/** Polls the delayed set and publishes due sends to the retry topic, until stopped. */
export function startDelayedPoller(deps: {
  redis: Redis;
  redisPrefix: string;
  producer: Producer;
  retryTopic: string;
  /** Where a job the broker refuses as too large goes instead (runtime/kafka/send-bounded.ts). */
  deadLetterTopic: string;
  now: () => number;
  log: Logger;
  intervalMs?: number;
  /** Sends due within this are moved now (the worker waits for their time); default LEAD_MS. */
  leadMs?: number;
}): { stop(): Promise<void>; tick(): Promise<number> } {
  const keys = globalKeys(deps.redisPrefix);
  const owner = randomBytes(6).toString('hex');
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  const tick = async (): Promise<number> => {
    const got = await deps.redis.set(keys.activationDelayedLock, owner, 'PX', 10_000, 'NX');
    if (got !== 'OK') return 0;
    let moved = 0;
    try {
      for (;;) {
        const due = await deps.redis.zrangebyscore(
          keys.activationDelayed,
          '-inf',
          deps.now() + (deps.leadMs ?? LEAD_MS),
          'WITHSCORES',
          'LIMIT',
          0,
          500,
        );
        if (due.length === 0) break;
        const members: string[] = [];
        const messages = [];
        // sends due at the same time go in the order they were first seen (members of equal
        // score come back in byte order, which is the campaign or journey step's id): one
        // person's welcome and tip held by quiet hours reach them in that order
        const items: Array<{ member: string; score: string; d: DelayedSend }> = [];
        for (let i = 0; i < due.length; i += 2)
          items.push({ member: due[i]!, score: due[i + 1]!, d: JSON.parse(due[i]!) as DelayedSend });
        items.sort((a, b) => Number(a.score) - Number(b.score) || a.d.firstSeen - b.d.firstSeen);
        for (const { member, score, d } of items) {
          members.push(member);
          messages.push({
            key: `${d.job.change.workspaceId}:${d.job.change.profileId}`,
            value: JSON.stringify(d.job),
            headers: {
              [ACTIVATION_HEADERS.attempt]: String(d.attempt),
              [ACTIVATION_HEADERS.notBefore]: score,
              [ACTIVATION_HEADERS.reason]: d.reason,
              [ACTIVATION_HEADERS.firstSeen]: String(d.firstSeen),
            },
          });
        }
        // in requests the broker takes; one it refuses as too large is dead-lettered, not
        // tried again at every poll
        await sendOrDeadLetter(deps.producer, deps.retryTopic, messages, {
          deadLetterTopic: deps.deadLetterTopic,
          stage: 'activation.delayed',
          log: deps.log,
        });
        await deps.redis.zrem(keys.activationDelayed, ...members);
        moved += members.length;
        if (due.length < 1000) break;
      }
    } finally {
      if ((await deps.redis.get(keys.activationDelayedLock)) === owner)
        await deps.redis.del(keys.activationDelayedLock);
    }
    if (moved > 0) deps.log.info({ moved }, 'delayed_sends_released');
    return moved;
  };
  const loop = () => {
    running = tick()
      .catch((err) => deps.log.warn({ err: (err as Error).message }, 'delayed_poll_failed'))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, deps.intervalMs ?? 250);
      });
  };
  loop();
  return {
    tick,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
