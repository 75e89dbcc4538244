// Prometheus metrics of one process (prom-client's registry): what an operator watches on a
// dashboard or alerts on. Every service of the process registers here; `/metrics` serves them
// all, on the metrics listener (CDP_METRICS_PORT, loopback by default) and never on the public
// ingest host. Counters are bumped per batch, not per event, so the hot paths pay next to
// nothing; consumer lag is read from the broker when Prometheus scrapes, not on a timer.
import { createServer, type Server } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Admin, BatchHandler } from './kafka/types.ts';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'cdp_' });

const seconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const metrics = {
  consumed: new Counter({
    name: 'cdp_kafka_consumed_messages_total',
    help: 'Messages handed to a consumer group’s handler, by group and topic',
    labelNames: ['group', 'topic'] as const,
    registers: [registry],
  }),
  batchSeconds: new Histogram({
    name: 'cdp_kafka_batch_seconds',
    help: 'Time a consumer group’s handler took for one batch (its own work, not effects under way)',
    labelNames: ['group'] as const,
    buckets: seconds,
    registers: [registry],
  }),
  batchFailures: new Counter({
    name: 'cdp_kafka_batch_failures_total',
    help: 'Batches whose handler threw (the batch is retried with backoff)',
    labelNames: ['group'] as const,
    registers: [registry],
  }),
  produced: new Counter({
    name: 'cdp_kafka_produced_messages_total',
    help: 'Messages the broker acknowledged, by topic',
    labelNames: ['topic'] as const,
    registers: [registry],
  }),
  produceSeconds: new Histogram({
    name: 'cdp_kafka_produce_seconds',
    help: 'Time from a produce call to the broker’s acknowledgement (acks=all)',
    labelNames: ['topic'] as const,
    buckets: seconds,
    registers: [registry],
  }),
  deadLetters: new Counter({
    name: 'cdp_dead_letters_total',
    help: 'Messages set aside on the dead-letter topic, by the stage that gave up',
    labelNames: ['stage'] as const,
    registers: [registry],
  }),
  sends: new Counter({
    name: 'cdp_activation_sends_total',
    help: 'Send decisions by channel and outcome (sent, suppressed, failed, retried, delayed, skipped_duplicate)',
    labelNames: ['channel', 'outcome'] as const,
    registers: [registry],
  }),
  providerSeconds: new Histogram({
    name: 'cdp_activation_provider_seconds',
    help: 'Time the provider (webhook receiver, SMTP, email/SMS/push API) took for a send',
    labelNames: ['channel'] as const,
    buckets: seconds,
    registers: [registry],
  }),
  deliverySeconds: new Histogram({
    name: 'cdp_activation_delivery_seconds',
    help: 'From the segment change reaching activation to the send (sent only)',
    labelNames: ['channel'] as const,
    buckets: seconds,
    registers: [registry],
  }),
  timersFired: new Counter({
    name: 'cdp_journey_timers_fired_total',
    help: 'Journey timers (waits, date entries, broadcasts) that fired',
    registers: [registry],
  }),
  timerLateness: new Histogram({
    name: 'cdp_journey_timer_lateness_seconds',
    help: 'How long after its due time a journey timer fired',
    buckets: seconds,
    registers: [registry],
  }),
  httpSeconds: new Histogram({
    name: 'cdp_http_request_seconds',
    help: 'HTTP requests by service, route and status class',
    labelNames: ['service', 'route', 'status'] as const,
    buckets: seconds,
    registers: [registry],
  }),
  redisSeconds: new Histogram({
    name: 'cdp_redis_call_seconds',
    help: 'Redis commands by client (the service that sent them), command and result, from the send to the reply (a pipelined command includes its wait in the pipeline)',
    labelNames: ['client', 'command', 'result'] as const,
    buckets: [0.0001, 0.00025, 0.0005, ...seconds],
    registers: [registry],
  }),
  segmentTimersFired: new Counter({
    name: 'cdp_segment_timers_fired_total',
    help: 'Segment re-evaluation timers (a counted event leaving a rule’s window) claimed and handled',
    registers: [registry],
  }),
  segmentTimerLateness: new Histogram({
    name: 'cdp_segment_timer_lateness_seconds',
    help: 'How long after its due time a segment re-evaluation timer was claimed',
    buckets: seconds,
    registers: [registry],
  }),
  clickhouseSeconds: new Histogram({
    name: 'cdp_clickhouse_call_seconds',
    help: 'ClickHouse calls by kind (query, insert, command) and result',
    labelNames: ['kind', 'result'] as const,
    buckets: seconds,
    registers: [registry],
  }),
};

/** Times each request by the route pattern it matched (bounded labels) and its status class. */
export function httpMetrics(service: string): MiddlewareHandler {
  const h = metrics.httpSeconds;
  return async (c, next) => {
    const t0 = performance.now();
    try {
      await next();
    } finally {
      const route = routePath(c, -1) || 'unmatched';
      h.labels(service, route, `${Math.floor(c.res.status / 100)}xx`).observe(
        (performance.now() - t0) / 1000,
      );
    }
  };
}

/** The handler with its batches counted and timed (what it hands on as effects is not timed). */
export function instrumentHandler(group: string, handler: BatchHandler): BatchHandler {
  const consumed = metrics.consumed;
  const timer = metrics.batchSeconds.labels(group);
  const failures = metrics.batchFailures.labels(group);
  return async (batch, ctx) => {
    const end = timer.startTimer();
    try {
      const out = await handler(batch, ctx);
      consumed.labels(group, batch.topic).inc(batch.messages.length);
      return out;
    } catch (err) {
      failures.inc();
      throw err;
    } finally {
      end();
    }
  };
}

// consumer lag per group and partition, read from the broker when scraped
const lagSources = new Map<string, { admin: Admin; topics: string[] }>();
new Gauge({
  name: 'cdp_kafka_consumer_lag',
  help: 'Messages a consumer group has not committed yet, per topic and partition (read at scrape time)',
  labelNames: ['group', 'topic', 'partition'] as const,
  registers: [registry],
  async collect() {
    this.reset();
    await Promise.all(
      [...lagSources].map(async ([group, s]) => {
        if (!s.admin.groupLag) return;
        try {
          for (const p of await s.admin.groupLag(group, s.topics))
            this.labels(group, p.topic, String(p.partition)).set(p.lag);
        } catch {
          // the broker is away: no lag figures this scrape (the gap is the signal)
        }
      }),
    );
  },
});

/** Reports a consumer group's lag on `/metrics` (kafkajs admin; rdkafka has no lag API). */
export function watchLag(group: string, admin: Admin, topics: string[]): () => void {
  lagSources.set(group, { admin, topics });
  return () => {
    if (lagSources.get(group)?.admin === admin) lagSources.delete(group);
  };
}

/** The text Prometheus scrapes. */
export async function metricsText(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/** A listener serving `/metrics` only (loopback unless configured otherwise). */
export async function startMetricsServer(
  host: string,
  port: number,
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metricsText().then(
      (m) => res.writeHead(200, { 'content-type': m.contentType }).end(m.body),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}/metrics`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
