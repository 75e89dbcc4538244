// Writes ledger rows from the activation-ledger topic into ClickHouse in large batches.
// The activation pipeline produces its rows to Kafka (acks=all) as part of each batch, so a
// decision is durable before the change's offset is committed, without a small ClickHouse
// insert per consumer batch ("too many parts", and slow batches). Here, batches of every
// partition wait for one shared flush (every `flushMs` or `maxRows`), and their offsets are
// committed only after it. A failed insert fails the waiting batches, which are redelivered.
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { BatchHandler } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import type { LedgerRow } from './pipeline.ts';

export function createLedgerSink(deps: {
  clickhouse: ClickHouseClient;
  log: Logger;
  flushMs?: number;
  maxRows?: number;
}): { handler: BatchHandler; flush(): Promise<void> } {
  const flushMs = deps.flushMs ?? 250;
  const maxRows = deps.maxRows ?? 20_000;
  let rows: LedgerRow[] = [];
  let waiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();

  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = rows;
    const waiting = waiters;
    rows = [];
    waiters = [];
    chain = chain.then(async () => {
      try {
        if (batch.length > 0)
          await deps.clickhouse.insert({ table: 'activation_ledger', values: batch, format: 'JSONEachRow' });
        for (const w of waiting) w.resolve();
      } catch (err) {
        deps.log.warn({ rows: batch.length, err: (err as Error).message }, 'ledger_insert_failed');
        for (const w of waiting) w.reject(err);
      }
    });
    return chain;
  };

  const handler: BatchHandler = async (batch) => {
    for (const m of batch.messages) {
      if (!m.value) continue;
      try {
        rows.push(JSON.parse(m.value.toString('utf8')) as LedgerRow);
      } catch {
        deps.log.warn({ offset: m.offset, partition: m.partition }, 'ledger_row_unreadable');
      }
    }
    const done = new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
    if (rows.length >= maxRows) void flush();
    else timer ??= setTimeout(() => void flush(), flushMs);
    await done;
  };
  return { handler, flush };
}
