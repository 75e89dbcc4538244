import { describe, expect, it } from 'vitest';
import { createLogger } from '../log.ts';
import { orderedCommits } from './ordered-commits.ts';

const log = createLogger({ level: 'silent', name: 'test' });

function deferred() {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
const tick = () => new Promise((r) => setTimeout(r, 0));

function setup() {
  const marks: string[] = [];
  const c = orderedCommits((topic, partition, offset) => marks.push(`${topic}/${partition}@${offset}`), log);
  return { c, marks };
}

describe('ordered commits', () => {
  it('marks a batch without effects at once', () => {
    const { c, marks } = setup();
    c.add('t', 0, '10');
    expect(marks).toEqual(['t/0@10']);
  });

  it('marks nothing past a batch whose effects are still under way', async () => {
    const { c, marks } = setup();
    const a = deferred();
    const b = deferred();
    c.add('t', 0, '10', a.promise);
    c.add('t', 0, '20', b.promise);
    c.add('t', 0, '30'); // done in itself, but after the two above
    c.add('t', 1, '5'); // another partition is not held back
    b.resolve();
    await tick();
    expect(marks).toEqual(['t/1@5']);
    a.resolve();
    await tick();
    // one mark for everything that became committable at once: the furthest
    expect(marks).toEqual(['t/1@5', 't/0@30']);
  });

  it('stops a partition whose effects failed: nothing after it is ever marked', async () => {
    const { c, marks } = setup();
    const a = deferred();
    const b = deferred();
    c.add('t', 0, '10', a.promise);
    c.add('t', 0, '20', b.promise);
    b.resolve();
    a.reject(new Error('insert failed'));
    await tick();
    c.add('t', 0, '30');
    c.add('t', 0, '40', Promise.resolve());
    c.add('t', 1, '7', Promise.resolve());
    await tick();
    expect(marks).toEqual(['t/1@7']);
  });

  it('settle waits for effects under way, and no longer than its bound', async () => {
    const { c, marks } = setup();
    const a = deferred();
    c.add('t', 0, '10', a.promise);
    setTimeout(() => a.resolve(), 30);
    await c.settle(5000);
    expect(marks).toEqual(['t/0@10']);
    c.add('t', 0, '20', new Promise<void>(() => {}));
    const t0 = Date.now();
    await c.settle(50);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(marks).toEqual(['t/0@10']);
  });
});
