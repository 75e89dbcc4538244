// CDP_REDIS_DURABILITY against real redis-servers: the suite's (the local stack's default,
// appendfsync everysec) and one the local stack starts in the appendfsync-always mode.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type LocalStack, startLocalStack } from '../infra/local/stack.ts';
import { createLogger } from './log.ts';
import { RedisDurabilityError, redisDurability, supportsWaitaof } from './redis-durability.ts';

const log = createLogger({ level: 'silent', name: 'test' });
const settings = (durability: 'none' | 'waitaof' | 'appendfsync-always') => ({
  durability,
  waitaofTimeoutMs: 2000,
});

let suite: Redis;
let always: { stack: LocalStack; dir: string; redis: Redis } | undefined;

beforeAll(async () => {
  suite = new Redis(inject('redisUrl'));
  // the local stack in this mode: Kafka is the suite's, so only redis-server starts
  const dir = mkdtempSync(join(tmpdir(), 'cdp-durable-redis-'));
  const stack = await startLocalStack({
    dataDir: dir,
    env: { KAFKA_BROKERS: inject('kafkaBrokers'), CDP_REDIS_DURABILITY: 'appendfsync-always' },
  });
  always = { stack, dir, redis: new Redis(stack.redisUrl) };
});
afterAll(async () => {
  suite?.disconnect();
  always?.redis.disconnect();
  await always?.stack.stop();
  if (always) rmSync(always.dir, { recursive: true, force: true });
});

const failure = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: unknown) => e as Error,
  );

describe('CDP_REDIS_DURABILITY', () => {
  it('none: nothing to check, a barrier that returns at once', async () => {
    const barrier = await redisDurability(suite, settings('none'), log);
    await barrier();
  });

  it('waitaof: refused at start, naming the server version, where the server has no WAITAOF', async () => {
    const version = /redis_version:([^\r\n]+)/.exec(await suite.info('server'))?.[1];
    if (await supportsWaitaof(suite)) {
      // a Redis 7.2+ (REDIS_URL pointing at one): the barrier waits for the fsync of this connection's writes
      await suite.set('durability-test', '1');
      const barrier = await redisDurability(suite, settings('waitaof'), log);
      await barrier();
      const [local] = (await suite.call('WAITAOF', '1', '0', '100')) as number[];
      expect(local).toBe(1);
    } else {
      // Debian 12's redis-server (7.0)
      const err = await failure(redisDurability(suite, settings('waitaof'), log));
      expect(err).toBeInstanceOf(RedisDurabilityError);
      expect(err?.message).toContain('CDP_REDIS_DURABILITY=waitaof needs Redis 7.2 or newer');
      expect(err?.message).toContain(`this server is ${version}`);
      expect(err?.message).toContain('appendfsync-always');
    }
  });

  it('appendfsync-always: refused against a server that fsyncs only every second', async () => {
    expect(await suite.config('GET', 'appendfsync')).toEqual(['appendfsync', 'everysec']);
    const err = await failure(redisDurability(suite, settings('appendfsync-always'), log));
    expect(err).toBeInstanceOf(RedisDurabilityError);
    expect(err?.message).toMatch(/appendonly=yes, appendfsync=everysec/);
  });

  it('appendfsync-always: the local stack starts redis-server so, and the check passes', async () => {
    const redis = always!.redis;
    expect(await redis.config('GET', 'appendfsync')).toEqual(['appendfsync', 'always']);
    expect(await redis.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    const barrier = await redisDurability(redis, settings('appendfsync-always'), log);
    await barrier();
  });
});
