import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../log.ts';
import { offsetCommitter, type TopicPartitionOffset } from './offset-committer.ts';

const log = createLogger({ level: 'silent', name: 'test' });

describe('offsetCommitter', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('commits the latest offset of each partition once per interval, not once per batch', async () => {
    const commits: TopicPartitionOffset[][] = [];
    const c = offsetCommitter(async (o) => void commits.push(o), log, 1000);
    c.mark('t', 0, '5');
    c.mark('t', 1, '3');
    c.mark('t', 0, '9');
    await vi.advanceTimersByTimeAsync(999);
    expect(commits).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(commits).toEqual([
      [
        { topic: 't', partition: 0, offset: '9' },
        { topic: 't', partition: 1, offset: '3' },
      ],
    ]);
    // nothing marked since: nothing sent
    await vi.advanceTimersByTimeAsync(5000);
    expect(commits).toHaveLength(1);
    c.mark('u', 0, '1');
    await c.flush();
    expect(commits[1]).toEqual([{ topic: 'u', partition: 0, offset: '1' }]);
  });

  it('keeps commits in order: a later offset is never overtaken by an earlier one', async () => {
    const sent: string[] = [];
    const release: Array<() => void> = [];
    const c = offsetCommitter(
      (o) =>
        new Promise<void>((r) => {
          sent.push(o[0]!.offset);
          release.push(r);
        }),
      log,
      10,
    );
    c.mark('t', 0, '1');
    const first = c.flush();
    c.mark('t', 0, '2');
    const second = c.flush();
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual(['1']); // the second waits for the first
    release[0]!();
    await first;
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual(['1', '2']);
    release[1]!();
    await second;
  });

  it('logs a failed commit and goes on (a redelivery follows, handlers absorb it)', async () => {
    const warn = vi.spyOn(log, 'warn');
    let calls = 0;
    const c = offsetCommitter(
      async () => {
        calls++;
        if (calls === 1) throw new Error('REBALANCE_IN_PROGRESS');
      },
      log,
      100,
    );
    c.mark('t', 0, '1');
    await expect(c.flush()).resolves.toBeUndefined();
    expect(warn).toHaveBeenCalledWith(
      expect.objectContaining({ err: 'REBALANCE_IN_PROGRESS', partitions: ['t/0'] }),
      'commit_failed',
    );
    c.mark('t', 0, '2');
    await c.flush();
    expect(calls).toBe(2);
  });

  it('commits after every batch when the interval is 0', async () => {
    const commits: string[] = [];
    const c = offsetCommitter(async (o) => void commits.push(o[0]!.offset), log, 0);
    c.mark('t', 0, '1');
    c.mark('t', 0, '2');
    await c.flush();
    expect(commits).toEqual(['1', '2']);
  });
});
