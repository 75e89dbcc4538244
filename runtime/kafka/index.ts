import type { KafkaConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { metrics } from '../metrics.ts';
import { createKafkajsClient } from './kafkajs.ts';
import { createRdkafkaClient } from './rdkafka.ts';
import type { KafkaClient, Producer } from './types.ts';

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
  const client = cfg.driver === 'rdkafka' ? createRdkafkaClient(opts) : createKafkajsClient(opts);
  return {
    driver: client.driver,
    producer: (o) => countedProducer(client.producer(o)),
    consumer: (o) => client.consumer(o),
    admin: () => client.admin(),
  };
}

/** The producer with what the broker acknowledged counted and timed per topic (runtime/metrics.ts). */
function countedProducer(p: Producer): Producer {
  const sendBatch = p.sendBatch?.bind(p);
  return {
    connect: () => p.connect(),
    disconnect: () => p.disconnect(),
    async send(topic, messages) {
      const end = metrics.produceSeconds.labels(topic).startTimer();
      await p.send(topic, messages);
      end();
      metrics.produced.labels(topic).inc(messages.length);
    },
    ...(sendBatch
      ? {
          async sendBatch(batches) {
            const t0 = performance.now();
            await sendBatch(batches);
            const s = (performance.now() - t0) / 1000;
            for (const b of batches) {
              metrics.produceSeconds.labels(b.topic).observe(s);
              metrics.produced.labels(b.topic).inc(b.messages.length);
            }
          },
        }
      : {}),
  };
}
