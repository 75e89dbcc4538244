// The processor and the activation worker under CDP_REDIS_DURABILITY, on the real stack: a
// mode the Redis server cannot honour stops their start; where it can, a batch's writes are
// on disk before its offsets are committed (WAITAOF once per batch, seen through MONITOR, or
// a server that fsyncs every write, which the local stack starts in that mode).
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';
import type { Config } from '../../runtime/config.ts';
import { RedisDurabilityError, supportsWaitaof } from '../../runtime/redis-durability.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

let suiteRedis: Redis;
let alwaysStack: { stack: LocalStack; dir: string } | undefined;

beforeAll(async () => {
  suiteRedis = new Redis(inject('redisUrl'));
  const dir = mkdtempSync(join(tmpdir(), 'cdp-durable-'));
  const stack = await startLocalStack({
    dataDir: dir,
    env: { KAFKA_BROKERS: inject('kafkaBrokers'), CDP_REDIS_DURABILITY: 'appendfsync-always' },
  });
  alwaysStack = { stack, dir };
});
afterAll(async () => {
  suiteRedis?.disconnect();
  await alwaysStack?.stack.stop();
  if (alwaysStack) rmSync(alwaysStack.dir, { recursive: true, force: true });
});

const failure = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: unknown) => e as Error,
  );

/** Every command the server runs while recording, as its name and arguments (MONITOR over a bare socket). */
async function monitor(url: string): Promise<{ lines: string[][]; stop(): void }> {
  const u = new URL(url);
  const socket = connect(Number(u.port || 6379), u.hostname);
  const lines: string[][] = [];
  let pending = '';
  const started = new Promise<void>((resolve, reject) => {
    socket.setEncoding('utf8');
    socket.on('error', reject);
    socket.on('data', (chunk: string) => {
      pending += chunk;
      const parts = pending.split('\r\n');
      pending = parts.pop() ?? '';
      for (const line of parts) {
        if (line === '+OK') resolve();
        else if (line.startsWith('-')) reject(new Error(`MONITOR: ${line}`));
        else lines.push([...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? ''));
      }
    });
  });
  socket.write('MONITOR\r\n');
  await started;
  return { lines, stop: () => socket.destroy() };
}

/** Sends one identify through the running ingest. */
async function identify(running: RunningServices, cfg: Config, userId: string) {
  const r = await fetch(`${running.urls.ingest}/v1/identify`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ userId, traits: { plan: 'pro' } }),
  });
  expect(r.status).toBe(200);
}

/** The processor group's committed offsets on the events topic, summed over partitions. */
async function committed(cfg: Config): Promise<number> {
  const admin = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const [got] = await admin.fetchOffsets({
      groupId: `${cfg.kafka.topicPrefix}.cdp-processor`,
      topics: [topics(cfg.kafka.topicPrefix).events],
    });
    return (got?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
  } finally {
    await admin.disconnect();
  }
}

const profileOf = (redis: Redis, cfg: Config, userId: string) =>
  redis.get(`${workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).tag}:id:user:${userId}`);

describe('CDP_REDIS_DURABILITY=waitaof', () => {
  it('the processor waits for WAITAOF once per batch before committing, or refuses a server without it', async () => {
    const cfg = testConfig({ CDP_REDIS_DURABILITY: 'waitaof', CDP_TOPIC_PARTITIONS: '1' });
    if (!(await supportsWaitaof(suiteRedis))) {
      // Debian 12's redis-server (7.0): neither the processor nor the activation worker starts
      for (const service of ['processor', 'activation'] as const) {
        const err = await failure(startServices(cfg, [service], testLogger(cfg)));
        expect(err).toBeInstanceOf(RedisDurabilityError);
        expect(err?.message).toMatch(/CDP_REDIS_DURABILITY=waitaof needs Redis 7.2 or newer/);
      }
      return;
    }
    // Redis 7.2+: after the batch's apply script, one WAITAOF on the same connection, and
    // the offsets are committed only after it
    const watch = await monitor(cfg.redis.url);
    const running = await startServices(cfg, ['ingest', 'processor'], testLogger(cfg));
    try {
      const userId = uniqueId('u-');
      await identify(running, cfg, userId);
      await eventually('the batch committed', async () => (await committed(cfg)) >= 1, 60_000, 100);
      const atCommit = watch.lines.map((l) => l[0]?.toLowerCase());
      const script = watch.lines.findIndex((l) => l.some((a) => a.includes(userId)));
      expect(script).toBeGreaterThanOrEqual(0);
      expect(atCommit.indexOf('waitaof', script)).toBeGreaterThan(script);
      expect(await profileOf(suiteRedis, cfg, userId)).toBeTruthy();
    } finally {
      watch.stop();
      await running.stop();
    }
  });
});

describe('CDP_REDIS_DURABILITY=appendfsync-always', () => {
  it('refuses to start against a server that fsyncs every second', async () => {
    const cfg = testConfig({ CDP_REDIS_DURABILITY: 'appendfsync-always' });
    for (const service of ['processor', 'activation'] as const) {
      const err = await failure(startServices(cfg, [service], testLogger(cfg)));
      expect(err).toBeInstanceOf(RedisDurabilityError);
      expect(err?.message).toMatch(/appendfsync=everysec/);
    }
  });

  it('runs on the redis-server the local stack starts in this mode: each write fsynced before its answer', async () => {
    const cfg = testConfig({
      CDP_REDIS_DURABILITY: 'appendfsync-always',
      CDP_TOPIC_PARTITIONS: '1',
      REDIS_URL: alwaysStack!.stack.redisUrl,
    });
    const redis = new Redis(cfg.redis.url);
    const running = await startServices(cfg, ['ingest', 'processor'], testLogger(cfg));
    try {
      expect(await redis.config('GET', 'appendfsync')).toEqual(['appendfsync', 'always']);
      const userId = uniqueId('u-');
      await identify(running, cfg, userId);
      await eventually('the batch committed', async () => (await committed(cfg)) >= 1, 60_000, 100);
      // committed after the profile was written (and, in this mode, fsynced)
      expect(await profileOf(redis, cfg, userId)).toBeTruthy();
    } finally {
      await running.stop();
      redis.disconnect();
    }
  });
});
