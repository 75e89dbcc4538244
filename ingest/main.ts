// Composition root of the ingest service.
import type { Clients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { listen, mountHealth } from '../runtime/http.ts';
import type { Logger } from '../runtime/log.ts';
import type { RunningService } from '../runtime/service.ts';
import { topics } from '../schemas/topics.ts';
import { createIngestApp } from './app.ts';

export async function startIngest(cfg: Config, clients: Clients, log: Logger): Promise<RunningService> {
  const kafka = clients.kafka();
  const producer = kafka.producer({ lingerMs: 2 });
  const admin = kafka.admin();
  const t = topics(cfg.kafka.topicPrefix);
  // Foundation: one workspace with the configured write key. Key management is its own feature.
  const writeKeys = new Map([[cfg.keys.writeKey, cfg.keys.workspace]]);
  const app = createIngestApp({
    producer,
    eventsTopic: t.events,
    resolveWriteKey: (k) => writeKeys.get(k),
    log,
    produceTimeoutMs: cfg.ingest.produceTimeoutMs,
  });
  mountHealth(app, { kafka: () => admin.ping() });
  const server = await listen(app, cfg.ingest.host, cfg.ingest.port);
  // connect eagerly so the first request does not pay for it; failures are retried on send
  producer.connect().catch((err) => log.warn({ err: err.message }, 'producer_connect_failed'));
  const url = `http://${cfg.ingest.host}:${server.port}`;
  log.info({ url }, 'ingest_listening');
  return {
    name: 'ingest',
    url,
    async stop() {
      await server.close(); // stop accepting; in-flight requests finish their produce
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
    },
  };
}
