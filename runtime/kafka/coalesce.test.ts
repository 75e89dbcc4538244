import { describe, expect, it } from 'vitest';
import { coalesceBatches } from './coalesce.ts';
import type { Batch, BatchContext } from './types.ts';

const ctx: BatchContext = { heartbeat: async () => {}, isActive: () => true };
const batch = (partition: number, offsets: number[]): Batch => ({
  topic: 't',
  partition,
  messages: offsets.map((o) => ({
    topic: 't',
    partition,
    offset: String(o),
    key: null,
    value: Buffer.from(`${partition}:${o}`),
    headers: {},
    timestamp: 0,
  })),
});
const ids = (b: Batch) => b.messages.map((m) => String(m.value));

describe('coalesceBatches', () => {
  it('handles the batches handed over in one turn as one, each partition in order', async () => {
    const calls: Batch[] = [];
    const handle = coalesceBatches(async (b) => {
      calls.push(b);
    });
    await Promise.all([
      handle(batch(0, [5, 6]), ctx),
      handle(batch(3, [1]), ctx),
      handle(batch(1, [9, 10, 11]), ctx),
    ]);
    expect(calls).toHaveLength(1);
    expect(ids(calls[0]!)).toEqual(['0:5', '0:6', '3:1', '1:9', '1:10', '1:11']);
    expect(calls[0]!.partition).toBe(-1);
  });

  it('merges only up to maxMessages: full batches go through side by side', async () => {
    const calls: Batch[] = [];
    let running = 0;
    let most = 0;
    const handle = coalesceBatches(async (b) => {
      calls.push(b);
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
    }, 4);
    await Promise.all([
      handle(batch(0, [1, 2, 3]), ctx),
      handle(batch(1, [1]), ctx),
      handle(batch(2, [1, 2, 3, 4, 5]), ctx),
      handle(batch(3, [1, 2]), ctx),
    ]);
    expect(calls.map(ids)).toEqual([
      ['0:1', '0:2', '0:3', '1:1'],
      ['2:1', '2:2', '2:3', '2:4', '2:5'],
      ['3:1', '3:2'],
    ]);
    expect(most).toBe(3);
  });

  it('passes a lone batch through as it is, and starts a new group for what comes later', async () => {
    const calls: Batch[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const handle = coalesceBatches(async (b) => {
      calls.push(b);
      if (calls.length === 1) await gate;
    });
    const lone = batch(2, [1]);
    const first = handle(lone, ctx);
    await new Promise((r) => setImmediate(r));
    // the first group is still being handled: these two form the next one
    const later = Promise.all([handle(batch(0, [1]), ctx), handle(batch(1, [1]), ctx)]);
    await new Promise((r) => setImmediate(r));
    expect(calls).toHaveLength(2);
    expect(calls[0]).toBe(lone);
    expect(ids(calls[1]!)).toEqual(['0:1', '1:1']);
    release();
    await Promise.all([first, later]);
  });

  it('fails every batch of a group when the handler throws, and the next group runs again', async () => {
    let fail = true;
    const handle = coalesceBatches(async () => {
      if (fail) throw new Error('redis down');
    });
    const results = await Promise.allSettled([handle(batch(0, [1]), ctx), handle(batch(1, [1]), ctx)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((results[0] as PromiseRejectedResult).reason).toEqual(new Error('redis down'));
    fail = false;
    await expect(handle(batch(0, [1]), ctx)).resolves.toBeUndefined();
  });

  it('is active while any partition of the group is', async () => {
    let seen: boolean[] = [];
    const handle = coalesceBatches(async (_b, c) => {
      seen = [c.isActive()];
    });
    const gone: BatchContext = { heartbeat: async () => {}, isActive: () => false };
    await Promise.all([handle(batch(0, [1]), gone), handle(batch(1, [1]), ctx)]);
    expect(seen).toEqual([true]);
    await Promise.all([handle(batch(0, [2]), gone), handle(batch(1, [2]), gone)]);
    expect(seen).toEqual([false]);
  });
});
