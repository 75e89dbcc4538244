// The retry set on the real Redis: due entries are claimed once (two workers never take the
// same), a claimed entry a dead worker never finished comes back when its lease ends, and
// finishing an entry can park its next attempt in the same step.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { uniqueId } from '../test/harness.ts';
import { type Delivery, retrySet } from './retry-set.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis?.disconnect());

const delivery = (id: string, attempt = 1): Delivery => ({
  webhookId: id,
  attempt,
  items: [{ id: `e-${id}`, type: 'event', timestamp: 't', data: { n: 1 } }],
  meta: [{ key: 'ws:u', profileId: '', segmentId: '', segmentVersion: 0, epoch: 0, producedAt: 0 }],
});

describe('destination retry set', () => {
  it('claims due entries once, brings back what a dead worker held after its lease', async () => {
    const set = retrySet(redis, uniqueId('t'), 'dst_x');
    await set.park([
      { delivery: delivery('a'), dueAt: 1000 },
      { delivery: delivery('b'), dueAt: 2000 },
      { delivery: delivery('c'), dueAt: 9000 },
    ]);
    const first = await set.claim(2500, 10, 5000);
    expect(first.map((x) => x.delivery.webhookId)).toEqual(['a', 'b']);
    // a second worker at the same moment finds nothing due: both are leased
    expect(await set.claim(2500, 10, 5000)).toEqual([]);
    // the first worker finishes a (sent) and parks b's next attempt; then dies holding nothing else
    await set.finish(first[0]!.member);
    await set.finish(first[1]!.member, { delivery: delivery('b', 2), dueAt: 4000 });
    expect((await set.claim(4000, 10, 5000)).map((x) => [x.delivery.webhookId, x.delivery.attempt])).toEqual([
      ['b', 2],
    ]);
    // b (attempt 2) was claimed at 4000 and never finished: it is due again when the lease ends
    expect((await set.claim(8999, 10, 5000)).map((x) => x.delivery.webhookId)).toEqual([]);
    expect((await set.claim(9000, 10, 5000)).map((x) => x.delivery.webhookId).sort()).toEqual(['b', 'c']);
    expect(await set.size()).toBe(2);
    await set.clear();
    expect(await set.size()).toBe(0);
  });
});
