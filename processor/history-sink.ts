// The history sink: its own consumer group on cdp.events, inserting into ClickHouse in
// batches bounded by rows and time, never one insert per event. A batch handler resolves
// only after the insert holding its rows succeeded, so offsets are committed after the
// effect; a replay re-inserts rows with the same sorting key, which the table collapses.
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { BatchHandler, OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import { DLQ_HEADERS } from '../schemas/topics.ts';
import { parseEvent } from './parse-event.ts';
import { type HistoryRow, toHistoryRow } from './to-history-row.ts';

export interface HistorySinkDeps {
  clickhouse: ClickHouseClient;
  producer: Producer;
  deadLetterTopic: string;
  log: Logger;
  flushMs: number;
  maxRows: number;
}

interface Pending {
  rows: HistoryRow[];
  done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
  timer?: NodeJS.Timeout;
}

export function createHistorySink(deps: HistorySinkDeps): { handler: BatchHandler; flush(): Promise<void> } {
  let pending: Pending | undefined;
  let inserting: Promise<void> = Promise.resolve();

  const open = (): Pending => {
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    done.catch(() => {});
    const p: Pending = { rows: [], done, resolve, reject };
    p.timer = setTimeout(() => void flushPending(p), deps.flushMs);
    return p;
  };

  const flushPending = (p: Pending): Promise<void> => {
    if (pending === p) pending = undefined;
    if (p.timer) clearTimeout(p.timer);
    p.timer = undefined;
    // inserts run one after another, so under load rows accumulate into bigger inserts
    inserting = inserting.then(async () => {
      if (p.rows.length === 0) return p.resolve();
      try {
        await deps.clickhouse.insert({ table: 'events', values: p.rows, format: 'JSONEachRow' });
        deps.log.debug({ rows: p.rows.length }, 'history_inserted');
        p.resolve();
      } catch (err) {
        deps.log.warn({ rows: p.rows.length, err: (err as Error).message }, 'history_insert_failed');
        p.reject(err);
      }
    });
    return p.done;
  };

  const handler: BatchHandler = async (batch) => {
    const dead: OutgoingMessage[] = [];
    const rows: HistoryRow[] = [];
    for (const m of batch.messages) {
      const p = parseEvent(m);
      if (p.ok) rows.push(toHistoryRow(p.event));
      else
        dead.push({
          key: m.key ?? '',
          value: m.value ?? Buffer.alloc(0),
          headers: {
            [DLQ_HEADERS.reason]: p.reason,
            [DLQ_HEADERS.source]: m.topic,
            [DLQ_HEADERS.partition]: String(m.partition),
            [DLQ_HEADERS.offset]: m.offset,
            [DLQ_HEADERS.stage]: 'history.parse',
          },
        });
    }
    if (dead.length > 0) await deps.producer.send(deps.deadLetterTopic, dead);
    if (rows.length === 0) return;
    pending ??= open();
    const p = pending;
    p.rows.push(...rows);
    const wait = p.done;
    if (p.rows.length >= deps.maxRows) void flushPending(p);
    await wait;
  };

  return {
    handler,
    flush: async () => {
      if (pending) await flushPending(pending).catch(() => {});
      await inserting;
    },
  };
}
