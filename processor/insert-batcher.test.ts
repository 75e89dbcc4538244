import { describe, expect, it } from 'vitest';
import { createInsertBatcher } from './insert-batcher.ts';

const setup = (o: { maxRows?: number; minRows?: number; flushMs?: number; idle?: () => boolean }) => {
  const inserted: number[][] = [];
  const b = createInsertBatcher<number>({
    table: 't',
    flushMs: o.flushMs ?? 50,
    maxRows: o.maxRows ?? 100,
    maxBytes: 1e9,
    minRows: o.minRows ?? 10,
    idle: o.idle ?? (() => false),
    insert: async (rows) => {
      await new Promise((r) => setTimeout(r, 5));
      inserted.push([...rows]);
      return undefined;
    },
  });
  return { b, inserted };
};

describe('insert batcher', () => {
  it('resolves an add only once an insert holding its rows is done', async () => {
    const { b, inserted } = setup({ maxRows: 25 });
    const adds = Array.from({ length: 20 }, (_, i) =>
      b.add([i * 3, i * 3 + 1, i * 3 + 2], 3).then(() => {
        const all = inserted.flat();
        expect(all).toContain(i * 3);
        expect(all).toContain(i * 3 + 2);
      }),
    );
    await Promise.all(adds);
    await b.flush();
    expect(inserted.flat().sort((x, y) => x - y)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    // 60 rows at 25 per insert (27 with the last add's 3): three inserts, not twenty
    expect(inserted.length).toBeLessThanOrEqual(3);
  });

  it('waits for the timer with few rows, even when everyone waits', async () => {
    const { b, inserted } = setup({ minRows: 10, flushMs: 80, idle: () => true });
    const t0 = performance.now();
    await b.add([1, 2], 2);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(75);
    expect(inserted).toEqual([[1, 2]]);
  });

  it('flushes at once when everyone waits and enough rows are there', async () => {
    const { b, inserted } = setup({ minRows: 10, flushMs: 5000, idle: () => true });
    const t0 = performance.now();
    await b.add(
      Array.from({ length: 12 }, (_, i) => i),
      12,
    );
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(inserted).toHaveLength(1);
  });

  it('fails the adds of a failed insert, and the next insert starts afresh', async () => {
    let fail = true;
    const b = createInsertBatcher<number>({
      table: 't',
      flushMs: 10,
      maxRows: 100,
      maxBytes: 1e9,
      minRows: 1,
      idle: () => false,
      insert: async () => {
        if (fail) throw new Error('boom');
        return undefined;
      },
    });
    await expect(b.add([1], 1)).rejects.toThrow('boom');
    fail = false;
    await expect(b.add([2], 1)).resolves.toBeUndefined();
  });
});

describe('insert batcher with two insert slots', () => {
  const slotted = (concurrency: number, idle: () => boolean) => {
    let running = 0;
    let most = 0;
    const inserted: number[][] = [];
    const release: Array<() => void> = [];
    const b = createInsertBatcher<number>({
      table: 't',
      flushMs: 10_000,
      maxRows: 4,
      maxBytes: 1e9,
      minRows: 2,
      concurrency,
      idle,
      insert: async (rows) => {
        running++;
        most = Math.max(most, running);
        await new Promise<void>((r) => release.push(r));
        running--;
        inserted.push([...rows]);
        return undefined;
      },
    });
    return { b, inserted, release, most: () => most, running: () => running };
  };
  const until = async (cond: () => boolean) => {
    const deadline = Date.now() + 2000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 1));
    }
  };

  it('runs two full buffers at once and queues the third behind them', async () => {
    const { b, inserted, release, most, running } = slotted(2, () => false);
    const adds = [b.add([1, 2, 3, 4], 4), b.add([5, 6, 7, 8], 4), b.add([9, 10, 11, 12], 4)];
    await until(() => running() === 2);
    await new Promise((r) => setTimeout(r, 20));
    expect(running()).toBe(2); // the third waits for a slot
    release.shift()!();
    await until(() => release.length === 2);
    while (release.length > 0) {
      release.shift()!();
      await until(() => release.length > 0 || inserted.length === 3);
    }
    await Promise.all(adds);
    expect(most()).toBe(2);
    expect(inserted.flat().sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it('flushes early into a free slot while another insert runs, but never queues early', async () => {
    const { b, inserted, release, running } = slotted(2, () => true);
    const first = b.add([1, 2, 3, 4], 4); // full: slot 1
    await until(() => running() === 1);
    const second = b.add([5, 6], 2); // minRows, everyone waits, a slot is free: goes now
    await until(() => running() === 2);
    const third = b.add([7, 8], 2); // no free slot: stays open and may still grow
    await new Promise((r) => setTimeout(r, 20));
    expect(running()).toBe(2);
    const fourth = b.add([9], 1);
    release.shift()!(); // a slot frees: the open buffer (7, 8, 9) goes in as one insert
    await until(() => running() === 2 && release.length === 2);
    release.shift()!();
    release.shift()!();
    await Promise.all([first, second, third, fourth]);
    expect(inserted.map((r) => r.length).sort()).toEqual([2, 3, 4]);
  });

  it('flush waits for every insert under way', async () => {
    const { b, inserted, release, running } = slotted(2, () => false);
    void b.add([1, 2, 3, 4], 4);
    void b.add([5, 6, 7, 8], 4);
    await until(() => running() === 2);
    let flushed = false;
    const f = b.flush().then(() => {
      flushed = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(flushed).toBe(false);
    release.shift()!();
    release.shift()!();
    await f;
    expect(inserted).toHaveLength(2);
  });
});

describe('insert batcher, accepting rows without waiting for their insert', () => {
  /** An insert that runs until the test opens its gate; `fail` makes the next calls throw. */
  const gated = (o: { maxRows: number; fail?: number | 'always'; retry?: boolean }) => {
    const calls: number[][] = [];
    let open!: () => void;
    let gate = new Promise<void>((r) => {
      open = r;
    });
    let failures = o.fail === 'always' ? Number.POSITIVE_INFINITY : (o.fail ?? 0);
    const b = createInsertBatcher<number>({
      table: 't',
      flushMs: 10_000,
      maxRows: o.maxRows,
      maxBytes: 1e9,
      minRows: o.maxRows,
      idle: () => true,
      retry: o.retry,
      insert: async (rows) => {
        calls.push([...rows]);
        if (failures > 0) {
          failures--;
          throw new Error('clickhouse down');
        }
        await gate;
        return undefined;
      },
    });
    return {
      b,
      calls,
      release: () => {
        open();
        gate = new Promise<void>((r) => {
          open = r;
        });
      },
    };
  };
  const settled = async (p: Promise<unknown>) => {
    let done = false;
    void p.then(
      () => (done = true),
      () => (done = true),
    );
    await new Promise((r) => setTimeout(r, 20));
    return done;
  };

  it('answers before the insert, and its promise once the insert is done', async () => {
    const { b, calls, release } = gated({ maxRows: 3 });
    const { inserted } = await b.accept([1, 2, 3], 3);
    expect(calls).toEqual([[1, 2, 3]]);
    expect(await settled(inserted)).toBe(false);
    release();
    await inserted;
  });

  it('holds a caller back while a full buffer already waits behind the running insert', async () => {
    const { b, calls, release } = gated({ maxRows: 3 });
    const first = await b.accept([1, 2, 3], 3); // running
    const second = await b.accept([4, 5, 6], 3); // full, queued behind it
    const third = b.accept([7], 1);
    expect(await settled(third)).toBe(false);
    release(); // the first insert ends, the queued one starts: there is room again
    const { inserted } = await third;
    await first.inserted;
    expect(calls).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    release();
    await second.inserted;
    const done = b.flush();
    while (calls.length < 3) await new Promise((r) => setTimeout(r, 1));
    release();
    await done;
    await inserted;
    expect(calls.at(-1)).toEqual([7]);
  });

  it('with retry, tries a failed insert again until it goes in', async () => {
    const { b, calls, release } = gated({ maxRows: 2, fail: 2, retry: true });
    const { inserted } = await b.accept([1, 2], 2);
    await new Promise((r) => setTimeout(r, 700)); // backoff 200 ms, then 400 ms
    release();
    await inserted;
    expect(calls).toEqual([
      [1, 2],
      [1, 2],
      [1, 2],
    ]);
  });

  it('stops retrying once flushed for shutdown: the promise fails, nothing hangs', async () => {
    const { b } = gated({ maxRows: 2, fail: 'always', retry: true });
    const { inserted } = await b.accept([1, 2], 2);
    await b.flush();
    await expect(inserted).rejects.toThrow(/clickhouse down/);
  });
});
