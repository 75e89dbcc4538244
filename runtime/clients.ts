// Builds the clients a process needs, once, from its configuration. A process that runs
// several services shares them (chDB allows one engine per process).

import { type ClickHouseClient, createClickHouse } from './clickhouse.ts';
import type { Config } from './config.ts';
import { createKafka, type KafkaClient } from './kafka/index.ts';
import type { Logger } from './log.ts';
import { createRedis, type Redis } from './redis.ts';

export interface Clients {
  kafka(): KafkaClient;
  redis(): Redis;
  clickhouse(): Promise<ClickHouseClient>;
  close(): Promise<void>;
}

export function createClients(cfg: Config, log: Logger): Clients {
  let kafka: KafkaClient | undefined;
  let redis: Redis | undefined;
  let clickhouse: Promise<ClickHouseClient> | undefined;
  return {
    kafka: () => (kafka ??= createKafka(cfg.kafka, log)),
    redis: () => (redis ??= createRedis(cfg.redis.url, log, 'cdp')),
    clickhouse: () => (clickhouse ??= createClickHouse(cfg.clickhouse)),
    async close() {
      redis?.disconnect();
      if (clickhouse) await (await clickhouse).close();
    },
  };
}
