// Dependencies that go away and come back: services report not-ready, answer 503 instead
// of hanging or lying, and recover by themselves without a restart. This suite runs its
// own Kafka broker and redis-server so it can stop them.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { type LocalKafka, startKafka } from '../../infra/local/kafka.ts';
import { freePort } from '../../infra/local/ports.ts';
import { type LocalRedis, startRedis } from '../../infra/local/redis.ts';
import type { Config } from '../../runtime/config.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';

let dir: string;
let kafka: LocalKafka;
let redis: LocalRedis;
let kafkaPort: number;
let controllerPort: number;
let redisPort: number;
let cfg: Config;
let running: RunningServices;

const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}` });
const track = (body: object) =>
  fetch(`${running.urls.ingest}/v1/identify`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
const ready = async (url: string | undefined) => (await fetch(`${url}/readyz`)).status;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cdp-recovery-'));
  [kafkaPort, controllerPort, redisPort] = await Promise.all([freePort(), freePort(), freePort()]);
  [kafka, redis] = await Promise.all([
    startKafka({ dataDir: dir, port: kafkaPort, controllerPort }),
    startRedis({ dataDir: dir, port: redisPort }),
  ]);
  cfg = testConfig({
    KAFKA_BROKERS: kafka.brokers.join(','),
    REDIS_URL: redis.url,
    CDP_INGEST_PRODUCE_TIMEOUT_MS: '2000',
  });
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
}, 180_000);

afterAll(async () => {
  await running?.stop();
  await Promise.all([kafka?.stop(), redis?.stop()]);
});

describe('recovery', () => {
  it('Redis down: query is not ready, events wait in Kafka; Redis back: both recover', async () => {
    await eventually('query ready', async () => (await ready(running.urls.query)) === 200);
    await redis.stop();
    await eventually('query not ready', async () => (await ready(running.urls.query)) === 503);
    const body = (await (await fetch(`${running.urls.query}/readyz`)).json()) as {
      checks: Record<string, string>;
    };
    expect(body.checks.redis).not.toBe('ok');

    // ingest only needs Kafka: the event is accepted while Redis is down
    const res = await track({ userId: 'during-outage', traits: { plan: 'pro' } });
    expect(res.status).toBe(200);

    redis = await startRedis({ dataDir: dir, port: redisPort });
    await eventually('query ready again', async () => (await ready(running.urls.query)) === 200, 30_000);
    // the processor retried its batch and the profile exists now
    const profile = await eventually(
      'the profile of the event sent during the outage',
      async () => {
        const r = await fetch(`${running.urls.query}/v1/profiles?userId=during-outage`, { headers: admin() });
        return r.status === 200 ? ((await r.json()) as { traits: Record<string, unknown> }) : undefined;
      },
      30_000,
    );
    expect(profile.traits).toEqual({ plan: 'pro' });
  }, 90_000);

  it('Kafka down: ingest answers 503 with Retry-After in bounded time, never 200; Kafka back: 200 again', async () => {
    await eventually('ingest ready', async () => (await ready(running.urls.ingest)) === 200);
    await kafka.stop();
    await eventually('ingest not ready', async () => (await ready(running.urls.ingest)) === 503, 30_000);
    const started = Date.now();
    const res = await track({ userId: 'while-kafka-down' });
    const took = Date.now() - started;
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBeTruthy();
    expect(took).toBeLessThan(10_000);

    kafka = await startKafka({ dataDir: dir, port: kafkaPort, controllerPort });
    await eventually('ingest ready again', async () => (await ready(running.urls.ingest)) === 200, 60_000);
    const ok = await eventually(
      'a 200 from ingest',
      async () => {
        const r = await track({ userId: 'after-kafka-back', traits: { n: 1 } });
        return r.status === 200 ? r : undefined;
      },
      60_000,
      500,
    );
    expect(ok.status).toBe(200);
    const profile = await eventually(
      'the profile of the event sent after Kafka returned',
      async () => {
        const r = await fetch(`${running.urls.query}/v1/profiles?userId=after-kafka-back`, {
          headers: admin(),
        });
        return r.status === 200 ? ((await r.json()) as { traits: Record<string, unknown> }) : undefined;
      },
      60_000,
    );
    expect(profile.traits).toEqual({ n: 1 });
  }, 180_000);
});
