import { Redis } from 'ioredis';
import type { Logger } from './log.ts';

export type { Redis };

/**
 * One Redis client per service. It reconnects forever with capped backoff; commands fail
 * fast while disconnected (so a consumer batch fails and is retried) instead of queueing
 * without bound.
 */
export function createRedis(url: string, log: Logger, name: string): Redis {
  const client = new Redis(url, {
    connectionName: name,
    maxRetriesPerRequest: 2,
    enableAutoPipelining: false,
    connectTimeout: 3000,
    retryStrategy: (times) => Math.min(100 * times, 2000),
    lazyConnect: false,
  });
  let lastState = '';
  client.on('error', (err) => {
    if (lastState === 'error') return;
    lastState = 'error';
    log.warn({ component: 'redis', err: err.message }, 'redis_error');
  });
  client.on('ready', () => {
    if (lastState === 'error') log.info({ component: 'redis' }, 'redis_recovered');
    lastState = 'ready';
  });
  return client;
}

export async function pingRedis(client: Redis): Promise<void> {
  if (client.status !== 'ready') throw new Error(`redis ${client.status}`);
  await client.ping();
}
