import {
  type ConfigResourceTypes,
  type IHeaders,
  Kafka,
  type Consumer as KjsConsumer,
  type TopicMessages as KjsTopicMessages,
  type LogEntry,
  logLevel,
} from 'kafkajs';
import { backoffDelayMs, errorMessage, realSleep } from '../errors.ts';
import type { Logger } from '../log.ts';
import { fixKafkajsIdleTimer } from './kafkajs-request-queue.ts';
import { withLinger } from './linger.ts';
import { offsetCommitter } from './offset-committer.ts';
import { EFFECTS_SETTLE_MS, orderedCommits } from './ordered-commits.ts';
import { defaultPartitioner } from './partitioner.ts';
import {
  creationProblem,
  durabilityShortfalls,
  type ExistingTopic,
  resolveTopicDurability,
  TopicDurabilityError,
  type TopicDurabilitySettings,
  topicConfig,
} from './topic-durability.ts';
import type {
  Admin,
  Batch,
  BatchHandler,
  BatchOutcome,
  Consumer,
  ConsumerOptions,
  KafkaClient,
  OutgoingMessage,
  PartitionLag,
  Producer,
} from './types.ts';
import { DEFAULT_FETCH_PACE_MS, FETCH_MAX_WAIT_MS } from './types.ts';

// kafkajs logs every retriable protocol error (coordinator loading, topic already exists)
// at ERROR and retries it anyway; failures that matter surface through our own calls.
const levelName: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'warn',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

export function createKafkajsClient(opts: {
  brokers: string[];
  clientId: string;
  log: Logger;
  durability?: TopicDurabilitySettings;
}): KafkaClient {
  const log = opts.log.child({ component: 'kafkajs' });
  // no 1 ms timer per connection (kafkajs-request-queue.ts)
  fixKafkajsIdleTimer();
  const kafka = new Kafka({
    clientId: opts.clientId,
    brokers: opts.brokers,
    connectionTimeout: 3000,
    requestTimeout: 10_000,
    retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 5 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        log[levelName[level] ?? 'info'](rest, `kafkajs: ${message}`);
      },
  });

  return {
    driver: 'kafkajs',
    producer: (p) => {
      const producer = kafkajsProducer(kafka);
      return p?.lingerMs ? withLinger(producer, { lingerMs: p.lingerMs }) : producer;
    },
    consumer: (o) => kafkajsConsumer(kafka, o, log),
    admin: () => kafkajsAdmin(kafka, opts.durability ?? {}, log),
  };
}

// Sends are retried whole, by us, on a fresh kafkajs producer; kafkajs's own retries are
// off, and so is its idempotence (which exists to make those retries safe and which kafkajs
// will not run without them). Its retry of a send spanning several brokers re-sends only
// to the brokers that have not answered yet, with partitions regrouped by their leaders at
// that moment: when a broker dies and its partitions move to a broker that already
// answered, their messages are never sent, and the send resolves as if they had been
// written (a 3-broker cluster losing a broker under load lost 8 of 1,200 acknowledged
// events this way, test/scale/kafka-cluster.test.ts). Its idempotent retries also roll
// sequence numbers back while other sends use the instance, and after a broker restart
// left OUT_OF_ORDER_SEQUENCE_NUMBER on every later send. What a failed attempt did write
// is sent again: a duplicate, which every consumer drops by messageId.
const SEND_ATTEMPTS = 6;

/** Whether a failed send may be tried again: kafkajs wraps the error of its one attempt. */
export function retriableSendError(err: unknown): boolean {
  let e = err as { retriable?: boolean; name?: string; cause?: unknown } | undefined;
  if (e?.name === 'KafkaJSNumberOfRetriesExceeded' && e.cause) e = e.cause as typeof e;
  if (e?.retriable === true) return true;
  return e?.name === 'KafkaJSConnectionError' || e?.name === 'KafkaJSConnectionClosedError';
}

