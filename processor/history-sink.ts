// The history sink: its own consumer group on cdp.events, cdp.identity and
// cdp.segment-changes, inserting into ClickHouse `events`, `identity_links` and
// `segment_membership_history` in batches bounded by rows, bytes and time,
// never one insert per event. Events and identity changes go in as the bytes they are on
// Kafka: ClickHouse parses them and derives the rows (events_intake, migration 005;
// identity_intake, 006), so the common path costs JS no parsing, only handing the messages'
// buffers to the insert (runtime/clickhouse.ts: insertFormatted). When
// ClickHouse refuses an insert for what it holds (a parse or type error, the view's throwIf:
// runtime/clickhouse-errors.ts), the batch is checked event by event (clear reasons from our
// own checks), and what ClickHouse still refuses is isolated by bisection, so one poison
// event never blocks a partition. Any other failure (too many parts, memory, timeouts,
// ClickHouse down) only retries the whole insert after a backoff: it never dead-letters. A batch handler hands its rows over and answers the
// promise of their insert as the batch's `effects`: the consumer fetches on while inserts
// run (back to back under load) and commits the offsets only after the effect. A replay
// (crash before the commit) re-inserts identical rows: both tables are ReplacingMergeTrees and every
// analytics query dedupes events by message_id (identity links by argMax of version), so
// nothing is counted twice. Messages that cannot become a row go to the dead-letter topic.

