// GET /v1/live/pipeline against real chDB and Kafka: events per second of the workspace,
// stage latency percentiles from the stored times, and the lag of the pipeline's consumer
// groups falling to 0 once a group has consumed and committed.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { createKafka } from '../../runtime/kafka/index.ts';
import type { Admin, Consumer, KafkaClient } from '../../runtime/kafka/types.ts';
import { createLogger } from '../../runtime/log.ts';
import { migrate } from '../../schemas/migrations.ts';
import { topics } from '../../schemas/topics.ts';
import { ledgerRow } from '../../test/fixtures.ts';
import { eventually, uniqueId } from '../../test/harness.ts';
import { createQueryApp } from '../app.ts';
import type { PipelineStats } from '../pipeline-stats.ts';

const ws = uniqueId('ws_');
const prefix = uniqueId('lp');
const NOW = Date.parse('2026-06-01T12:00:30.500Z');
const log = createLogger({ level: 'silent', name: 'test' });
let ch: ClickHouseClient;
let kafka: KafkaClient;
let admin: Admin;
let consumer: Consumer | undefined;
let app: ReturnType<typeof createQueryApp>;
const chTime = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
const stats = async () => {
  const res = await app.request('/v1/live/pipeline', { headers: { authorization: 'Bearer admin-1' } });
  expect(res.status).toBe(200);
  return (await res.json()) as PipelineStats;
};

beforeAll(async () => {
  ch = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-live-pipeline-')) });
  await migrate(ch);
  kafka = createKafka(
    { brokers: inject('kafkaBrokers').split(','), driver: 'kafkajs', clientId: 'test' },
    log,
  );
  admin = kafka.admin();
  const t = topics(prefix);
  await admin.ensureTopics(Object.values(t).map((topic) => ({ topic, partitions: 2 })));
  const producer = kafka.producer();
  await producer.connect();
  await producer.send(
    t.events,
    Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: JSON.stringify({ i }) })),
  );
  await producer.disconnect();
  app = createQueryApp({
    redis: {} as never,
    clickhouse: ch,
    defs: {} as never,
    writeKeys: {} as never,
    redisPrefix: 'unused',
    resolveAdminKey: (k) => (k === 'admin-1' ? ws : undefined),
    unsubscribeSecret: 'unused-in-this-suite',
    log,
    now: () => new Date(NOW),
    kafkaAdmin: admin,
    topicPrefix: prefix,
  });
  // 3 events in the second before now, 1 twenty seconds ago, 1 in the latency window only,
  // 1 too old for both, 1 of another workspace; then a replay of b (a sink crash) apart
  const ev = (id: string, receivedMs: number, insertedMs: number, workspace = ws) => ({
    workspace_id: workspace,
    message_id: id,
    type: 'track',
    event: 'E',
    timestamp: chTime(receivedMs),
    received_at: chTime(receivedMs),
    inserted_at: chTime(insertedMs),
    properties: '{}',
    traits: '{}',
    context: '{}',
    integrations: '{}',
  });
  const sec = Math.floor(NOW / 1000) * 1000;
  await ch.insert({
    table: 'events',
    format: 'JSONEachRow',
    values: [
      ev('a', sec - 1000, sec - 1000 + 100),
      ev('b', sec - 900, sec - 900 + 200),
      ev('c', sec - 800, sec - 800 + 300),
      ev('d', sec - 20_000, sec - 20_000 + 400),
      ev('e', sec - 200_000, sec - 200_000 + 500),
      ev('old', sec - 400_000, sec - 400_000 + 100),
      ev('x', sec - 1000, sec - 1000 + 100, `${ws}-other`),
    ],
  });
  await ch.insert({ table: 'events', format: 'JSONEachRow', values: [ev('b', sec - 900, sec - 900 + 200)] });
  const sent = (key: string, latency: number, provider: number) =>
    ledgerRow({
      workspace_id: ws,
      at: chTime(NOW - 10_000),
      send_key: key,
      latency_ms: latency,
      provider_ms: provider,
    });
  await ch.insert({
    table: 'activation_ledger',
    format: 'JSONEachRow',
    values: [
      sent('s1', 10, 4),
      sent('s2', 20, 8),
      sent('s3', 30, 12),
      { ...sent('s4', 999, 999), outcome: 'suppressed' },
    ],
  });
});
afterAll(async () => {
  await consumer?.disconnect();
  await admin?.disconnect();
  await ch?.close();
});

describe('GET /v1/live/pipeline', () => {
  it('counts the workspace’s events per second over the last minute, replays once', async () => {
    const s = await stats();
    expect(s.events.perSecond).toHaveLength(60);
    expect(s.events.perSecond.at(-1)!.t).toBe(new Date(Math.floor(NOW / 1000) * 1000).toISOString());
    expect(s.events.perSecond.at(-2)!.count).toBe(3);
    expect(s.events.perSecond.at(-21)!.count).toBe(1);
    expect(s.events.total).toBe(4);
  });

  it('gives latency percentiles of the stages from stored times', async () => {
    const s = await stats();
    const by = Object.fromEntries(s.stages.map((x) => [x.stage, x]));
    expect(by.history).toMatchObject({ count: 5, p50: 300, p99: 500 });
    expect(by.activation).toMatchObject({ count: 3, p50: 20, p99: 30 });
    expect(by.provider).toMatchObject({ count: 3, p50: 8, p99: 12 });
  });

  it('reports consumer lag per group and topic, down to 0 once consumed', async () => {
    // a new group's coordinator may still be loading: Kafka answers for it a moment later
    const before = await eventually('lag of every group', async () => {
      const s = await stats();
      return s.lagError === undefined ? s : undefined;
    });
    const processor = before.lag!.find((l) => l.group === `${prefix}.cdp-processor`)!;
    expect(processor).toMatchObject({ topic: topics(prefix).events, partitions: 2, lag: 5 });
    expect(before.lag!.map((l) => l.group)).toContain(`${prefix}.cdp-activation-ledger`);

    consumer = kafka.consumer({
      groupId: `${prefix}.cdp-processor`,
      topics: [topics(prefix).events],
      fromBeginning: true,
    });
    let seen = 0;
    await consumer.run(async (batch) => {
      seen += batch.messages.length;
    });
    await eventually(
      'the processor group caught up',
      async () => {
        const l = (await stats()).lag!.find((x) => x.group === `${prefix}.cdp-processor`)!;
        return l.lag === 0;
      },
      30_000,
      200,
    );
    expect(seen).toBe(5);
    // the history group has not read anything: still 5 behind
    const after = await stats();
    expect(
      after.lag!.find((l) => l.group === `${prefix}.cdp-history` && l.topic === topics(prefix).events)!.lag,
    ).toBe(5);
  });
});
