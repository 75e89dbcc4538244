import { createRequire } from 'node:module';
import { backoffDelayMs, errorMessage, realSleep } from '../errors.ts';
import type { Logger } from '../log.ts';
import { offsetCommitter } from './offset-committer.ts';
import { EFFECTS_SETTLE_MS, orderedCommits } from './ordered-commits.ts';
import {
  creationProblem,
  durabilityShortfalls,
  resolveTopicDurability,
  TopicDurabilityError,
  type TopicDurabilitySettings,
  topicConfig,
} from './topic-durability.ts';
import type {
  Admin,
  Batch,
  BatchOutcome,
  Consumer,
  ConsumerOptions,
  IncomingMessage,
  KafkaClient,
  Producer,
} from './types.ts';
import { FETCH_MAX_WAIT_MS } from './types.ts';

// node-rdkafka is a native addon; it is loaded only when this driver is selected so that a
// machine without a working build can still run on kafkajs.
type RdKafka = typeof import('node-rdkafka');
let rd: RdKafka | undefined;
function load(): RdKafka {
  rd ??= createRequire(import.meta.url)('node-rdkafka') as RdKafka;
  return rd;
}

export function createRdkafkaClient(opts: {
  brokers: string[];
  clientId: string;
  log: Logger;
  durability?: TopicDurabilitySettings;
}): KafkaClient {
  const log = opts.log.child({ component: 'rdkafka' });
  const base = {
    'metadata.broker.list': opts.brokers.join(','),
    'client.id': opts.clientId,
    'socket.keepalive.enable': true,
  };
  return {
    driver: 'rdkafka',
    producer: (p) => rdProducer(base, p?.lingerMs ?? 2),
    consumer: (o) => rdConsumer(base, o, log),
    admin: () => rdAdmin(base, opts.durability ?? {}, log),
  };
}

/** One send() call: settled when the last of its messages has a delivery report. */
interface Pending {
  remaining: number;
  failed: unknown;
  resolve(): void;
  reject(err: unknown): void;
}

function rdProducer(base: Record<string, unknown>, lingerMs: number): Producer {
  const Kafka = load();
  // The plain Producer with delivery reports: each message carries its send()'s tracker
  // as opaque, so a batch costs one promise, not one listener and promise per message
  // (what HighLevelProducer does).
  const producer = new Kafka.Producer(
    {
      ...base,
      'enable.idempotence': true,
      acks: -1,
      dr_cb: true,
      'linger.ms': lingerMs,
      'message.timeout.ms': 30_000,
      'queue.buffering.max.messages': 1_000_000,
      // No compression: kafkajs reads only gzip natively, and a consumer on either driver
      // must read what the other produced.
      'compression.codec': 'none',
    } as never,
    {
      // kafkajs partitions keys with murmur2 (as the Java client does); librdkafka must match
      // so one identity lands on one partition whichever driver produced it.
      partitioner: 'murmur2_random',
    } as never,
  );
  producer.on('delivery-report', (err: unknown, report: { opaque?: Pending }) => {
    const p = report?.opaque;
    if (!p) return;
    if (err) p.failed ??= err;
    if (--p.remaining === 0) {
      if (p.failed) p.reject(new Error(`rdkafka produce: ${errorMessage(p.failed)}`));
      else p.resolve();
    }
  });
  let connected: Promise<void> | undefined;
  return {
    connect() {
      connected ??= new Promise<void>((resolve, reject) => {
        producer.connect({ timeout: 5000 }, (err) => {
          if (err) {
            connected = undefined;
            reject(new Error(`rdkafka producer connect: ${errorMessage(err)}`));
          } else {
            producer.setPollInterval(2);
            resolve();
          }
        });
      });
      return connected;
    },
    async send(topic, messages) {
      await this.connect();
      if (messages.length === 0) return;
      await new Promise<void>((resolve, reject) => {
        const p: Pending = { remaining: messages.length, failed: undefined, resolve, reject };
        const now = Date.now();
        for (let i = 0; i < messages.length; i++) {
          const m = messages[i]!;
          const value = typeof m.value === 'string' ? Buffer.from(m.value) : m.value;
          const headers = m.headers ? Object.entries(m.headers).map(([k, v]) => ({ [k]: v })) : undefined;
          try {
            producer.produce(topic, null, value, m.key, now, p, headers as never);
          } catch (err) {
            // not queued (e.g. local queue full): this message will get no report
            p.failed ??= err;
            if (--p.remaining === 0) reject(new Error(`rdkafka produce: ${errorMessage(p.failed)}`));
          }
        }
      });
    },
    async disconnect() {
      if (!connected) return;
      connected = undefined;
      await new Promise<void>((resolve) => producer.flush(5000, () => producer.disconnect(() => resolve())));
    },
  };
}

