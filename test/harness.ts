// Helpers for integration tests: a configuration isolated per suite, conditions waited
// on with deadlines, and the real local services.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { inject } from 'vitest';
import { createProcessor, type Processor, type ProcessorDeps } from '../processor/pipeline.ts';
import { type Config, loadConfig } from '../runtime/config.ts';
import { createKafka, type Producer } from '../runtime/kafka/index.ts';
import { createLogger, type Logger } from '../runtime/log.ts';
import { topics } from '../schemas/topics.ts';

export function uniqueId(prefix: string): string {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

/** A config with its own topics, Redis keys, workspace and chDB directory; ports chosen by the OS. */
export function testConfig(env: Record<string, string> = {}): Config {
  const id = uniqueId('t');
  return loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    KAFKA_BROKERS: inject('kafkaBrokers'),
    REDIS_URL: inject('redisUrl'),
    CDP_TOPIC_PREFIX: id,
    CDP_TOPIC_PARTITIONS: '4',
    CDP_REDIS_PREFIX: id,
    CDP_DEFAULT_WORKSPACE: uniqueId('ws_'),
    CDP_DATA_DIR: mkdtempSync(join(tmpdir(), 'cdp-test-')),
    CDP_INGEST_PORT: '0',
    CDP_QUERY_PORT: '0',
    CDP_HISTORY_FLUSH_MS: '200',
    ...env,
  });
}

/**
 * The environment of a `cdp` process started by a test: the suite's Kafka and Redis, its
 * own topic and key prefix and data directory, quiet logs; `extra` on top.
 */
export function serviceEnv(prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: 'error',
    KAFKA_BROKERS: inject('kafkaBrokers'),
    REDIS_URL: inject('redisUrl'),
    CDP_TOPIC_PREFIX: prefix,
    CDP_REDIS_PREFIX: prefix,
    CDP_DATA_DIR: mkdtempSync(join(tmpdir(), 'cdp-service-')),
    ...extra,
  };
}

/**
 * For suites that drive the processor pipeline in process: the topics it publishes to
 * (one partition each), and a producer for it.
 */
export async function processorOutputs(cfg: Config, log: Logger): Promise<Producer> {
  const kafka = createKafka(cfg.kafka, log);
  const admin = kafka.admin();
  const t = topics(cfg.kafka.topicPrefix);
  await admin.ensureTopics([
    { topic: t.segmentChanges, partitions: 1 },
    { topic: t.identity, partitions: 1 },
    { topic: t.deadLetter, partitions: 1 },
  ]);
  await admin.disconnect();
  return kafka.producer();
}

/**
 * The processor pipeline as suites drive it in process: the config's topics and Redis key
 * prefix, replays deduplicated for an hour, 100 identifiers per profile; `deps` on top.
 */
export function testProcessor(
  cfg: Config,
  deps: Pick<ProcessorDeps, 'redis' | 'producer' | 'registry' | 'log'> & Partial<ProcessorDeps>,
): Processor {
  return createProcessor({
    topics: topics(cfg.kafka.topicPrefix),
    redisPrefix: cfg.redis.prefix,
    apply: { dedupTtlSeconds: 3600, maxIdentities: 100 },
    ...deps,
  });
}

export function testLogger(cfg: Config): Logger {
  return createLogger({ level: cfg.logLevel, name: 'test' });
}

/** Polls until `check` returns a value (not undefined/false) or the deadline passes. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`,
  );
}

/** Collects every message of a topic from the beginning, as parsed JSON, until stopped. */
export async function readTopic<T>(
  brokers: string[],
  topic: string,
  groupId: string,
): Promise<{ seen: Array<{ key: string; value: T }>; stop(): Promise<void> }> {
  const consumer = new Kafka({ brokers, logLevel: logLevel.NOTHING }).consumer({ groupId });
  await consumer.connect();
  // a topic created a moment ago may not be in every broker's metadata yet
  await eventually(
    `topic ${topic}`,
    () => consumer.subscribe({ topic, fromBeginning: true }).then(() => true),
    30_000,
    200,
  );
  const seen: Array<{ key: string; value: T }> = [];
  await consumer.run({
    eachMessage: async ({ message }) => {
      seen.push({ key: message.key?.toString() ?? '', value: JSON.parse(message.value!.toString()) as T });
    },
  });
  return { seen, stop: () => consumer.disconnect() };
}

/**
 * The query API as a suite calls it: JSON in and out, the admin key of `cfg`. The body of an
 * answer is parsed when there is one (`{}` otherwise), for field-by-field checks.
 */
export function adminApi(baseUrl: () => string, cfg: () => Config) {
  return async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${baseUrl()}${path}`, {
      method,
      headers: { authorization: `Bearer ${cfg().keys.adminKey}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field in tests
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, any> };
  };
}

/** Sends to an ingest route with `cfg`'s write key and expects a 200. */
export function ingestApi(baseUrl: () => string, cfg: () => Config) {
  return async (path: string, body: unknown) => {
    const res = await fetch(`${baseUrl()}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${cfg().keys.writeKey}:`).toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
    });
    if (res.status !== 200) throw new Error(`ingest ${path}: ${res.status} ${await res.text()}`);
  };
}
