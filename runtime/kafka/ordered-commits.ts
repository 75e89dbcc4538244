// Offsets of batches whose effects finish later than the handler returns (a sink that
// buffers rows for a bigger insert answers `{ effects }`): a batch's offset becomes
// committable once its effects are done AND every earlier batch of its partition is, so a
// commit never passes an event whose effect is not durable. Effects that fail stop the
// partition's commits for the rest of this consumer's life: what follows is redelivered
// after a restart (handlers are idempotent), never skipped.
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';

/** How long a stopping consumer waits for effects under way before its last commit. */
export const EFFECTS_SETTLE_MS = 5000;

interface Entry {
  next: string;
  done: boolean;
}

export interface OrderedCommits {
  /**
   * The batch ending before `next` was handled; its offset is marked once `effects` (if
   * any) resolved, after the partition's earlier batches.
   */
  add(topic: string, partition: number, next: string, effects?: Promise<void>): void;
  /** Waits for effects under way (at most `timeoutMs`), so what they finish is still marked. */
  settle(timeoutMs: number): Promise<void>;
}

export function orderedCommits(
  mark: (topic: string, partition: number, offset: string) => void,
  log: Logger,
): OrderedCommits {
  const queues = new Map<string, Entry[]>();
  const stalled = new Set<string>();
  const underWay = new Set<Promise<void>>();

  const drain = (topic: string, partition: number, q: Entry[]) => {
    let last: Entry | undefined;
    while (q[0]?.done) last = q.shift();
    if (last) mark(topic, partition, last.next);
  };

  return {
    add(topic, partition, next, effects) {
      const key = `${topic}\u0000${partition}`;
      if (stalled.has(key)) return;
      let q = queues.get(key);
      if (!effects && (!q || q.length === 0)) {
        mark(topic, partition, next);
        return;
      }
      if (!q) {
        q = [];
        queues.set(key, q);
      }
      const entry: Entry = { next, done: !effects };
      q.push(entry);
      if (!effects) return;
      const queue = q;
      const watched = effects.then(
        () => {
          entry.done = true;
          if (!stalled.has(key)) drain(topic, partition, queue);
        },
        (err) => {
          stalled.add(key);
          queue.length = 0;
          log.error(
            { topic, partition, err: errorMessage(err) },
            'batch_effects_failed: no more commits on this partition until restart (redelivered then)',
          );
        },
      );
      underWay.add(watched);
      void watched.finally(() => underWay.delete(watched));
    },
    async settle(timeoutMs) {
      if (underWay.size === 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...underWay]),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
