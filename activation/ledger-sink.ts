// Writes ledger rows from the activation-ledger topic into ClickHouse in large batches.
// The activation pipeline produces its rows to Kafka (acks=all) as part of each batch, so a
// decision is durable before the change's offset is committed, without a small ClickHouse
// insert per consumer batch ("too many parts", and slow batches). Here, batches of every
// partition wait for one shared flush (every `flushMs` or `maxRows`), and their offsets are
// committed only after it. A failed insert fails the waiting batches, which are redelivered.
//
// The rows are JSON already (the pipeline wrote them): they go to ClickHouse as they came,
// one per line, parsed only by the engine. Only if the engine refuses the payload are they
// read in JS, and the unreadable ones logged and left out, so one bad row cannot hold the
// ledger back.
import { type ClickHouseClient, insertFormatted } from '../runtime/clickhouse.ts';
import type { BatchHandler } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';

const NEWLINE = Buffer.from('\n');

export function createLedgerSink(deps: {
  clickhouse: ClickHouseClient;
  log: Logger;
  flushMs?: number;
  maxRows?: number;
}): { handler: BatchHandler; flush(): Promise<void> } {
  const flushMs = deps.flushMs ?? 1000;
  const maxRows = deps.maxRows ?? 20_000;
  let rows: Buffer[] = [];
  let waiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();

  const insert = (rows: Buffer[]) => {
    const lines: Buffer[] = [];
    for (const row of rows) lines.push(row, NEWLINE);
    return insertFormatted(deps.clickhouse, 'activation_ledger', lines, 'JSONEachRow', {});
  };

  const insertReadable = async (batch: Buffer[]) => {
    try {
      await insert(batch);
    } catch (err) {
      // refused as a whole: keep what reads as a row, leave out (and log) what does not
      const readable = batch.filter((row) => {
        try {
          JSON.parse(row.toString('utf8'));
          return true;
        } catch {
          deps.log.warn({ row: row.toString('utf8').slice(0, 200) }, 'ledger_row_unreadable');
          return false;
        }
      });
      if (readable.length === batch.length) throw err;
      if (readable.length > 0) await insert(readable);
    }
  };

  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = rows;
    const waiting = waiters;
    rows = [];
    waiters = [];
    chain = chain.then(async () => {
      try {
        if (batch.length > 0) await insertReadable(batch);
        for (const w of waiting) w.resolve();
      } catch (err) {
        deps.log.warn({ rows: batch.length, err: (err as Error).message }, 'ledger_insert_failed');
        for (const w of waiting) w.reject(err);
      }
    });
    return chain;
  };

  const handler: BatchHandler = async (batch) => {
    for (const m of batch.messages) if (m.value && m.value.length > 0) rows.push(m.value);
    const done = new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
    if (rows.length >= maxRows) void flush();
    else timer ??= setTimeout(() => void flush(), flushMs);
    await done;
  };
  return { handler, flush };
}
