// Writes ledger rows from the activation-ledger topic into ClickHouse in large batches.
// The activation pipeline produces its rows to Kafka (acks=all) as part of each batch, so a
// decision is durable before the change's offset is committed, without a small ClickHouse
// insert per consumer batch ("too many parts", and slow batches). Here, batches of every
// partition wait for one shared flush (every `flushMs` or `maxRows`), and their offsets are
// committed only after it. A failed insert fails the waiting batches, which are redelivered.
//
// The rows are JSON already (the pipeline wrote them): they go to ClickHouse as they came,
// one per line, parsed only by the engine. Only if the engine refuses the payload for what
// it holds (a parse or type error: runtime/clickhouse-errors.ts) are they looked at: rows
// that are not JSON objects go to the dead-letter topic (`ledger.row`), and what ClickHouse
// still refuses is isolated by bisection and dead-lettered with its reason (`ledger.insert`),
// so one bad row cannot hold the ledger back. Any other failure (too many parts, memory,
// timeouts, ClickHouse down) fails the waiting batches, which the consumer retries after a
// backoff: nothing is set aside for a failure of the moment.

import { type ClickHouseClient, insertFormatted } from '../runtime/clickhouse.ts';
import { clickHouseErrorCode, isBadDataError } from '../runtime/clickhouse-errors.ts';
import { errorMessage } from '../runtime/errors.ts';
import { deadLetterOf } from '../runtime/kafka/dead-letter.ts';
import type { BatchHandler, IncomingMessage, OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { sendOrDeadLetter } from '../runtime/kafka/send-bounded.ts';
import type { Logger } from '../runtime/log.ts';
import { DLQ_HEADERS } from '../schemas/topics.ts';

const NEWLINE = Buffer.from('\n');

export interface LedgerSinkStats {
  deadLettered: number;
  /** Flushes that failed for the moment (their batches are retried by the consumer). */
  failures: number;
}

export function createLedgerSink(deps: {
  clickhouse: ClickHouseClient;
  log: Logger;
  /** Where rows ClickHouse truly refuses go, with the reason. */
  producer: Producer;
  deadLetterTopic: string;
  /** The ClickHouse table (activation_ledger; journey_steps for the journey ledger). */
  table?: string;
  flushMs?: number;
  maxRows?: number;
}): { handler: BatchHandler; flush(): Promise<void>; stats: LedgerSinkStats } {
  const flushMs = deps.flushMs ?? 1000;
  const maxRows = deps.maxRows ?? 20_000;
  const stats: LedgerSinkStats = { deadLettered: 0, failures: 0 };
  let rows: IncomingMessage[] = [];
  let waiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();

  const insert = (rows: IncomingMessage[]) => {
    const lines: Buffer[] = [];
    for (const row of rows) lines.push(row.value!, NEWLINE);
    return insertFormatted(deps.clickhouse, deps.table ?? 'activation_ledger', lines, 'JSONEachRow', {});
  };

  /** Inserts; answers ClickHouse's error when it refused the rows for what they hold, throws otherwise. */
  const tryInsert = async (batch: IncomingMessage[]): Promise<Error | undefined> => {
    try {
      await insert(batch);
      return undefined;
    } catch (err) {
      if (!isBadDataError(err)) throw err;
      return err as Error;
    }
  };

  const deadLetter = deadLetterOf;
  const sendDead = async (dead: OutgoingMessage[]) => {
    if (dead.length === 0) return;
    // in requests the broker takes (a batch of bad rows can be many MB)
    await sendOrDeadLetter(deps.producer, deps.deadLetterTopic, dead, {
      deadLetterTopic: deps.deadLetterTopic,
      stage: 'ledger.dead-letter',
      log: deps.log,
    });
    stats.deadLettered += dead.length;
    deps.log.warn(
      { count: dead.length, reason: dead[0]?.headers?.[DLQ_HEADERS.reason] },
      'ledger_rows_dead_lettered',
    );
  };

  /** Bisects a refused batch down to the rows ClickHouse will not store, and dead-letters those. */
  const isolate = async (batch: IncomingMessage[]): Promise<void> => {
    if (batch.length === 0) return;
    const refused = await tryInsert(batch);
    if (!refused) return;
    if (batch.length > 1) {
      const mid = batch.length >> 1;
      await isolate(batch.slice(0, mid));
      await isolate(batch.slice(mid));
      return;
    }
    const reason = `ClickHouse refused it: ${errorMessage(refused).slice(0, 300)}`;
    await sendDead([deadLetter(batch[0]!, reason, 'ledger.insert')]);
  };

  const insertChecked = async (batch: IncomingMessage[]) => {
    if (!(await tryInsert(batch))) return;
    // refused for what it holds: what does not read as a row first, then bisection
    const readable: IncomingMessage[] = [];
    const dead: OutgoingMessage[] = [];
    for (const m of batch) {
      if (isJsonObject(m.value!)) readable.push(m);
      else dead.push(deadLetter(m, 'unreadable ledger row: not a JSON object', 'ledger.row'));
    }
    await sendDead(dead);
    await isolate(readable);
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
        if (batch.length > 0) await insertChecked(batch);
        for (const w of waiting) w.resolve();
      } catch (err) {
        stats.failures++;
        deps.log.warn(
          { rows: batch.length, code: clickHouseErrorCode(err), err: errorMessage(err) },
          'ledger_insert_failed',
        );
        for (const w of waiting) w.reject(err);
      }
    });
    return chain;
  };

  const handler: BatchHandler = async (batch) => {
    for (const m of batch.messages) if (m.value && m.value.length > 0) rows.push(m);
    const done = new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
    if (rows.length >= maxRows) void flush();
    else timer ??= setTimeout(() => void flush(), flushMs);
    await done;
  };
  return { handler, flush, stats };
}

function isJsonObject(value: Buffer): boolean {
  try {
    const v: unknown = JSON.parse(value.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}
