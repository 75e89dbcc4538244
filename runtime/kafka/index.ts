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
  // each topic's series looked up once, not per call (ingest sends once per request)
  const series = new Map<
    string,
    { seconds: { observe(v: number): void }; count: { inc(n: number): void } }
  >();
  const of = (topic: string) => {
    let s = series.get(topic);
    if (!s) {
      s = { seconds: metrics.produceSeconds.labels(topic), count: metrics.produced.labels(topic) };
      series.set(topic, s);
    }
    return s;
  };
  return {
    connect: () => p.connect(),
    disconnect: () => p.disconnect(),
    async send(topic, messages) {
      const t0 = performance.now();
      await p.send(topic, messages);
      const s = of(topic);
      s.seconds.observe((performance.now() - t0) / 1000);
      s.count.inc(messages.length);
    },
    ...(sendBatch
      ? {
          async sendBatch(batches) {
            const t0 = performance.now();
            await sendBatch(batches);
            const seconds = (performance.now() - t0) / 1000;
            for (const b of batches) {
              const s = of(b.topic);
              s.seconds.observe(seconds);
              s.count.inc(b.messages.length);
            }
          },
        }
      : {}),
  };
}
