// One small interface over the two Kafka clients (kafkajs and node-rdkafka), so the
// services never import a client library directly and the benchmark can pick the faster.

export interface OutgoingMessage {
  key: string;
  value: string | Buffer;
  headers?: Record<string, string>;
}

export interface IncomingMessage {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
  timestamp: number;
}

export interface Producer {
  connect(): Promise<void>;
  /** Resolves only once the broker acknowledged every message (acks=all). */
  send(topic: string, messages: OutgoingMessage[]): Promise<void>;
  /** Several topics in one request where the client can (kafkajs); same guarantee as send. */
  sendBatch?(batches: TopicMessages[]): Promise<void>;
  disconnect(): Promise<void>;
}

export interface TopicMessages {
  topic: string;
  messages: OutgoingMessage[];
}

export interface Batch {
  topic: string;
  partition: number;
  messages: IncomingMessage[];
}

export interface BatchContext {
  /** Call inside long batches so the group coordinator does not evict the consumer. */
  heartbeat(): Promise<void>;
  /** False once the consumer is stopping or lost the partition: stop early, the batch will be redelivered. */
  isActive(): boolean;
}

/**
 * What a handler answers: nothing when the batch's effects are done, or `effects` still
 * under way (a sink buffering rows for a bigger insert). With `effects`, the consumer goes
 * on to the next batch at once and commits this batch's offsets only after `effects`
 * resolved and every earlier batch of the partition is done (runtime/kafka/ordered-commits.ts).
 * A handler keeps what it has under way bounded by not resolving until there is room.
 */
export type BatchOutcome = void | { effects: Promise<void> };

/**
 * Called once per fetched batch of one partition. Offsets are committed after it
 * resolves (and its `effects`, if it answers some); if it throws, the same batch is
 * retried (with backoff) until it succeeds or the partition moves elsewhere. Handlers must
 * therefore be idempotent.
 */
export type BatchHandler = (batch: Batch, ctx: BatchContext) => Promise<BatchOutcome>;

/** How long a fetch with `minBytes` above 1 may wait at the broker for them. */
export const FETCH_MAX_WAIT_MS = 500;
/** ConsumerOptions.fetchPaceMs's default. */
export const DEFAULT_FETCH_PACE_MS = 5;

export interface ConsumerOptions {
  groupId: string;
  topics: string[];
  fromBeginning?: boolean;
  /** Upper bound on messages handed to one handler call. */
  maxBatchSize?: number;
  /** Partitions handled at once (default 1). Batches of one partition are always sequential. */
  concurrency?: number;
  /** Fetch size per partition; larger lets a backlog arrive in bigger batches. */
  maxBytesPerPartition?: number;
  /**
   * The broker holds a fetch until this many bytes are there, or for FETCH_MAX_WAIT_MS
   * (default 1: answer as soon as there is anything). A consumer that buffers anyway (the
   * sinks) sets it high and takes two full batches a second instead of one per produce,
   * which costs it, and the broker, a fraction of the CPU under a steady trickle.
   */
  minBytes?: number;
  /**
   * After a batch that emptied its partition (nothing more waiting at the broker), the next
   * fetch waits this long (default DEFAULT_FETCH_PACE_MS; 0: at once). Under a steady
   * trickle, a consumer that fetches again at once gets one or two messages a fetch: a
   * fetch per produce, each costing this process and the broker. Paced, what arrives
   * meanwhile comes in one fetch; an idle consumer still waits at the broker (no polling),
   * and a backlog is read without pauses. Adds at most this much latency per hop.
   */
  fetchPaceMs?: number;
  /**
   * How often handled offsets are committed (default 1000 ms; 0 = after every batch). A crash
   * redelivers at most this much; handlers are idempotent.
   */
  commitIntervalMs?: number;
}

export interface Consumer {
  run(handler: BatchHandler): Promise<void>;
  disconnect(): Promise<void>;
}

export interface TopicSpec {
  topic: string;
  partitions: number;
  config?: Record<string, string>;
}

/** How far a consumer group is behind on one partition. */
export interface PartitionLag {
  topic: string;
  partition: number;
  /** The group's committed offset; null when it has committed none. */
  committed: string | null;
  /** The partition's end (high watermark). */
  end: string;
  /** Messages not yet consumed: end − committed (end − start when nothing is committed). */
  lag: number;
}

export interface Admin {
  ensureTopics(topics: TopicSpec[]): Promise<void>;
  /** Lag of a consumer group on every partition of the topics (kafkajs; absent on rdkafka). */
  groupLag?(groupId: string, topics: string[]): Promise<PartitionLag[]>;
  /** Throws unless the cluster answers a metadata request. */
  ping(): Promise<void>;
  disconnect(): Promise<void>;
}

export interface KafkaClient {
  readonly driver: 'kafkajs' | 'rdkafka';
  producer(opts?: { lingerMs?: number }): Producer;
  consumer(opts: ConsumerOptions): Consumer;
  admin(): Admin;
}
