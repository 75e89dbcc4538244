// What a consumer batch waits for before its offsets are committed (CDP_REDIS_DURABILITY).
// Redis answers a write once it is in memory and written to the append-only file; the file
// reaches the disk on the server's appendfsync schedule (every second by default), so a power
// loss can take the last second of writes whose Kafka offsets were already committed: events
// that are then neither in Redis nor redelivered. The two durable modes close that gap:
//   waitaof             after a batch's writes, one `WAITAOF 1 0 <timeout>` on the connection
//                       that made them: the batch completes once they are fsynced to the AOF
//                       (Redis 7.2+). Pair it with appendfsync always: under everysec every
//                       batch waits for the next periodic fsync, about a second (measured)
//   appendfsync-always  the server fsyncs every write before answering it; checked at start
// A mode the server cannot honour is a startup error, never a setting silently ignored.
import type { RedisConfig } from './config.ts';
import type { Logger } from './log.ts';
import { isCluster, type Redis } from './redis.ts';

export class RedisDurabilityError extends Error {
  readonly retriable: boolean;
  constructor(message: string, retriable = false) {
    super(message);
    this.name = 'RedisDurabilityError';
    this.retriable = retriable;
  }
}

/** Called once per batch after its writes and before its offsets are committed. */
export type DurabilityBarrier = () => Promise<void>;

const none: DurabilityBarrier = async () => {};

/** `CONFIG GET name` → value, or null where CONFIG is not allowed (managed services rename it). */
async function configValue(redis: Redis, name: string): Promise<string | null> {
  try {
    const reply = (await redis.call('CONFIG', 'GET', name)) as string[];
    return reply[1] ?? null;
  } catch {
    return null;
  }
}

async function serverVersion(redis: Redis): Promise<string> {
  const info = await redis.info('server');
  return /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? 'unknown';
}

/** Whether the server has WAITAOF (COMMAND INFO answers nil for a command it lacks). */
export async function supportsWaitaof(redis: Redis): Promise<boolean> {
  const reply = (await redis.call('COMMAND', 'INFO', 'WAITAOF')) as unknown[];
  return Array.isArray(reply) && reply[0] !== null && reply[0] !== undefined;
}

/** `WAITAOF 1 0 timeout` on this connection; throws (retriable) unless the local AOF has the writes. */
export async function waitForAof(redis: Redis, timeoutMs: number): Promise<void> {
  const [local] = (await redis.call('WAITAOF', '1', '0', String(timeoutMs))) as [number, number];
  if (local < 1)
    throw new RedisDurabilityError(`WAITAOF: the writes were not fsynced within ${timeoutMs} ms`, true);
}

/**
 * Checks at start that the server honours `mode` and answers the per-batch barrier. `redis`
 * must be the connection the batch's writes go through (WAITAOF waits for that connection's
 * writes only).
 */
export async function redisDurability(
  redis: Redis,
  opts: Pick<RedisConfig, 'durability' | 'waitaofTimeoutMs'>,
  log: Logger,
): Promise<DurabilityBarrier> {
  if (isCluster(redis) && opts.durability !== 'none') return clusterDurability(redis, opts.durability, log);
  switch (opts.durability) {
    case 'none':
      return none;
    case 'waitaof': {
      if (!(await supportsWaitaof(redis)))
        throw new RedisDurabilityError(
          `CDP_REDIS_DURABILITY=waitaof needs Redis 7.2 or newer (WAITAOF); this server is ${await serverVersion(redis)}. ` +
            'Use CDP_REDIS_DURABILITY=appendfsync-always with `appendfsync always` on the server instead.',
        );
      try {
        await waitForAof(redis, opts.waitaofTimeoutMs);
      } catch (err) {
        // e.g. "WAITAOF cannot be used when numlocal is set but appendonly is disabled"
        throw new RedisDurabilityError(`CDP_REDIS_DURABILITY=waitaof: ${(err as Error).message}`);
      }
      const appendfsync = await configValue(redis, 'appendfsync');
      // correct, but under everysec each batch waits for the next fsync: up to a second
      if (appendfsync !== null && appendfsync !== 'always')
        log.warn({ appendfsync }, 'redis_waitaof_waits_for_periodic_fsync');
      else log.info({ mode: opts.durability, appendfsync }, 'redis_durability');
      return () => waitForAof(redis, opts.waitaofTimeoutMs);
    }
    case 'appendfsync-always': {
      const [appendonly, appendfsync] = [
        await configValue(redis, 'appendonly'),
        await configValue(redis, 'appendfsync'),
      ];
      if (appendonly !== 'yes' || appendfsync !== 'always')
        throw new RedisDurabilityError(
          'CDP_REDIS_DURABILITY=appendfsync-always needs the server to run with appendonly yes and ' +
            `appendfsync always; it reports appendonly=${appendonly ?? '(CONFIG not allowed)'}, ` +
            `appendfsync=${appendfsync ?? '(CONFIG not allowed)'}. ` +
            'Set them in redis.conf (the local stack does when this mode is chosen), or use waitaof on Redis 7.2+.',
        );
      log.info({ mode: opts.durability }, 'redis_durability');
      return none;
    }
    default: {
      const never: never = opts.durability;
      throw new RedisDurabilityError(`unknown CDP_REDIS_DURABILITY ${String(never)}`);
    }
  }
}

/**
 * On a Redis Cluster a batch's writes go to several masters over several connections, so a
 * WAITAOF on one connection proves nothing: refused. appendfsync-always is checked on every
 * master (a replica promoted later must have it too: set it in every node's redis.conf).
 */
async function clusterDurability(
  redis: Redis,
  mode: 'waitaof' | 'appendfsync-always',
  log: Logger,
): Promise<DurabilityBarrier> {
  if (mode === 'waitaof')
    throw new RedisDurabilityError(
      'CDP_REDIS_DURABILITY=waitaof is not supported on a Redis Cluster (a batch writes to several masters); ' +
        'use appendfsync-always with `appendonly yes` and `appendfsync always` on every node',
    );
  const masters = (redis as unknown as { nodes(role: 'master'): Redis[] }).nodes('master');
  if (masters.length === 0) throw new RedisDurabilityError('Redis Cluster: no master known yet', true);
  for (const node of masters) {
    const [appendonly, appendfsync] = [
      await configValue(node, 'appendonly'),
      await configValue(node, 'appendfsync'),
    ];
    if (appendonly !== 'yes' || appendfsync !== 'always')
      throw new RedisDurabilityError(
        `CDP_REDIS_DURABILITY=appendfsync-always needs appendonly yes and appendfsync always on every cluster node; ` +
          `${node.options.host}:${node.options.port} reports appendonly=${appendonly ?? '(CONFIG not allowed)'}, ` +
          `appendfsync=${appendfsync ?? '(CONFIG not allowed)'}`,
      );
  }
  log.info({ mode, masters: masters.length }, 'redis_durability');
  return none;
}
