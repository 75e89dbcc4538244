// Prometheus metrics on the real stack: every service of the process (ingest, processor,
// history sink, activation, ledger, query) in one run with CDP_METRICS_PORT; events sent
// through ingest to a webhook campaign show up on /metrics stage by stage (HTTP requests,
// messages produced and consumed per topic and group, send outcomes, provider latency,
// Redis and ClickHouse calls), segment timers firing when an event leaves a window, consumer lag is read per partition, and /metrics is neither on the public
// ingest port nor anywhere but its own listener's one path.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { topics } from '../../schemas/topics.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);
const send = ingestApi(
  () => running.urls.ingest!,
  () => cfg,
);

/** The samples of /metrics: `name{labels}` → value. */
async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(running.metricsUrl!);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** The sum of the samples of `name` whose labels include every `labels` pair. */
function sum(m: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [k, v] of m) {
    const brace = k.indexOf('{');
    if ((brace < 0 ? k : k.slice(0, brace)) !== name) continue;
    if (Object.entries(labels).every(([l, want]) => k.includes(`${l}="${want}"`))) total += v;
  }
  return total;
}

beforeAll(async () => {
  cfg = testConfig({ CDP_METRICS_PORT: '0', CDP_DEFINITIONS_POLL_MS: '50' });
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
}, 120_000);

afterAll(async () => {
  await running?.stop();
  await receiver?.close();
});

describe('/metrics', () => {
  it('counts every stage of events on their way to a webhook send', async () => {
    expect(running.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const t = topics(cfg.kafka.topicPrefix);
    const seg = await api('POST', '/v1/segments', {
      name: uniqueId('m'),
      rule: { '==': [{ var: 'traits.plan' }, 'metrics'] },
    });
    const camp = await api('POST', '/v1/campaigns', {
      name: uniqueId('c'),
      segmentId: seg.body.id,
      on: 'enter',
      channel: 'webhook',
      webhook: { url: receiver.url },
    });
    expect(camp.status).toBe(201);
    await new Promise((r) => setTimeout(r, 600));
    const before = await scrape();
    const n = 5;
    for (let i = 0; i < n; i++)
      await send('/v1/identify', { userId: uniqueId('mu'), traits: { plan: 'metrics' } });
    await eventually('five webhooks', () => receiver.deliveries.length >= n, 30_000);
    const after = await eventually(
      'the sends counted',
      async () => {
        const m = await scrape();
        return sum(m, 'cdp_activation_sends_total', { channel: 'webhook', outcome: 'sent' }) -
          sum(before, 'cdp_activation_sends_total', { channel: 'webhook', outcome: 'sent' }) >=
          n
          ? m
          : undefined;
      },
      10_000,
    );
    const delta = (name: string, labels: Record<string, string> = {}) =>
      sum(after, name, labels) - sum(before, name, labels);
    expect(
      delta('cdp_http_request_seconds_count', { service: 'ingest', route: '/v1/:type', status: '2xx' }),
    ).toBe(n);
    expect(delta('cdp_kafka_produced_messages_total', { topic: t.events })).toBeGreaterThanOrEqual(n);
    expect(
      delta('cdp_kafka_consumed_messages_total', {
        group: `${cfg.kafka.topicPrefix}.cdp-processor`,
        topic: t.events,
      }),
    ).toBeGreaterThanOrEqual(n);
    expect(delta('cdp_kafka_produced_messages_total', { topic: t.segmentChanges })).toBeGreaterThanOrEqual(n);
    expect(delta('cdp_activation_provider_seconds_count', { channel: 'webhook' })).toBeGreaterThanOrEqual(n);
    expect(delta('cdp_activation_delivery_seconds_count', { channel: 'webhook' })).toBeGreaterThanOrEqual(n);
    // each event's apply script at least, timed per command from send to reply
    expect(
      delta('cdp_redis_call_seconds_count', { command: 'evalsha', result: 'ok' }),
    ).toBeGreaterThanOrEqual(n);
    expect(sum(after, 'cdp_redis_call_seconds_bucket', { command: 'evalsha', le: '+Inf' })).toBe(
      sum(after, 'cdp_redis_call_seconds_count', { command: 'evalsha' }),
    );
    expect(sum(after, 'cdp_kafka_batch_seconds_count')).toBeGreaterThan(0);
    expect(sum(after, 'cdp_process_cpu_seconds_total')).toBeGreaterThan(0);
    // the history sink and the ledger write to ClickHouse
    await eventually(
      'ClickHouse inserts timed',
      async () =>
        sum(await scrape(), 'cdp_clickhouse_call_seconds_count', { kind: 'insert', result: 'ok' }) > 0,
      10_000,
    );
  });

  it('counts the segment timers that fire when an event leaves a window, and how late', async () => {
    const event = uniqueId('Windowed');
    const seg = await api('POST', '/v1/segments', {
      name: uniqueId('w'),
      rule: { '>=': [{ event_count: [event, '2s'] }, 1] },
    });
    expect(seg.status, JSON.stringify(seg.body)).toBe(201);
    await new Promise((r) => setTimeout(r, 600));
    const before = await scrape();
    await send('/v1/track', { userId: uniqueId('wu'), event });
    // in the segment at once, out when the event is 2 s old: that exit is the timer's work
    const after = await eventually(
      'the timer fired',
      async () => {
        const m = await scrape();
        return sum(m, 'cdp_segment_timers_fired_total') > sum(before, 'cdp_segment_timers_fired_total')
          ? m
          : undefined;
      },
      20_000,
    );
    expect(sum(after, 'cdp_segment_timer_lateness_seconds_count')).toBeGreaterThan(
      sum(before, 'cdp_segment_timer_lateness_seconds_count'),
    );
    // claimed within seconds of its due time (the worker looks every 200 ms)
    expect(sum(after, 'cdp_segment_timer_lateness_seconds_bucket', { le: '5' })).toBe(
      sum(after, 'cdp_segment_timer_lateness_seconds_count'),
    );
  });

  it('reads consumer lag per group and partition from the broker when scraped', async () => {
    const m = await scrape();
    const processorLag = [...m.keys()].filter(
      (k) =>
        k.startsWith('cdp_kafka_consumer_lag{') &&
        k.includes(`group="${cfg.kafka.topicPrefix}.cdp-processor"`),
    );
    expect(processorLag.length).toBeGreaterThan(0);
    for (const k of processorLag) expect(m.get(k)).toBeGreaterThanOrEqual(0);
  });

  it('is served only on its own listener and path', async () => {
    expect((await fetch(`${running.urls.ingest}/metrics`)).status).toBe(404);
    expect((await fetch(running.metricsUrl!.replace('/metrics', '/'))).status).toBe(404);
    expect((await fetch(running.metricsUrl!, { method: 'POST' })).status).toBe(404);
  });
});
