// Imports: a 1,000,000-row traits CSV (100,000 with --quick, which stays under its 2 minutes) (userId, email, two traits; every 100,000th row
// malformed), generated as it is sent and streamed to POST /v1/imports of the query service
// on the benchmark's stack, then read until done. Figures: rows per second from the first
// byte sent to the job done (upload, validation, identify events acknowledged by Kafka with
// acks=all, progress committed per batch), and the upload alone. No processor reads the
// topic: this is the import's own capacity, not the pipeline behind it.
import { startServices } from '../../cli/services.ts';
import { loadConfig } from '../../runtime/config.ts';
import { createKafka } from '../../runtime/kafka/index.ts';
import type { ImportJob } from '../../schemas/import.ts';
import { topics } from '../../schemas/topics.ts';
import { buildRows } from '../report.ts';
import { ensureTopicsWithRetry, type ScenarioContext, type ScenarioResult } from '../scenario.ts';

function csv(tag: string, ROWS: number): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (i >= ROWS) return c.close();
      const lines: string[] = i === 0 ? ['userId,email,plan,score'] : [];
      for (const end = Math.min(ROWS, i + 10_000); i < end; i++)
        lines.push(
          i % 100_000 === 99_999
            ? `${tag}-${i},not an email,pro,1`
            : `${tag}-${i},${tag}-${i}@example.com,${i % 3 === 0 ? 'pro' : 'free'},${i % 100}`,
        );
      c.enqueue(enc.encode(`${lines.join('\n')}\n`));
    },
  });
}

export async function importsScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const ROWS = ctx.settings.mode === 'quick' ? 100_000 : 1_000_000;
  const cfg = loadConfig({
    NODE_ENV: 'development',
    LOG_LEVEL: ctx.log.level as string,
    REDIS_URL: ctx.redisUrl,
    KAFKA_BROKERS: ctx.kafkaBrokers,
    CDP_TOPIC_PREFIX: `bench-${ctx.nonce}-imports`,
    CDP_REDIS_PREFIX: `bench-${ctx.nonce}-imports`,
    CDP_DATA_DIR: `${ctx.dataDir}/imports`,
    CDP_QUERY_HOST: '127.0.0.1',
    CDP_QUERY_PORT: '0',
  });
  const admin = createKafka(cfg.kafka, ctx.log).admin();
  await ensureTopicsWithRetry(admin, [{ topic: topics(cfg.kafka.topicPrefix).events, partitions: 4 }]);
  await admin.disconnect();
  const services = await startServices(cfg, ['query'], ctx.log.child({ bench: 'imports' }));
  const headers = { authorization: `Bearer ${cfg.keys.adminKey}` };
  const rates: number[] = [];
  const uploads: number[] = [];
  try {
    const url = services.urls.query!;
    for (let run = 0; run < ctx.settings.runs; run++) {
      const t0 = performance.now();
      const res = await fetch(`${url}/v1/imports?kind=traits`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'text/csv' },
        body: csv(`${ctx.nonce}-r${run}`, ROWS),
        duplex: 'half',
      } as RequestInit);
      if (res.status !== 202) throw new Error(`POST /v1/imports: ${res.status} ${await res.text()}`);
      const uploadedMs = performance.now() - t0;
      const { id } = (await res.json()) as ImportJob;
      let job: ImportJob;
      const deadline = Date.now() + 15 * 60_000;
      for (;;) {
        job = (await (await fetch(`${url}/v1/imports/${id}`, { headers })).json()) as ImportJob;
        if (job.status !== 'processing') break;
        if (Date.now() > deadline) throw new Error(`import ${id} not done in 15 minutes`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const ms = performance.now() - t0;
      if (job.status !== 'done' || job.rowsRead !== ROWS)
        throw new Error(`import ${id}: ${job.status} after ${job.rowsRead} rows (${job.error ?? ''})`);
      rates.push(ROWS / (ms / 1000));
      uploads.push(uploadedMs);
      ctx.progress(
        `  imports: ${ROWS} rows (${job.bytes} bytes) in ${(ms / 1000).toFixed(1)} s, upload ${uploadedMs.toFixed(0)} ms`,
      );
    }
    return {
      rows: buildRows([
        { scenario: 'imports', figure: 'traits CSV import', unit: 'rows/s', runs: rates },
        { scenario: 'imports', figure: 'upload alone', unit: 'ms', runs: uploads },
      ]),
      measurements: [],
      notes: [
        `imports: ${ROWS.toLocaleString('en')} rows streamed to POST /v1/imports, timed to the job done (identify events acknowledged by Kafka, progress committed); no processor reading`,
      ],
    };
  } finally {
    await services.stop();
  }
}
