// The history sink alone in a process of its own (chDB: one data directory per process), for
// tests that kill it mid-stream. Configured by the environment like a service; answers
// requests over the IPC channel:
//   {cmd: 'stats'}  → the sink's insert counters
//   {cmd: 'counts', workspaceId} → rows, distinct message ids and the deduplicated count in ClickHouse
//   {cmd: 'stop'}   → stops cleanly (drain, flush, close) and exits
// SINK_CRASH_AFTER_ROWS=n: the process SIGKILLs itself right after the insert that brings it
// to n rows, before the batches' effects resolve: the rows are in ClickHouse, their offsets
// are not committed (the worst moment to crash: everything since the last commit is replayed).
import { createHistorySink } from '../../processor/history-sink.ts';
import { topicSpecs } from '../../processor/main.ts';
import { createClickHouse } from '../../runtime/clickhouse.ts';
import { loadConfig } from '../../runtime/config.ts';
import { superviseConsumer } from '../../runtime/consume.ts';
import { createKafka } from '../../runtime/kafka/index.ts';
import { createLogger } from '../../runtime/log.ts';
import { migrate } from '../../schemas/migrations.ts';
import { topics } from '../../schemas/topics.ts';

// a test runner that dies or times out must not leave this process behind
process.on('disconnect', () => process.exit(1));
const cfg = loadConfig(process.env);
const log = createLogger({ level: cfg.logLevel, name: 'sink-child' });
const clickhouse = await createClickHouse(cfg.clickhouse);
await migrate(clickhouse);
const countRows = async (ws: string | undefined) => {
  const rs = await clickhouse.query({
    query: `SELECT count() AS rows, uniqExact(message_id) AS distinct_ids,
              (SELECT count() FROM (SELECT message_id FROM events WHERE workspace_id = {ws:String}
                LIMIT 1 BY message_id)) AS deduped
            FROM events WHERE workspace_id = {ws:String}`,
    query_params: { ws },
    format: 'JSONEachRow',
  });
  const [r] = await rs.json<{ rows: string; distinct_ids: string; deduped: string }>();
  return { rows: Number(r!.rows), distinct: Number(r!.distinct_ids), deduped: Number(r!.deduped) };
};
const initial = await countRows(cfg.keys.workspace);
const crashAfter = Number(process.env.SINK_CRASH_AFTER_ROWS ?? 0);
let insertedRows = 0;
const onInserted = (table: string, rows: number) => {
  if (table === 'events') insertedRows += rows;
  // synchronously, before the handlers waiting on this insert resolve and commit
  if (crashAfter > 0 && insertedRows >= crashAfter) process.kill(process.pid, 'SIGKILL');
};
const kafka = createKafka(cfg.kafka, log);
const producer = kafka.producer();
const admin = kafka.admin();
const t = topics(cfg.kafka.topicPrefix);
const sink = createHistorySink({ clickhouse, producer, topics: t, log, ...cfg.history, onInserted });
const consumer = superviseConsumer({
  kafka,
  admin,
  topics: topicSpecs(cfg),
  consumer: {
    groupId: `${cfg.kafka.topicPrefix}.cdp-history`,
    topics: [t.events, t.identity],
    maxBatchSize: 10_000,
    concurrency: cfg.kafka.partitions,
    maxBytesPerPartition: 8 * 1024 * 1024,
  },
  handler: sink.handler,
  log,
});
const startedAt = Date.now();

process.on('message', async (m: { cmd: string; id: number; workspaceId?: string }) => {
  const reply = (body: object) => process.send?.({ id: m.id, ...body });
  if (m.cmd === 'stats') return reply({ stats: sink.stats, uptimeMs: Date.now() - startedAt });
  if (m.cmd === 'counts') return reply(await countRows(m.workspaceId));
  if (m.cmd === 'stop') {
    await Promise.all([consumer.stop(), sink.flush()]);
    await sink.flush();
    await producer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
    await clickhouse.close();
    reply({ stopped: true });
    process.exit(0);
  }
});
await consumer.started;
process.send?.({ ready: true, initial });
