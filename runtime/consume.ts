// Runs a consumer until stopped, surviving a broker that is down at start or goes away:
// topics are ensured and the consumer (re)started with capped backoff.

import { backoffDelayMs, errorMessage, realSleep } from './errors.ts';
import type { Admin, BatchHandler, ConsumerOptions, KafkaClient, TopicSpec } from './kafka/index.ts';
import type { Logger } from './log.ts';
import { instrumentHandler, watchLag } from './metrics.ts';

export interface RunningConsumer {
  /** Resolves once the consumer joined its group the first time. */
  started: Promise<void>;
  stop(): Promise<void>;
}

export function superviseConsumer(opts: {
  kafka: KafkaClient;
  admin: Admin;
  topics: TopicSpec[];
  consumer: ConsumerOptions;
  handler: BatchHandler;
  log: Logger;
}): RunningConsumer {
  let stopped = false;
  let current: ReturnType<KafkaClient['consumer']> | undefined;
  const handler = instrumentHandler(opts.consumer.groupId, opts.handler);
  const unwatch = watchLag(opts.consumer.groupId, opts.admin, opts.consumer.topics);
  let markStarted!: () => void;
  const started = new Promise<void>((r) => {
    markStarted = r;
  });
  const loop = (async () => {
    for (let attempt = 0; !stopped; attempt++) {
      try {
        await opts.admin.ensureTopics(opts.topics);
        current = opts.kafka.consumer(opts.consumer);
        await current.run(handler);
        markStarted();
        opts.log.info({ groupId: opts.consumer.groupId, topics: opts.consumer.topics }, 'consumer_started');
        return;
      } catch (err) {
        opts.log.warn(
          { groupId: opts.consumer.groupId, attempt, err: errorMessage(err) },
          'consumer_start_failed',
        );
        await current?.disconnect().catch(() => {});
        current = undefined;
        await realSleep(backoffDelayMs(attempt, 250, 5));
      }
    }
  })();
  return {
    started,
    async stop() {
      stopped = true;
      unwatch();
      await current?.disconnect().catch(() => {});
      // a start attempt against an unreachable broker may be mid-retry: don't wait it out
      await Promise.race([loop, realSleep(5000)]);
    },
  };
}