import { type ClickHouseClient, insertFormatted, insertRows } from '../runtime/clickhouse.ts';
import { clickHouseErrorCode, isBadDataError } from '../runtime/clickhouse-errors.ts';
import { errorMessage, realSleep } from '../runtime/errors.ts';
import { deadLetterOf } from '../runtime/kafka/dead-letter.ts';
import type { BatchHandler, IncomingMessage, OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { sendOrDeadLetter } from '../runtime/kafka/send-bounded.ts';
import type { Logger } from '../runtime/log.ts';
import { segmentChangeCheck } from '../schemas/segment-change.ts';
import { DLQ_HEADERS } from '../schemas/topics.ts';
import { PLAN_HEADERS, type Violation, violationReason } from '../schemas/tracking-plan.ts';
import type { ErasedFilter } from './drop-erased.ts';
import { createInsertBatcher, type InsertBatcher } from './insert-batcher.ts';
import { parseEvent, parseMessage } from './parse-event.ts';
import { checkHistoryRow, toHistoryRow } from './to-history-row.ts';
import { IDENTITY_LINK_COLUMNS, parseIdentityChange } from './to-identity-rows.ts';

export interface HistorySinkDeps {
  clickhouse: ClickHouseClient;
  producer: Producer;
  /** segmentChanges: optional so a sink can be run on events and identity changes alone. */
  /** quarantine: events a tracking plan kept out (schemas/tracking-plan.ts), when subscribed. */
  topics: {
    events: string;
    identity: string;
    segmentChanges?: string;
    deadLetter: string;
    quarantine?: string;
  };
  log: Logger;
  flushMs: number;
  maxRows: number;
  maxBytes: number;
  minRows: number;
  /** Inserts of one table at once (default 1). */
  inserts?: number;
  /** Called right after each successful insert, before the rows' handlers resolve (metrics). */
  onInserted?(table: Table, rows: number, ms: number): void;
  /** Drops what belongs to erased people before it is handed to an insert (drop-erased.ts). */
  erased?: ErasedFilter;
}

type Table =
  | 'events'
  | 'identity_links'
  | 'segment_membership_history'
  | 'quarantined_events'
  | 'tracking_plan_violations';

export interface SinkStats {
  inserts: Record<Table, number>;
  rows: Record<Table, number>;
  deadLettered: number;
  /** Inserts that failed for the moment and were tried again (whole, after a backoff). */
  retries: number;
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
// Event envelopes as JSONEachRow: nested objects (properties, context…) kept as their JSON
// text; a batch of a few MB is parsed by more than one thread (the default chunk is 10 MB).
// Identity changes: numbers never read into a String column (the view's checks, 006).
type Intake = 'events_intake' | 'identity_intake';
const INTAKE: Record<Intake, Record<string, number>> = {
  events_intake: {
    ...INSERT_SETTINGS,
    input_format_json_read_objects_as_strings: 1,
    input_format_skip_unknown_fields: 1,
    min_chunk_bytes_for_parallel_parsing: 1024 * 1024,
    // the view and the part writing on two threads too (measured +5-10% into events on 2 cores)
    max_insert_threads: 2,
  },
  identity_intake: {
    ...INSERT_SETTINGS,
    input_format_json_read_numbers_as_strings: 0,
    input_format_skip_unknown_fields: 1,
  },
};
const NEWLINE = Buffer.from('\n');

export function createHistorySink(deps: HistorySinkDeps): HistorySink {
  const stats: SinkStats = {
    inserts: {
      events: 0,
      identity_links: 0,
      segment_membership_history: 0,
      quarantined_events: 0,
      tracking_plan_violations: 0,
    },
    rows: {
      events: 0,
      identity_links: 0,
      segment_membership_history: 0,
      quarantined_events: 0,
      tracking_plan_violations: 0,
    },
    deadLettered: 0,
    retries: 0,
  };
  let active = 0;
  const idle = (): boolean =>
    events.waiting() +
      links.waiting() +
      memberships.waiting() +
      quarantined.waiting() +
      violations.waiting() >=
    active;
  const batcher = <Row extends object>(
    table: Table,
    insert: (rows: Row[]) => Promise<number | undefined>,
  ): InsertBatcher<Row> =>
    createInsertBatcher<Row>({
      table,
      flushMs: deps.flushMs,
      maxRows: deps.maxRows,
      maxBytes: deps.maxBytes,
      minRows: deps.minRows,
      concurrency: deps.inserts,
      // what a handler handed over is never dropped: a failed insert (ClickHouse down) is
      // tried again until it goes in, and the offsets wait for it
      retry: true,
      idle,
      insert,
      onInserted: (rows, ms) => {
        stats.inserts[table]++;
        stats.rows[table] += rows;
        deps.log.debug({ table, rows, ms: Math.round(ms) }, 'history_inserted');
        deps.onInserted?.(table, rows, ms);
      },
      onFailed: (rows, err) => {
        stats.retries++;
        deps.log.warn(
          { table, rows, code: clickHouseErrorCode(err), err: (err as Error).message },
          'history_insert_failed',
        );
      },
    });
  const insertIntake = (table: Intake, msgs: IncomingMessage[]) => {
    const parts: Buffer[] = [];
    for (const m of msgs) parts.push(m.value!, NEWLINE);
    return insertFormatted(deps.clickhouse, table, parts, 'JSONEachRow', INTAKE[table]);
  };

  /**
   * Inserts; answers undefined when that worked, or ClickHouse's error when it refused the
   * rows for what they hold (runtime/clickhouse-errors.ts). Throws for anything else (too
   * many parts, a memory limit, a timeout, ClickHouse down): the whole batch fails and is
   * retried after a backoff, nothing is set aside.
   */
  const tryIntake = async (table: Intake, msgs: IncomingMessage[]): Promise<Error | undefined> => {
    try {
      await insertIntake(table, msgs);
      return undefined;
    } catch (err) {
      if (!isBadDataError(err)) throw err;
      return err as Error;
    }
  };

  /** Inserts what ClickHouse takes; dead-letters the events it refuses. Answers how many went in. */
  const insertEvents = async (msgs: IncomingMessage[]): Promise<number> => {
    if (!(await tryIntake('events_intake', msgs))) return msgs.length;
    const good: IncomingMessage[] = [];
    const dead: OutgoingMessage[] = [];
    for (const m of msgs) {
      const problem = whyNotStorable(m);
      if (problem) dead.push(deadLetter(m, problem, 'history.row'));
      else good.push(m);
    }
    await sendDead(dead);
    keepOnly(msgs, good); // a retry of this insert (a failure of the moment below) skips them
    return isolate(good);
  };

  /** Bisects a refused batch down to the events ClickHouse will not store. */
  const isolate = async (msgs: IncomingMessage[]): Promise<number> => {
    if (msgs.length === 0 || !(await tryIntake('events_intake', msgs))) return msgs.length;
    if (msgs.length > 1) {
      const mid = msgs.length >> 1;
      return (await isolate(msgs.slice(0, mid))) + (await isolate(msgs.slice(mid)));
    }
    // one event, refused twice for what it holds: it is the event, not the moment
    await realSleep(50);
    const again = await tryIntake('events_intake', msgs);
    if (!again) return 1;
    const reason = `ClickHouse refused it: ${errorMessage(again).slice(0, 300)}`;
    await sendDead([deadLetter(msgs[0]!, reason, 'history.insert')]);
    return 0;
  };

  const events = batcher<IncomingMessage>('events', insertEvents);
  /**
   * Identity changes through identity_intake (migration 006); when it refuses the batch,
   * each change is checked and turned into rows here, the bad ones dead-lettered.
   */
  const links = batcher<IncomingMessage>('identity_links', async (msgs) => {
    if (!(await tryIntake('identity_intake', msgs))) return msgs.length;
    const rows: unknown[][] = [];
    const dead: OutgoingMessage[] = [];
    let stored = 0;
    const good: IncomingMessage[] = [];
    for (const m of msgs) {
      const p = parseIdentityChange(m);
      if (!p.ok) dead.push(deadLetter(m, p.reason, 'history.identity'));
      else {
        for (const r of p.rows) rows.push(IDENTITY_LINK_COLUMNS.map((c) => r[c]));
        good.push(m);
        stored++;
      }
    }
    await sendDead(dead);
    keepOnly(msgs, good);
    if (rows.length > 0)
      await insertRows(deps.clickhouse, 'identity_links', IDENTITY_LINK_COLUMNS, rows, INSERT_SETTINGS);
    return stored;
  });
  const memberships = batcher<MembershipRow>('segment_membership_history', async (values) => {
    const rows = values.map((r) => MEMBERSHIP_COLUMNS.map((c) => r[c]));
    await insertRows(
      deps.clickhouse,
      'segment_membership_history',
      MEMBERSHIP_COLUMNS,
      rows,
      INSERT_SETTINGS,
    );
    return undefined;
  });

  // Tracking plans: quarantined events and the violations of every checked event (rare
  // next to events: parsed here, inserted as rows)
  const quarantined = batcher<unknown[]>('quarantined_events', async (rows) => {
    await insertRows(deps.clickhouse, 'quarantined_events', QUARANTINE_COLUMNS, rows, INSERT_SETTINGS);
    return undefined;
  });
  const violations = batcher<unknown[]>('tracking_plan_violations', async (rows) => {
    await insertRows(deps.clickhouse, 'tracking_plan_violations', VIOLATION_COLUMNS, rows, INSERT_SETTINGS);
    return undefined;
  });

  const deadLetter = deadLetterOf;

  const handler: BatchHandler = async (batch) => {
    active++;
    try {
      await deps.erased?.refresh();
      const dead: OutgoingMessage[] = [];
      let bytes = 0;
      if (batch.topic === deps.topics.segmentChanges) {
        const rows: MembershipRow[] = [];
        for (const m of batch.messages) {
          const p = parseMessage(m, segmentChangeCheck, 'segment change');
          const at = p.ok ? Date.parse(p.value.occurredAt) : Number.NaN;
          if (!p.ok) dead.push(deadLetter(m, p.reason, 'history.membership'));
          else if (Number.isNaN(at))
            dead.push(
              deadLetter(m, 'invalid segment change at /occurredAt: not a date', 'history.membership'),
            );
          // what the columns refuse (UInt32, DateTime64) is refused here: a refused insert of
          // these rows would only be retried (they are not bisected)
          else if (!isUInt32(p.value.segmentVersion) || !isUInt32(p.value.epoch))
            dead.push(
              deadLetter(
                m,
                'invalid segment change: segmentVersion or epoch out of range',
                'history.membership',
              ),
            );
          else if (at < MIN_AT || at >= MAX_AT)
            dead.push(
              deadLetter(m, 'invalid segment change: occurredAt outside 1900-2299', 'history.membership'),
            );
          else {
            const c = p.value;
            rows.push({
              workspace_id: c.workspaceId,
              segment_id: c.segmentId,
              segment_version: c.segmentVersion,
              profile_id: c.profileId,
              type: c.type,
              epoch: c.epoch,
              message_id: c.messageId ?? '',
              at,
            });
            bytes += m.value?.length ?? 0;
          }
        }
        await sendDead(dead);
        const { inserted } = await memberships.accept(deps.erased?.memberships(rows) ?? rows, bytes);
        return { effects: inserted };
      }
      if (batch.topic === deps.topics.quarantine) {
        const rows: unknown[][] = [];
        const found: unknown[][] = [];
        for (const m of deps.erased ? deps.erased.events(batch.messages) : batch.messages) {
          const q = quarantineRows(m);
          if (typeof q === 'string') dead.push(deadLetter(m, q, 'history.quarantine'));
          else {
            rows.push(q.row);
            for (const v of q.violations) found.push(v);
            bytes += m.value?.length ?? 0;
          }
        }
        await sendDead(dead);
        const [a, b] = await Promise.all([
          quarantined.accept(rows, bytes),
          violations.accept(found, found.length * 100),
        ]);
        return { effects: Promise.all([a.inserted, b.inserted]).then(() => undefined) };
      }
      // checked here only as far as costs nothing; ClickHouse checks the rest (see insertEvents)
      const identity = batch.topic === deps.topics.identity;
      const stage = identity ? 'history.identity' : 'history.parse';
      const rows: IncomingMessage[] = [];
      const erased = deps.erased;
      const messages = erased
        ? identity
          ? erased.identityChanges(batch.messages)
          : erased.events(batch.messages)
        : batch.messages;
      const found: unknown[][] = [];
      for (const m of messages) {
        const v = m.value;
        if (!v || v.length === 0) dead.push(deadLetter(m, 'empty message', stage));
        else if (v[0] !== 0x7b /* { */) dead.push(deadLetter(m, 'invalid JSON: not an object', stage));
        else {
          rows.push(m);
          bytes += v.length;
          // an event a tracking plan found violations in (allow or flag mode): counted
          if (!identity && m.headers?.[PLAN_HEADERS.violations]) {
            const q = quarantineRows(m);
            if (typeof q !== 'string') for (const r of q.violations) found.push(r);
          }
        }
      }
      await sendDead(dead);
      const { inserted } = await (identity ? links : events).accept(rows, bytes);
      if (found.length === 0) return { effects: inserted };
      const counted = await violations.accept(found, found.length * 100);
      return { effects: Promise.all([inserted, counted.inserted]).then(() => undefined) };
    } finally {
      active--;
      // a caller leaving may leave everyone else waiting: flush now rather than at the timer
      events.poke();
      links.poke();
      memberships.poke();
      quarantined.poke();
      violations.poke();
    }
  };

  const sendDead = async (dead: OutgoingMessage[]) => {
    if (dead.length === 0) return;
    // in requests the broker takes (a batch of bad rows can be many MB)
    await sendOrDeadLetter(deps.producer, deps.topics.deadLetter, dead, {
      deadLetterTopic: deps.topics.deadLetter,
      stage: 'history.dead-letter',
      log: deps.log,
    });
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
      await Promise.all([
        events.flush(),
        links.flush(),
        memberships.flush(),
        quarantined.flush(),
        violations.flush(),
      ]);
    },
  };
}

const isUInt32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
const MIN_AT = Date.UTC(1900, 0, 1);
const MAX_AT = Date.UTC(2300, 0, 1);

/** A row of `segment_membership_history`: one transition as published on cdp.segment-changes. */
interface MembershipRow {
  workspace_id: string;
  segment_id: string;
  segment_version: number;
  profile_id: string;
  type: string;
  epoch: number;
  message_id: string;
  at: number;
}
const MEMBERSHIP_COLUMNS = [
  'workspace_id',
  'segment_id',
  'segment_version',
  'profile_id',
  'type',
  'epoch',
  'message_id',
  'at',
] as const satisfies readonly (keyof MembershipRow)[];

/**
 * Leaves only `keep` in `rows`, the batcher's buffer: rows already dead-lettered are not
 * dead-lettered again when the insert is retried after a failure of the moment.
 */
function keepOnly<T>(rows: T[], keep: readonly T[]): void {
  if (keep.length === rows.length) return;
  rows.length = 0;
  for (const r of keep) rows.push(r);
}

/** Why an event cannot be stored (our own checks, with clear reasons), or undefined. */
function whyNotStorable(m: IncomingMessage): string | undefined {
  const p = parseEvent(m);
  if (!p.ok) return p.reason;
  return checkHistoryRow(toHistoryRow(p.event));
}

const QUARANTINE_COLUMNS = [
  'workspace_id',
  'message_id',
  'at',
  'type',
  'event',
  'plan_version',
  'reason',
  'violations',
  'event_json',
  'status',
  'replayed_at',
  'version',
] as const;
const VIOLATION_COLUMNS = [
  'workspace_id',
  'at',
  'event',
  'path',
  'keyword',
  'mode',
  'plan_version',
  'message_id',
] as const;

/**
 * The rows of an event a tracking plan found violations in: its quarantined_events row (used
 * when it came from cdp.quarantine) and one tracking_plan_violations row per violation; or
 * why it cannot be stored.
 */
function quarantineRows(m: IncomingMessage): { row: unknown[]; violations: unknown[][] } | string {
  const p = parseEvent(m);
  if (!p.ok) return p.reason;
  const e = p.event;
  let found: Violation[] = [];
  try {
    const raw = JSON.parse(m.headers?.[PLAN_HEADERS.violations] ?? '[]') as unknown;
    if (Array.isArray(raw))
      found = raw.filter(
        (v): v is Violation =>
          !!v && typeof v.path === 'string' && typeof v.keyword === 'string' && typeof v.message === 'string',
      );
  } catch {
    // a header we did not write: the event is kept, its violations are unknown
  }
  const at = Date.parse(e.receivedAt);
  if (Number.isNaN(at) || at < MIN_AT || at >= MAX_AT) return 'invalid event: receivedAt is not a date';
  const version = Number(m.headers?.[PLAN_HEADERS.version] ?? 0);
  const planVersion = isUInt32(version) ? version : 0;
  const mode = m.headers?.[PLAN_HEADERS.mode] ?? '';
  const name = e.type === 'track' ? (e.event ?? '') : `$${e.type}`;
  const reason = violationReason(found) || 'violates the tracking plan';
  return {
    row: [
      e.workspaceId,
      e.messageId,
      at,
      e.type,
      name,
      planVersion,
      reason,
      JSON.stringify(found),
      m.value!.toString('utf8'),
      'quarantined',
      null,
      0,
    ],
    violations: found.map((v) => [
      e.workspaceId,
      at,
      name,
      v.path,
      v.keyword,
      mode,
      planVersion,
      e.messageId,
    ]),
  };
}