function rdConsumer(base: Record<string, unknown>, o: ConsumerOptions, log: Logger): Consumer {
  const Kafka = load();
  const consumer = new Kafka.KafkaConsumer(
    {
      ...base,
      'group.id': o.groupId,
      'enable.auto.commit': false,
      'enable.partition.eof': false,
      'max.partition.fetch.bytes': o.maxBytesPerPartition ?? 1024 * 1024,
      ...((o.minBytes ?? 1) > 1
        ? { 'fetch.min.bytes': o.minBytes, 'fetch.wait.max.ms': FETCH_MAX_WAIT_MS }
        : {}),
      'session.timeout.ms': 10_000,
      'heartbeat.interval.ms': 2000,
    },
    { 'auto.offset.reset': o.fromBeginning === false ? 'latest' : 'earliest' },
  );
  const maxBatch = o.maxBatchSize ?? 1000;
  let stopping = false;
  let loop: Promise<void> | undefined;
  // asynchronous commits (commitSync would block the event loop for a broker round trip)
  const committer = offsetCommitter(
    async (offsets) => {
      consumer.commit(
        offsets.map((t) => ({ topic: t.topic, partition: t.partition, offset: Number(t.offset) })),
      );
    },
    log,
    o.commitIntervalMs,
  );
  const commits = orderedCommits((t, p, offset) => committer.mark(t, p, offset), log);

  // consume(n) waits up to the timeout for each message until n have come, so a trickle
  // (one message every 20 ms, say) kept a 1000-message batch open for seconds. A batch is
  // therefore the first message (waited for) plus what is already fetched (1 ms).
  const consumeN = (n: number, timeoutMs: number) =>
    new Promise<IncomingMessage[]>((resolve, reject) => {
      consumer.setDefaultConsumeTimeout(timeoutMs);
      consumer.consume(n, (err, msgs) => {
        if (err) return reject(err);
        resolve(
          msgs.map((m) => ({
            topic: m.topic,
            partition: m.partition,
            offset: String(m.offset),
            key: m.key == null ? null : m.key.toString(),
            value: m.value,
            headers: Object.fromEntries(
              (m.headers ?? []).flatMap((h) => Object.entries(h).map(([k, v]) => [k, v.toString()])),
            ),
            timestamp: m.timestamp ?? Date.now(),
          })),
        );
      });
    });
  const consume = async () => {
    const first = await consumeN(1, 100);
    if (first.length === 0 || maxBatch === 1) return first;
    return first.concat(await consumeN(maxBatch - 1, 1));
  };

  return {
    async run(handler) {
      await new Promise<void>((resolve, reject) =>
        consumer.connect({ timeout: 10_000 }, (err) => (err ? reject(err) : resolve())),
      );
      consumer.subscribe(o.topics);
      const isActive = () => !stopping;
      loop = (async () => {
        while (!stopping) {
          let msgs: IncomingMessage[];
          try {
            msgs = await consume();
          } catch (err) {
            log.warn({ err: errorMessage(err) }, 'consume_failed');
            await realSleep(500);
            continue;
          }
          const byPartition = new Map<string, Batch>();
          for (const m of msgs) {
            const k = `${m.topic}/${m.partition}`;
            const b = byPartition.get(k) ?? { topic: m.topic, partition: m.partition, messages: [] };
            byPartition.set(k, b);
            b.messages.push(m);
          }
          const handle = async (b: Batch) => {
            let outcome: BatchOutcome;
            for (let attempt = 0; ; attempt++) {
              if (stopping) return;
              try {
                outcome = await handler(b, { heartbeat: async () => {}, isActive });
                break;
              } catch (err) {
                log.warn(
                  { topic: b.topic, partition: b.partition, attempt, err: errorMessage(err) },
                  'batch_failed_retrying',
                );
                await realSleep(backoffDelayMs(attempt));
              }
            }
            const last = b.messages[b.messages.length - 1]!;
            commits.add(
              b.topic,
              b.partition,
              String(Number(last.offset) + 1),
              outcome ? outcome.effects : undefined,
            );
          };
          const batches = [...byPartition.values()];
          const width = Math.max(1, o.concurrency ?? 1);
          for (let i = 0; i < batches.length; i += width)
            await Promise.all(batches.slice(i, i + width).map(handle));
        }
      })();
    },
    async disconnect() {
      stopping = true;
      await loop?.catch(() => {});
      await commits.settle(EFFECTS_SETTLE_MS);
      await committer.flush();
      await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
    },
  };
}