function kafkajsProducer(kafka: Kafka): Producer {
  const create = () => {
    const producer = kafka.producer({
      // kafkajs's default partitioner, partition for partition, at a fraction of its CPU
      createPartitioner: defaultPartitioner,
      idempotent: false,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      retry: { retries: 0 },
    });
    let connected: Promise<void> | undefined;
    const connect = () => {
      connected ??= producer.connect().catch((err) => {
        connected = undefined;
        throw err;
      });
      return connected;
    };
    return { producer, connect };
  };
  let current = create();
  let closed = false;
  const retire = (instance: ReturnType<typeof create>) => {
    if (current !== instance || closed) return;
    current = create();
    void instance.producer.disconnect().catch(() => {});
  };
  /** One attempt per instance; a failure retires it and the whole batch goes again on a new one. */
  const attempt = async (topicMessages: KjsTopicMessages[]) => {
    for (let n = 1; ; n++) {
      const instance = current;
      try {
        await instance.connect();
        await instance.producer.sendBatch({ acks: -1, topicMessages });
        return;
      } catch (err) {
        retire(instance);
        if (closed || n >= SEND_ATTEMPTS || !retriableSendError(err)) throw err;
        await new Promise((res) => setTimeout(res, Math.min(1000, 100 * 2 ** (n - 1))));
      }
    }
  };
  const toKafkajs = (messages: OutgoingMessage[]) =>
    messages.map((m) => ({ key: m.key, value: m.value, headers: m.headers }));
  return {
    connect: () => current.connect(),
    send: (topic, messages) => attempt([{ topic, messages: toKafkajs(messages) }]),
    sendBatch: (batches) =>
      attempt(batches.map((b) => ({ topic: b.topic, messages: toKafkajs(b.messages) }))),
    async disconnect() {
      closed = true;
      await current.producer.disconnect();
    },
  };
}

function headersToStrings(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    const first = Array.isArray(v) ? v[0] : v;
    if (first !== undefined) out[k] = first.toString();
  }
  return out;
}

function kafkajsConsumer(kafka: Kafka, o: ConsumerOptions, log: Logger): Consumer {
  const consumer: KjsConsumer = kafka.consumer({
    groupId: o.groupId,
    // A member that died without leaving is evicted after the session timeout, and a
    // rebalance waits for it that long: keep both short so a restart after a crash
    // rejoins in seconds. Batch work is bounded and heartbeats inside batches.
    sessionTimeout: 10_000,
    rebalanceTimeout: 15_000,
    heartbeatInterval: 2000,
    maxBytesPerPartition: o.maxBytesPerPartition ?? 1024 * 1024,
    // An idle fetch waits this long at the broker; a disconnect waits for it to return.
    // kafkajs's 5 s made every idle consumer take ~5 s to stop (npm start: ~12 s to exit).
    // Data still comes back at once: the broker answers as soon as there is any (unless
    // the consumer asks for more with minBytes, then for FETCH_MAX_WAIT_MS at most).
    maxWaitTimeInMs: (o.minBytes ?? 1) > 1 ? FETCH_MAX_WAIT_MS : 1000,
    minBytes: o.minBytes ?? 1,
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 5000 },
  });
  let stopping = false;
  const committer = offsetCommitter((offsets) => consumer.commitOffsets(offsets), log, o.commitIntervalMs);
  // what was handled is committed before partitions move to another member, while this
  // member's generation is still valid: the new owner then starts where this one stopped
  consumer.on(consumer.events.REBALANCING, () => void committer.flush());
  const commits = orderedCommits((t, p, offset) => committer.mark(t, p, offset), log);
  const maxBatch = o.maxBatchSize ?? 1000;
  const paceMs = o.fetchPaceMs ?? DEFAULT_FETCH_PACE_MS;
  return {
    async run(handler: BatchHandler) {
      await consumer.connect();
      await consumer.subscribe({ topics: o.topics, fromBeginning: o.fromBeginning ?? true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: o.concurrency ?? 1,
        eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
          const all = batch.messages;
          for (let start = 0; start < all.length; start += maxBatch) {
            const slice = all.slice(start, start + maxBatch);
            const b: Batch = {
              topic: batch.topic,
              partition: batch.partition,
              messages: slice.map((m) => ({
                topic: batch.topic,
                partition: batch.partition,
                offset: m.offset,
                key: m.key ? m.key.toString() : null,
                value: m.value,
                headers: headersToStrings(m.headers),
                timestamp: Number(m.timestamp),
              })),
            };
            const active = () => !stopping && isRunning() && !isStale();
            // Retry the same slice until it succeeds: effects are idempotent, and giving up
            // would either lose the events or stall behind a crash loop.
            let outcome: BatchOutcome;
            for (let attempt = 0; ; attempt++) {
              if (!active()) return;
              // heartbeats go on while a long batch runs, so the group does not evict us
              // (kafkajs sends one only when its interval has passed)
              const beating = setInterval(() => void heartbeat().catch(() => {}), 1000);
              try {
                outcome = await handler(b, { heartbeat, isActive: active });
                break;
              } catch (err) {
                log.warn(
                  { topic: b.topic, partition: b.partition, attempt, err: errorMessage(err) },
                  'batch_failed_retrying',
                );
                await realSleep(backoffDelayMs(attempt));
                await heartbeat().catch(() => {});
              } finally {
                clearInterval(beating);
              }
            }
            const last = slice[slice.length - 1];
            if (!last) continue;
            resolveOffset(last.offset); // the fetch position moves on only past handled messages
            // committed on an interval, after the effects (see offset-committer.ts)
            const next = (BigInt(last.offset) + 1n).toString();
            commits.add(batch.topic, batch.partition, next, outcome ? outcome.effects : undefined);
          }
          // caught up: let what arrives next gather for a moment (kafkajs fetches again once
          // this returns) rather than fetch for every message of a trickle (fetchPaceMs)
          if (paceMs > 0 && all.length > 0 && batch.offsetLag() === '0' && !stopping) await realSleep(paceMs);
        },
      });
    },
    async disconnect() {
      stopping = true;
      await commits.settle(EFFECTS_SETTLE_MS);
      await committer.flush();
      await consumer.disconnect();
    },
  };
}

