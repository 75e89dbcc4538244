// Composition root of the query service.

import { pingClickHouse } from '../runtime/clickhouse.ts';
import type { Clients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { DefinitionStore } from '../runtime/definitions.ts';
import { listen, mountHealth } from '../runtime/http.ts';
import type { Logger } from '../runtime/log.ts';
import { pingRedis } from '../runtime/redis.ts';
import type { RunningService } from '../runtime/service.ts';
import { WriteKeyStore } from '../runtime/write-keys.ts';
import { createQueryApp } from './app.ts';

export async function startQuery(cfg: Config, clients: Clients, log: Logger): Promise<RunningService> {
  const redis = clients.redis();
  const clickhouse = await clients.clickhouse();
  const adminKeys = new Map([[cfg.keys.adminKey, cfg.keys.workspace]]);
  // consumer lag for the console's live view; connects on first use
  const kafkaAdmin = clients.kafka().admin();
  const app = createQueryApp({
    redis,
    clickhouse,
    defs: new DefinitionStore(redis, cfg.redis.prefix),
    writeKeys: new WriteKeyStore(redis, cfg.redis.prefix),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k) => adminKeys.get(k),
    unsubscribeSecret: cfg.unsubscribe.secret,
    log,
    analytics: cfg.analytics,
    kafkaAdmin,
    topicPrefix: cfg.kafka.topicPrefix,
  });
  mountHealth(app as never, { redis: () => pingRedis(redis), clickhouse: () => pingClickHouse(clickhouse) });
  const server = await listen(app as never, cfg.query.host, cfg.query.port);
  const url = `http://${cfg.query.host}:${server.port}`;
  log.info({ url }, 'query_listening');
  return {
    name: 'query',
    url,
    stop: async () => {
      await server.close();
      await kafkaAdmin.disconnect().catch(() => {});
    },
  };
}
