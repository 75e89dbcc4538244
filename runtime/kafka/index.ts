import type { KafkaConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { createKafkajsClient } from './kafkajs.ts';
import { createRdkafkaClient } from './rdkafka.ts';
import type { KafkaClient } from './types.ts';

export type * from './types.ts';

export function createKafka(
  cfg: Pick<KafkaConfig, 'brokers' | 'driver' | 'clientId' | 'replication' | 'minInsync'>,
  log: Logger,
): KafkaClient {
  const opts = {
    brokers: cfg.brokers,
    clientId: cfg.clientId,
    log,
    // topics are created with these (or the defaults for the cluster's size), by either driver
    durability: { replication: cfg.replication, minInsync: cfg.minInsync },
  };
  return cfg.driver === 'rdkafka' ? createRdkafkaClient(opts) : createKafkajsClient(opts);
}