function rdAdmin(base: Record<string, unknown>, durability: TopicDurabilitySettings, log: Logger): Admin {
  const Kafka = load();
  const admin = Kafka.AdminClient.create(base as never);
  let metaClient: Promise<InstanceType<RdKafka['Producer']>> | undefined;
  // node-rdkafka's AdminClient has no metadata call: a metadata request through a (never
  // producing) producer client is the cheapest real round trip to the brokers
  const metadata = async (timeout = 3000) => {
    metaClient ??= new Promise((resolve, reject) => {
      const p = new Kafka.Producer(base as never);
      p.connect({ timeout: 3000 }, (err) => (err ? reject(err) : resolve(p)));
    });
    const client = await metaClient.catch((err) => {
      metaClient = undefined;
      throw err;
    });
    return new Promise<import('node-rdkafka').Metadata>((resolve, reject) =>
      client.getMetadata({ timeout, allTopics: true }, (err, m) => (err ? reject(err) : resolve(m))),
    );
  };
  // existing topics are checked once per admin: a warning per start, not per retry
  const checked = new Set<string>();
  return {
    async ensureTopics(topics) {
      const meta = await metadata(10_000);
      const brokers = meta.brokers.length;
      const want = resolveTopicDurability(durability, brokers);
      const existing = new Map(meta.topics.map((t) => [t.name, t]));
      const unchecked = topics.filter((t) => existing.has(t.topic) && !checked.has(t.topic));
      // librdkafka's admin API here cannot describe configs: min.insync.replicas is not checked
      const described = unchecked.map((t) => ({
        topic: t.topic,
        replication: Math.min(...(existing.get(t.topic)?.partitions ?? []).map((p) => p.replicas.length)),
        minInsync: null,
      }));
      for (const s of durabilityShortfalls(described, want))
        log.warn(s, 'topic_less_durable_than_configured');
      for (const t of unchecked) checked.add(t.topic);
      const missing = topics.filter((t) => !existing.has(t.topic));
      if (missing.length === 0) return;
      const problem = creationProblem(want, brokers);
      if (problem) throw new TopicDurabilityError(problem);
      for (const t of missing) {
        await new Promise<void>((resolve, reject) =>
          admin.createTopic(
            {
              topic: t.topic,
              num_partitions: t.partitions,
              replication_factor: want.replication,
              config: topicConfig(want, t.config),
            },
            10_000,
            (err) => {
              // 36 = TOPIC_ALREADY_EXISTS: creating is idempotent.
              if (err && (err as { code?: number }).code !== 36) reject(err);
              else resolve();
            },
          ),
        );
      }
    },
    async ping() {
      await metadata();
    },
    async disconnect() {
      admin.disconnect();
      const c = await metaClient?.catch(() => undefined);
      metaClient = undefined;
      if (c) await new Promise<void>((resolve) => c.disconnect(() => resolve()));
    },
  };
}
