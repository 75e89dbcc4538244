// Composition root of the ingest service.
import type { Clients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { listen, mountHealth } from '../runtime/http.ts';
import type { Logger } from '../runtime/log.ts';
import type { RunningService } from '../runtime/service.ts';
import { WriteKeyStore, watchWriteKeys } from '../runtime/write-keys.ts';
import { topics } from '../schemas/topics.ts';
import { createIngestApp } from './app.ts';
import { RateLimiter } from './rate-limit.ts';

export async function startIngest(cfg: Config, clients: Clients, log: Logger): Promise<RunningService> {
  const kafka = clients.kafka();
  const producer = kafka.producer({ lingerMs: cfg.ingest.lingerMs });
  const admin = kafka.admin();
  const t = topics(cfg.kafka.topicPrefix);
  const writeKeys = watchWriteKeys({
    store: new WriteKeyStore(clients.redis(), cfg.redis.prefix),
    bootstrap: new Map([[cfg.keys.writeKey, cfg.keys.workspace]]),
    log,
  });
  const app = createIngestApp({
    producer,
    eventsTopic: t.events,
    resolveWriteKey: writeKeys.resolve,
    log,
    produceTimeoutMs: cfg.ingest.produceTimeoutMs,
    rateLimiter: new RateLimiter(cfg.ingest.rateLimit, cfg.ingest.rateBurst),
    timeBounds: cfg.ingest.timeBounds,
    traitLimits: cfg.profileLimits,
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
      writeKeys.stop();
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
    },
  };
}
