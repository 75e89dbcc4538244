// One fetch hands each partition's batch to the handler at once (partitions are handled
// side by side). For a handler whose fixed cost per call is round trips (the processor: a
// Redis pipeline, a produce, a second pipeline), the batches that arrive together are
// better handled as one: one round of calls instead of one per partition. Under a steady
// trickle that is most of what the handler costs.
//
// Only for handlers that need order within a partition and nothing across partitions: the
// merged batch keeps each partition's messages in order, one partition after another.
// Every caller's promise settles with the shared outcome: if the merged call throws, each
// partition's batch is retried on its own by the consumer (handlers are idempotent).
import type { Batch, BatchContext } from './types.ts';

type Handle = (batch: Batch, ctx: BatchContext) => Promise<void>;

interface Waiting {
  batch: Batch;
  ctx: BatchContext;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * `maxMessages` bounds a merged batch: under a backlog every partition's batch is full, and
 * those go through side by side as before (one call's JS work overlaps another's wait
 * for Redis; one merged call would serialise them).
 */
export function coalesceBatches(handle: Handle, maxMessages = 500): Handle {
  let waiting: Waiting[] = [];
  const run = async (group: Waiting[]) => {
    const first = group[0]!;
    const batch: Batch =
      group.length === 1
        ? first.batch
        : { topic: first.batch.topic, partition: -1, messages: group.flatMap((w) => w.batch.messages) };
    const ctx: BatchContext = {
      heartbeat: () => first.ctx.heartbeat(),
      isActive: () => group.some((w) => w.ctx.isActive()),
    };
    try {
      await handle(batch, ctx);
      for (const w of group) w.resolve();
    } catch (err) {
      for (const w of group) w.reject(err);
    }
  };
  return (batch, ctx) =>
    new Promise<void>((resolve, reject) => {
      // the others of the same fetch are handed over in this turn of the event loop
      if (waiting.length === 0)
        setImmediate(() => {
          const all = waiting;
          waiting = [];
          let group: Waiting[] = [];
          let size = 0;
          for (const w of all) {
            if (group.length > 0 && size + w.batch.messages.length > maxMessages) {
              void run(group);
              group = [];
              size = 0;
            }
            group.push(w);
            size += w.batch.messages.length;
          }
          void run(group);
        });
      waiting.push({ batch, ctx, resolve, reject });
    });
}
