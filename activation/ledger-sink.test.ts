// The ledger sink against chDB and Kafka: rows go in as they came from Kafka; a row that
// is unreadable, or that ClickHouse refuses, goes to the dead-letter topic with the reason
// without holding back the rows around it; a failure of the moment ("too many parts")
// dead-letters nothing: the batch fails and goes in when retried.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClickHouseClient, createClickHouse } from '../runtime/clickhouse.ts';
import type { Config } from '../runtime/config.ts';
import { type Batch, createKafka, type Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import { migrate } from '../schemas/migrations.ts';
import { DLQ_HEADERS, topics } from '../schemas/topics.ts';
import { ledgerRow } from '../test/fixtures.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../test/harness.ts';
import { createLedgerSink } from './ledger-sink.ts';

let ch: ClickHouseClient;
let cfg: Config;
let producer: Producer;
let deadLetterTopic: string;
let dead: { seen: Array<{ headers: Record<string, string>; value: string }>; stop(): Promise<void> };

beforeAll(async () => {
  ch = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-ledger-')) });
  await migrate(ch);
  cfg = testConfig();
  const kafka = createKafka(cfg.kafka, testLogger(cfg));
  deadLetterTopic = topics(cfg.kafka.topicPrefix).deadLetter;
  const admin = kafka.admin();
  await admin.ensureTopics([{ topic: deadLetterTopic, partitions: 1 }]);
  await admin.disconnect();
  producer = kafka.producer();
  const seen: Array<{ headers: Record<string, string>; value: string }> = [];
  const reader = kafka.consumer({
    groupId: `${cfg.kafka.topicPrefix}.dlq-reader`,
    topics: [deadLetterTopic],
  });
  await reader.run(async (b) => {
    for (const m of b.messages) seen.push({ headers: m.headers, value: m.value?.toString() ?? '' });
  });
  dead = { seen, stop: () => reader.disconnect() };
});

afterAll(async () => {
  await dead?.stop();
  await producer?.disconnect();
  await ch?.close();
});

const sinkFor = (flushMs = 20) =>
  createLedgerSink({
    clickhouse: ch,
    log: createLogger({ level: 'silent', name: 't' }),
    producer,
    deadLetterTopic,
    flushMs,
  });

const row = (ws: string, i: number) =>
  ledgerRow({
    workspace_id: ws,
    at: 1_790_000_000_000 + i,
    send_key: `key-${i}`,
    campaign_id: 'c1',
    segment_id: 's1',
    segment_version: 2,
    profile_id: `p${i}`,
    provider_ms: 3,
  });

const batch = (values: Array<string | Buffer>): Batch => ({
  topic: 'ledger',
  partition: 0,
  messages: values.map((v, i) => ({
    topic: 'ledger',
    partition: 0,
    offset: String(i),
    key: null,
    value: Buffer.isBuffer(v) ? v : Buffer.from(v),
    headers: {},
    timestamp: 0,
  })),
});

const ctx = { heartbeat: async () => {}, isActive: () => true };

async function stored(ws: string) {
  const rs = await ch.query({
    query:
      'SELECT send_key, profile_id, status_code FROM activation_ledger WHERE workspace_id = {ws:String} ORDER BY send_key',
    query_params: { ws },
    format: 'JSONEachRow',
  });
  return rs.json<{ send_key: string; profile_id: string; status_code: number }>();
}

describe('ledger sink', () => {
  it('stores the rows of concurrent batches in one flush, fields intact', async () => {
    const ws = uniqueId('ws_');
    const sink = sinkFor();
    await Promise.all([
      sink.handler(batch([0, 1, 2].map((i) => JSON.stringify(row(ws, i)))), ctx),
      sink.handler(batch([3, 4].map((i) => JSON.stringify(row(ws, i)))), ctx),
    ]);
    const got = await stored(ws);
    expect(got.map((r) => r.send_key)).toEqual(['key-0', 'key-1', 'key-2', 'key-3', 'key-4']);
    expect(got[3]).toEqual({ send_key: 'key-3', profile_id: 'p3', status_code: 200 });
  });

  it('dead-letters the rows it cannot store, with the reason, and keeps the others', async () => {
    const ws = uniqueId('ws_');
    const sink = sinkFor();
    const before = dead.seen.length;
    await sink.handler(
      batch([
        JSON.stringify(row(ws, 0)),
        '{"workspace_id": "broken',
        Buffer.from([0xff, 0xfe]),
        // reads as JSON, but ClickHouse refuses it: an unsigned column given a negative number
        JSON.stringify({ ...row(ws, 9), send_key: 'key-negative', attempt: -5 }),
        JSON.stringify(row(ws, 1)),
      ]),
      ctx,
    );
    expect((await stored(ws)).map((r) => r.send_key)).toEqual(['key-0', 'key-1']);
    await eventually('three dead letters', () => dead.seen.length - before >= 3);
    const letters = dead.seen.slice(before);
    expect(letters.map((d) => d.headers[DLQ_HEADERS.stage]).sort()).toEqual([
      'ledger.insert',
      'ledger.row',
      'ledger.row',
    ]);
    const refused = letters.find((d) => d.headers[DLQ_HEADERS.stage] === 'ledger.insert')!;
    expect(JSON.parse(refused.value).send_key).toBe('key-negative');
    expect(refused.headers[DLQ_HEADERS.reason]).toMatch(/^ClickHouse refused it: .*attempt/);
    expect(sink.stats.deadLettered).toBe(3);
  });

  it('retries a flush that fails for the moment ("too many parts") and dead-letters nothing', async () => {
    const ws = uniqueId('ws_');
    const sink = sinkFor();
    const before = dead.seen.length;
    // a part in the month the rows go to, then a real TOO_MANY_PARTS (code 252) from the engine
    await sink.handler(batch([JSON.stringify(row(ws, 0))]), ctx);
    await ch.command({ query: 'SYSTEM STOP MERGES activation_ledger' });
    await ch.command({
      query:
        'ALTER TABLE activation_ledger MODIFY SETTING parts_to_throw_insert = 1, parts_to_delay_insert = 0',
    });
    const throttled = batch([1, 2, 3].map((i) => JSON.stringify(row(ws, i))));
    try {
      // the consumer retries a failed batch: here, twice by hand
      for (let attempt = 0; attempt < 2; attempt++)
        await expect(sink.handler(throttled, ctx)).rejects.toThrow(/Too many parts/);
    } finally {
      await ch.command({
        query: 'ALTER TABLE activation_ledger RESET SETTING parts_to_throw_insert, parts_to_delay_insert',
      });
      await ch.command({ query: 'SYSTEM START MERGES activation_ledger' });
    }
    await sink.handler(throttled, ctx);
    expect((await stored(ws)).map((r) => r.send_key)).toEqual(['key-0', 'key-1', 'key-2', 'key-3']);
    expect(sink.stats).toEqual({ deadLettered: 0, failures: 2 });
    // a dead letter would have been produced before the failure: none came
    await new Promise((r) => setTimeout(r, 500));
    expect(dead.seen.length).toBe(before);
  });
});
