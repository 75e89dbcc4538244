// A large traits import, generated in the test and streamed up (never a string of the whole
// file): its progress is seen mid-way, every row lands on Kafka once, and the throughput is
// printed. 200,000 rows by default (CDP_IMPORT_TEST_ROWS=1000000 for the full million). Its own topic
// prefix, which no processor reads: this measures the import, not the pipeline behind it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueryApp } from '../../query/app.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createKafka, type Producer } from '../../runtime/kafka/index.ts';
import { WriteKeyStore } from '../../runtime/write-keys.ts';
import type { ImportJob } from '../../schemas/import.ts';
import { migrate } from '../../schemas/migrations.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

// 1,000,000 took 166 s on the loaded 2-core CI box: the suite runs 200,000, the bench 1,000,000
const ROWS = Number(process.env.CDP_IMPORT_TEST_ROWS ?? 200_000);

let cfg: Config;
let redis: Redis;
let ch: ClickHouseClient;
let producer: Producer;
let app: ReturnType<typeof createQueryApp>;

beforeAll(async () => {
  cfg = testConfig();
  redis = new Redis(cfg.redis.url);
  ch = await createClickHouse(cfg.clickhouse);
  await migrate(ch);
  const kafka = createKafka(cfg.kafka, testLogger(cfg));
  const admin = kafka.admin();
  await admin.ensureTopics([{ topic: topics(cfg.kafka.topicPrefix).events, partitions: 4 }]);
  await admin.disconnect();
  producer = kafka.producer();
  await producer.connect();
  app = createQueryApp({
    redis: redis as never,
    clickhouse: ch,
    defs: new DefinitionStore(redis as never, cfg.redis.prefix),
    writeKeys: new WriteKeyStore(redis as never, cfg.redis.prefix),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k) => (k === 'admin-1' ? cfg.keys.workspace : undefined),
    unsubscribeSecret: 'unsubscribe-secret-for-tests-0123456789',
    log: testLogger(cfg),
    producer,
    topicPrefix: cfg.kafka.topicPrefix,
    imports: { dir: mkdtempSync(join(tmpdir(), 'cdp-imports-big-')), maxBytes: 1024 ** 3, batchRows: 5000 },
  });
}, 60_000);

afterAll(async () => {
  await producer?.disconnect();
  redis?.disconnect();
});

/** The file, made as it is read: a header and ROWS rows, every 100,000th malformed. */
function generated(u: string): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (i >= ROWS) return c.close();
      const lines: string[] = i === 0 ? ['userId,email,plan,score'] : [];
      for (const end = Math.min(ROWS, i + 10_000); i < end; i++)
        lines.push(
          i % 100_000 === 99_999
            ? `${u}-${i},not an email,pro,1`
            : `${u}-${i},${u}-${i}@example.com,${i % 3 === 0 ? 'pro' : 'free'},${i % 100}`,
        );
      c.enqueue(enc.encode(`${lines.join('\n')}\n`));
    },
  });
}

describe(`a ${ROWS.toLocaleString('en')}-row CSV import`, () => {
  it('streams up, shows progress mid-way, puts every valid row on Kafka once', async () => {
    const t0 = Date.now();
    const res = await app.request(
      new Request('http://local/v1/imports?kind=traits', {
        method: 'POST',
        headers: { authorization: 'Bearer admin-1', 'content-type': 'text/csv' },
        body: generated(uniqueId('big')),
        duplex: 'half',
      } as RequestInit),
    );
    expect(res.status, await res.clone().text()).toBe(202);
    const job = (await res.json()) as ImportJob;
    const uploadedMs = Date.now() - t0;
    const status = async () =>
      (await (
        await app.request(`/v1/imports/${job.id}`, { headers: { authorization: 'Bearer admin-1' } })
      ).json()) as ImportJob;
    // mid-way: some rows done, not all
    const mid = await eventually(
      'progress mid-way',
      async () => {
        const v = await status();
        return v.rowsRead > 0 && v.rowsRead < ROWS && v;
      },
      120_000,
      100,
    );
    expect(mid.status).toBe('processing');
    const done = await eventually(
      'the import done',
      async () => {
        const v = await status();
        return v.status !== 'processing' && v;
      },
      600_000,
      500,
    );
    const totalMs = Date.now() - t0;
    const bad = Math.floor((ROWS + 1) / 100_000);
    expect(done).toMatchObject({
      status: 'done',
      rowsRead: ROWS,
      rowsRejected: bad,
      rowsAccepted: ROWS - bad,
    });
    // every accepted row on Kafka
    const admin = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets(topics(cfg.kafka.topicPrefix).events);
    await admin.disconnect();
    expect(offsets.reduce((n, o) => n + Number(o.high), 0)).toBe(ROWS - bad);
    const errors = (await (
      await app.request(`/v1/imports/${job.id}/errors`, { headers: { authorization: 'Bearer admin-1' } })
    ).json()) as { items: Array<{ line: number }> };
    expect(errors.items[0]).toEqual({ line: 100_001, reason: 'email: not an email address' });
    console.log(
      `import of ${ROWS} rows (${done.bytes} bytes): upload ${uploadedMs} ms, all done in ${totalMs} ms, ` +
        `${Math.round(ROWS / (totalMs / 1000))} rows/s; progress seen at ${mid.rowsRead} rows`,
    );
  }, 900_000);
});
