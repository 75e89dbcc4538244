// Batches rows for one ClickHouse table: an insert happens when the buffer holds
// `maxRows` rows or `maxBytes` bytes, when `flushMs` passed since its first row, or early
// when `idle()` says no caller can add rows before it (each is waiting, on it or on an
// insert under way, or has handed its rows over and returned), an insert slot is free and
// it holds at least `minRows` (under load a fetch's worth
// of rows goes in at once instead of waiting out the timer; a trickle still waits, so a
// quiet topic never gets one insert per event).
// At most `concurrency` inserts of one table run at once; the next flushed buffer waits
// for a slot. `add` resolves once the insert holding the rows succeeded, so a caller
// commits its offsets only after the effect (inserts may finish out of order; the tables
// are ReplacingMergeTrees, so order never matters to what is stored).
// `accept` is the same without waiting for the insert: it answers a promise of it, and
// waits only while a full buffer is already queued behind the running inserts (the
// caller's consumer keeps fetching while an insert runs, so inserts go back to back; what
// is held in memory stays bounded). With `retry`, a failed insert is tried again with
// backoff, holding its slot, until it succeeds: what was accepted is never dropped.

import { backoffDelayMs, realSleep } from '../runtime/errors.ts';

export interface BatcherOptions<Row> {
  table: string;
  /**
   * Inserts the rows; may answer how many were stored when some were set aside, and may
   * remove those from `rows`: a retry after a later failure gets the same array.
   */
  insert(rows: Row[]): Promise<number | undefined>;
  flushMs: number;
  maxRows: number;
  maxBytes: number;
  minRows: number;
  /** Inserts of this table at once (default 1). */
  concurrency?: number;
  /** True when no other caller can add rows before this buffer is flushed. */
  idle(): boolean;
  onInserted?(rows: number, ms: number): void;
  onFailed?(rows: number, err: unknown): void;
  /** Retry a failed insert (with backoff) instead of failing its callers. */
  retry?: boolean;
}

interface Pending<Row> {
  rows: Row[];
  bytes: number;
  done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
  timer?: NodeJS.Timeout;
}

export interface InsertBatcher<Row> {
  /** Adds rows (with their approximate size) and resolves once they are inserted. */
  add(rows: Row[], bytes: number): Promise<void>;
  /** Adds rows once there is room; answers the promise of their insert. */
  accept(rows: Row[], bytes: number): Promise<{ inserted: Promise<void> }>;
  /** Callers waiting: on the open buffer or on an insert under way. */
  waiting(): number;
  /** Flushes early if everyone is waiting and enough rows are buffered. */
  poke(): void;
  /** Inserts what is buffered and waits for inserts under way (shutdown: no more retries). */
  flush(): Promise<void>;
}

export function createInsertBatcher<Row>(o: BatcherOptions<Row>): InsertBatcher<Row> {
  let pending: Pending<Row> | undefined;
  const slots = Math.max(1, o.concurrency ?? 1);
  let running = 0;
  /** Adds not yet resolved: callers on the open buffer or on an insert under way. */
  let waiting = 0;
  const queued: Array<() => void> = [];
  const inFlight = new Set<Promise<void>>();
  /** Set by flush (shutdown): failed inserts are no longer retried. */
  let closing = false;
  /** Rows (and bytes) not yet in a running insert: the open buffer and flushed ones waiting for a slot. */
  let queuedRows = 0;
  let queuedBytes = 0;
  const room = () => queuedRows < o.maxRows && queuedBytes < o.maxBytes;
  const roomWaiters: Array<() => void> = [];
  const wakeRoom = () => {
    while (room() && roomWaiters.length > 0) roomWaiters.shift()!();
  };
  const acquire = (): Promise<void> | undefined => {
    if (running < slots) {
      running++;
      return undefined;
    }
    return new Promise<void>((resolve) => queued.push(resolve));
  };
  const release = () => {
    const next = queued.shift();
    if (next) next();
    else running--;
  };

  const open = (): Pending<Row> => {
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    done.catch(() => {});
    const p: Pending<Row> = { rows: [], bytes: 0, done, resolve, reject };
    p.timer = setTimeout(() => void flushPending(p), o.flushMs);
    return p;
  };

  const flushPending = (p: Pending<Row>): Promise<void> => {
    if (pending === p) pending = undefined;
    if (p.timer) clearTimeout(p.timer);
    p.timer = undefined;
    if (p.rows.length === 0) {
      p.resolve();
      return p.done;
    }
    const run = (async () => {
      await acquire();
      queuedRows -= p.rows.length;
      queuedBytes -= p.bytes;
      wakeRoom();
      try {
        for (let attempt = 0; ; attempt++) {
          const t0 = performance.now();
          try {
            const stored = await o.insert(p.rows);
            o.onInserted?.(stored ?? p.rows.length, performance.now() - t0);
            p.resolve();
            return;
          } catch (err) {
            o.onFailed?.(p.rows.length, err);
            if (!o.retry || closing) {
              p.reject(err);
              return;
            }
            await realSleep(backoffDelayMs(attempt, 200, 5));
          }
        }
      } finally {
        release();
        poke();
      }
    })();
    inFlight.add(run);
    void run.finally(() => inFlight.delete(run));
    return p.done;
  };

  // early only into a free slot: a buffer queued behind a running insert can still grow
  const poke = () => {
    const p = pending;
    if (p && p.rows.length >= o.minRows && running < slots && o.idle()) void flushPending(p);
  };

  /** Puts rows in the open buffer, flushing it when full; answers that buffer. */
  const put = (rows: Row[], bytes: number): Pending<Row> => {
    pending ??= open();
    const p = pending;
    for (const r of rows) p.rows.push(r);
    p.bytes += bytes;
    queuedRows += rows.length;
    queuedBytes += bytes;
    if (p.rows.length >= o.maxRows || p.bytes >= o.maxBytes) void flushPending(p);
    else poke();
    return p;
  };

  return {
    async accept(rows, bytes) {
      if (rows.length === 0) return { inserted: Promise.resolve() };
      while (!room()) await new Promise<void>((resolve) => roomWaiters.push(resolve));
      return { inserted: put(rows, bytes).done };
    },
    async add(rows, bytes) {
      if (rows.length === 0) return;
      waiting++;
      const p = put(rows, bytes);
      try {
        await p.done;
      } finally {
        waiting--;
      }
    },
    waiting: () => waiting,
    poke,
    async flush() {
      closing = true;
      if (pending) await flushPending(pending).catch(() => {});
      while (inFlight.size > 0) await Promise.all(inFlight);
    },
  };
}