// ConfigResourceTypes.TOPIC: kafkajs is CommonJS and Node's ESM loader does not see its enums
// as named exports, so the value is spelled out
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

function kafkajsAdmin(kafka: Kafka, durability: TopicDurabilitySettings, log: Logger): Admin {
  const admin = kafka.admin();
  // existing topics are checked once per admin: a warning per start, not per retry
  const checked = new Set<string>();
  const describeExisting = async (names: string[]): Promise<ExistingTopic[]> => {
    if (names.length === 0) return [];
    const [meta, configs] = await Promise.all([
      admin.fetchTopicMetadata({ topics: names }),
      admin.describeConfigs({
        includeSynonyms: false,
        resources: names.map((name) => ({
          type: TOPIC_RESOURCE,
          name,
          configNames: ['min.insync.replicas'],
        })),
      }),
    ]);
    return meta.topics.map((t) => {
      const entry = configs.resources
        .find((r) => r.resourceName === t.name)
        ?.configEntries.find((c) => c.configName === 'min.insync.replicas');
      return {
        topic: t.name,
        replication: Math.min(...t.partitions.map((p) => p.replicas.length)),
        minInsync: entry ? Number(entry.configValue) : null,
      };
    });
  };
  let connected: Promise<void> | undefined;
  const connect = () => {
    connected ??= admin.connect().catch((err) => {
      connected = undefined;
      throw err;
    });
    return connected;
  };
  return {
    async ensureTopics(topics) {
      await connect();
      // Waiting for the new topics' leaders, kafkajs sometimes gives up on a retriable
      // metadata error ("This server does not host this topic-partition") a moment before
      // the broker has them. Listing and creating again is idempotent: retry a few times.
      for (let attempt = 1; ; attempt++) {
        try {
          const brokers = (await admin.describeCluster()).brokers.length;
          const want = resolveTopicDurability(durability, brokers);
          const existing = new Set(await admin.listTopics());
          const unchecked = topics.filter((t) => existing.has(t.topic) && !checked.has(t.topic));
          for (const s of durabilityShortfalls(await describeExisting(unchecked.map((t) => t.topic)), want))
            log.warn(s, 'topic_less_durable_than_configured');
          for (const t of unchecked) checked.add(t.topic);
          const missing = topics.filter((t) => !existing.has(t.topic));
          if (missing.length === 0) return;
          const problem = creationProblem(want, brokers);
          if (problem) throw new TopicDurabilityError(problem);
          await admin.createTopics({
            waitForLeaders: true,
            topics: missing.map((t) => ({
              topic: t.topic,
              numPartitions: t.partitions,
              replicationFactor: want.replication,
              configEntries: Object.entries(topicConfig(want, t.config)).map(([name, value]) => ({
                name,
                value,
              })),
            })),
          });
          return;
        } catch (err) {
          // any error but ours: the wrapped ones (retries exceeded) do not say they were retriable
          if (err instanceof TopicDurabilityError || attempt >= 5) throw err;
          await realSleep(300 * attempt);
        }
      }
    },
    async ping() {
      await connect();
      await admin.describeCluster();
    },
    async groupLag(groupId, topics) {
      await connect();
      const committed = await admin.fetchOffsets({ groupId, topics });
      const out: PartitionLag[] = [];
      for (const topic of topics) {
        const mine = committed.find((c) => c.topic === topic)?.partitions ?? [];
        for (const p of await admin.fetchTopicOffsets(topic)) {
          const offset = mine.find((m) => m.partition === p.partition)?.offset;
          const has = offset !== undefined && Number(offset) >= 0;
          out.push({
            topic,
            partition: p.partition,
            committed: has ? offset : null,
            end: p.high,
            lag: Math.max(0, Number(p.high) - Number(has ? offset : p.low)),
          });
        }
      }
      return out.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
    },
    async disconnect() {
      connected = undefined;
      await admin.disconnect();
    },
  };
}
