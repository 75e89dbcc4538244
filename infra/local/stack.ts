// The local stack: Kafka and Redis as child processes (ClickHouse is chDB, in process).
// Explicit KAFKA_BROKERS / REDIS_URL in the environment win over starting anything.
import { type LocalKafka, startKafka } from './kafka.ts';
import { type LocalRedis, startRedis } from './redis.ts';

export interface LocalStack {
  kafkaBrokers: string;
  redisUrl: string;
  /** Processes this stack started (their wrapper's pid: the server is its child), for measuring. */
  pids: { kafka?: number; redis?: number };
  /** The started broker's log.dirs (the bench reads topic sizes from it). */
  kafkaLogDir?: string;
  stop(): Promise<void>;
}

export async function startLocalStack(opts: {
  dataDir: string;
  env?: Record<string, string | undefined>;
  kafkaPort?: number;
  redisPort?: number;
}): Promise<LocalStack> {
  const env = opts.env ?? {};
  const started: Array<LocalKafka | LocalRedis> = [];
  // Start both at once; whatever did start is stopped again if the other fails.
  const [kafka, redis] = await Promise.allSettled([
    env.KAFKA_BROKERS ? undefined : startKafka({ dataDir: opts.dataDir, port: opts.kafkaPort }),
    env.REDIS_URL
      ? undefined
      : startRedis({
          dataDir: opts.dataDir,
          port: opts.redisPort,
          // the services check for it at start in this mode (runtime/redis-durability.ts)
          appendfsync: env.CDP_REDIS_DURABILITY === 'appendfsync-always' ? 'always' : 'everysec',
        }),
  ]);
  for (const r of [kafka, redis]) if (r.status === 'fulfilled' && r.value) started.push(r.value);
  const stop = async () => {
    await Promise.all(started.map((s) => s.stop()));
  };
  if (kafka.status === 'rejected' || redis.status === 'rejected') {
    await stop();
    throw kafka.status === 'rejected' ? kafka.reason : (redis as PromiseRejectedResult).reason;
  }
  return {
    kafkaBrokers: env.KAFKA_BROKERS || kafka.value!.brokers.join(','),
    redisUrl: env.REDIS_URL || redis.value!.url,
    pids: { kafka: kafka.value?.process.pid, redis: redis.value?.process.pid },
    ...(kafka.value ? { kafkaLogDir: kafka.value.logDir } : {}),
    stop,
  };
}
