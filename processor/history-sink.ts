// The history sink: its own consumer group on cdp.events and cdp.identity, inserting into
// ClickHouse `events` and `identity_links` in batches bounded by rows, bytes and time,
// never one insert per event. A batch handler resolves only after the inserts holding its
// rows succeeded, so offsets are committed after the effect. A replay (crash before the
// commit) re-inserts identical rows: both tables are ReplacingMergeTrees and every
// analytics query dedupes events by message_id (identity links by argMax of version), so
// nothing is counted twice. Messages that cannot become a row go to the dead-letter topic.
import { type ClickHouseClient, insertRows } from '../runtime/clickhouse.ts';
import type { BatchHandler, IncomingMessage, OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import { DLQ_HEADERS } from '../schemas/topics.ts';
import { createInsertBatcher, type InsertBatcher } from './insert-batcher.ts';
import { parseEvent } from './parse-event.ts';
import { checkHistoryRow, HISTORY_COLUMNS, type HistoryRow, toHistoryRow } from './to-history-row.ts';
import { IDENTITY_LINK_COLUMNS, type IdentityLinkRow, parseIdentityChange } from './to-identity-rows.ts';

export interface HistorySinkDeps {
  clickhouse: ClickHouseClient;
  producer: Producer;
  topics: { events: string; identity: string; deadLetter: string };
  log: Logger;
  flushMs: number;
  maxRows: number;
  maxBytes: number;
  minRows: number;
  /** Called right after each successful insert, before the rows' handlers resolve (metrics). */
  onInserted?(table: 'events' | 'identity_links', rows: number, ms: number): void;
}

export interface SinkStats {
  inserts: Record<'events' | 'identity_links', number>;
  rows: Record<'events' | 'identity_links', number>;
  deadLettered: number;
}

export interface HistorySink {
  handler: BatchHandler;
  flush(): Promise<void>;
  stats: SinkStats;
}

// No query may change how an insert behaves (chDB keeps settings per session): say it.
// optimize_on_insert=0: don't collapse duplicates inside each insert block (measured ~30% of
// an insert's time on chDB); merges collapse them later and every query dedupes anyway.
const INSERT_SETTINGS = { async_insert: 0, max_execution_time: 0, optimize_on_insert: 0 } as const;

export function createHistorySink(deps: HistorySinkDeps): HistorySink {
  const stats: SinkStats = {
    inserts: { events: 0, identity_links: 0 },
    rows: { events: 0, identity_links: 0 },
    deadLettered: 0,
  };
  let active = 0;
  const idle = (): boolean => events.waiting() + links.waiting() >= active;
  const batcher = <Row extends object>(
    table: 'events' | 'identity_links',
    columns: readonly (keyof Row & string)[],
  ): InsertBatcher<Row> =>
    createInsertBatcher<Row>({
      table,
      flushMs: deps.flushMs,
      maxRows: deps.maxRows,
      maxBytes: deps.maxBytes,
      minRows: deps.minRows,
      idle,
      insert: async (values) => {
        const rows = values.map((r) => columns.map((c) => r[c]));
        await insertRows(deps.clickhouse, table, columns, rows, INSERT_SETTINGS);
      },
      onInserted: (rows, ms) => {
        stats.inserts[table]++;
        stats.rows[table] += rows;
        deps.log.debug({ table, rows, ms: Math.round(ms) }, 'history_inserted');
        deps.onInserted?.(table, rows, ms);
      },
      onFailed: (rows, err) =>
        deps.log.warn({ table, rows, err: (err as Error).message }, 'history_insert_failed'),
    });
  const events = batcher<HistoryRow>('events', HISTORY_COLUMNS);
  const links = batcher<IdentityLinkRow>('identity_links', IDENTITY_LINK_COLUMNS);

  const deadLetter = (m: IncomingMessage, reason: string, stage: string): OutgoingMessage => ({
    key: m.key ?? '',
    value: m.value ?? Buffer.alloc(0),
    headers: {
      [DLQ_HEADERS.reason]: reason,
      [DLQ_HEADERS.source]: m.topic,
      [DLQ_HEADERS.partition]: String(m.partition),
      [DLQ_HEADERS.offset]: m.offset,
      [DLQ_HEADERS.stage]: stage,
    },
  });

  const handler: BatchHandler = async (batch) => {
    active++;
    try {
      const dead: OutgoingMessage[] = [];
      let bytes = 0;
      if (batch.topic === deps.topics.identity) {
        const rows: IdentityLinkRow[] = [];
        for (const m of batch.messages) {
          const p = parseIdentityChange(m);
          if (!p.ok) dead.push(deadLetter(m, p.reason, 'history.identity'));
          else {
            for (const r of p.rows) rows.push(r);
            bytes += m.value?.length ?? 0;
          }
        }
        await sendDead(dead);
        await links.add(rows, bytes);
        return;
      }
      const rows: HistoryRow[] = [];
      for (const m of batch.messages) {
        const p = parseEvent(m);
        if (!p.ok) {
          dead.push(deadLetter(m, p.reason, 'history.parse'));
          continue;
        }
        const row = toHistoryRow(p.event);
        const problem = checkHistoryRow(row);
        if (problem) dead.push(deadLetter(m, problem, 'history.row'));
        else {
          rows.push(row);
          bytes += m.value?.length ?? 0;
        }
      }
      await sendDead(dead);
      await events.add(rows, bytes);
    } finally {
      active--;
      // a caller leaving may leave everyone else waiting: flush now rather than at the timer
      events.poke();
      links.poke();
    }
  };

  const sendDead = async (dead: OutgoingMessage[]) => {
    if (dead.length === 0) return;
    await deps.producer.send(deps.topics.deadLetter, dead);
    stats.deadLettered += dead.length;
    deps.log.warn(
      { count: dead.length, reason: dead[0]?.headers?.[DLQ_HEADERS.reason] },
      'history_dead_lettered',
    );
  };

  return {
    handler,
    stats,
    flush: async () => {
      await Promise.all([events.flush(), links.flush()]);
    },
  };
}
