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
