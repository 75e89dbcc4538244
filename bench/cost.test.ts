import { describe, expect, it } from 'vitest';
import {
  bytesByTopic,
  type CpuSnapshot,
  costDetails,
  cpuSnapshot,
  idlePercent,
  parseProcStat,
  processCosts,
  processTree,
  renderStepCost,
  shortTopic,
  threadGroup,
  topicCosts,
} from './cost.ts';

// a real line (bash), utime 2 and stime 3 ticks at fields 14 and 15
const BASH =
  '13947 (bash) S 13946 13947 13947 0 -1 4194560 6775 319144 0 16 2 3 1610 146 20 0 1 0 7416034 ' +
  '5332992 976 18446744073709551615 94811871973376 94811872762781 140736508566480 0 0 0 65536 4 ' +
  '1132560123 1 0 0 17 1 0 0 0 0 0 94811872996080 94811873044324 94812782116864 140736508570462 ' +
  '140736508570477 140736508570477 140736508571626 0\n';

describe('/proc stat parsing', () => {
  it('reads pid, name, parent and user/system ticks', () => {
    expect(parseProcStat(BASH)).toEqual({
      pid: 13947,
      comm: 'bash',
      state: 'S',
      ppid: 13946,
      utime: 2,
      stime: 3,
    });
  });

  it('counts fields from the last parenthesis: a name may hold spaces and parentheses', () => {
    const line = BASH.replace('(bash)', '(a) b (c) 9 9)');
    const s = parseProcStat(line);
    expect(s.comm).toBe('a) b (c) 9 9');
    expect([s.ppid, s.utime, s.stime]).toEqual([13946, 2, 3]);
  });

  it('refuses what is not a stat line', () => {
    expect(() => parseProcStat('')).toThrow(/not a \/proc stat line/);
    expect(() => parseProcStat('12 (x) S')).toThrow(/not a \/proc stat line/);
  });

  it('finds a process and all its descendants, not its siblings', () => {
    const p = (pid: number, ppid: number) => ({ pid, ppid, comm: 'x', state: 'S', utime: 0, stime: 0 });
    const all = [p(1, 0), p(10, 1), p(11, 10), p(12, 11), p(13, 10), p(20, 1), p(21, 20)];
    expect(processTree(10, all).sort((a, b) => a - b)).toEqual([10, 11, 12, 13]);
    expect(processTree(21, all)).toEqual([21]);
    expect(processTree(99, all)).toEqual([99]); // gone: itself only, read as nothing later
  });

  it('groups a pool of numbered threads together', () => {
    expect(threadGroup('rdk:broker3')).toBe('rdk:broker#');
    expect(threadGroup('GC Thread#12')).toBe('GC Thread##');
    expect(threadGroup('libuv-worker')).toBe('libuv-worker');
  });

  it('reads this process and its threads from the real /proc', () => {
    // burn CPU until this process has used 50 ms more of it (the counters tick every 10 ms):
    // on a busy machine 60 ms of wall time can be less than one tick of CPU
    const before = cpuSnapshot([{ name: 'me', pid: process.pid }]);
    const used = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    const from = used();
    const deadline = performance.now() + 10_000;
    let x = 0;
    while (used() - from < 50 && performance.now() < deadline)
      for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + 1);
    const after = cpuSnapshot([
      { name: 'me', pid: process.pid },
      { name: 'nobody', pid: undefined },
    ]);
    expect(x).toBeGreaterThan(0);
    expect(after.ticks.me).toBeGreaterThan(before.ticks.me!);
    expect(after.ticks.nobody).toBeUndefined();
    const threadSum = Object.entries(after.threads)
      .filter(([k]) => k.startsWith('me\t'))
      .reduce((s, [, v]) => s + v, 0);
    // read a moment later than the process's own counters, which also keep exited threads'
    expect(threadSum).toBeGreaterThan(0);
    expect(threadSum).toBeLessThanOrEqual(after.ticks.me! + 2);
  });
});

const snap = (
  atMs: number,
  ticks: Record<string, number>,
  threads: Record<string, number> = {},
): CpuSnapshot => ({
  atMs,
  ticks,
  threads,
});

describe('per-event arithmetic', () => {
  it('divides each process CPU by the events, with % of a core over the window', () => {
    // 2 s window, 1,000 events; ingest used 50 ticks = 500 ms, broker 20 ticks = 200 ms
    const before = snap(
      1000,
      { ingest: 100, broker: 400, gen: 7 },
      { 'ingest\tnode': 80, 'ingest\trdk:broker#': 20 },
    );
    const after = snap(
      3000,
      { ingest: 150, broker: 420, gen: 17 },
      { 'ingest\tnode': 120, 'ingest\trdk:broker#': 30 },
    );
    const { processes, total, outside } = processCosts(before, after, 1000, {}, new Set(['gen']));
    const ingest = processes.find((p) => p.name === 'ingest')!;
    expect(ingest.cpuMs).toBe(500);
    expect(ingest.usPerEvent).toBe(500);
    expect(ingest.pctOfCore).toBe(25);
    expect(ingest.threads).toEqual([
      { group: 'node', cpuMs: 400 },
      { group: 'rdk:broker#', cpuMs: 100 },
    ]);
    expect(processes.find((p) => p.name === 'broker')!.usPerEvent).toBe(200);
    // the load generator is shown, not counted in the pipeline's total
    expect(outside.map((p) => [p.name, p.usPerEvent])).toEqual([['gen', 100]]);
    expect(total.usPerEvent).toBe(700);
    expect(total.pctOfCore).toBe(35);
    expect(total.usPerEventAboveIdle).toBeNull(); // no idle baseline given
  });

  it('takes the idle baseline off: what the events cost above polls and timers', () => {
    const idle = idlePercent(snap(0, { ingest: 0, broker: 0 }), snap(4000, { ingest: 40, broker: 80 }));
    expect(idle).toEqual({ ingest: 10, broker: 20 }); // 400 ms and 800 ms of 4 s
    const { processes, total } = processCosts(
      snap(0, { ingest: 0, broker: 0 }),
      snap(2000, { ingest: 60, broker: 60 }),
      200,
      idle,
    );
    // ingest: 600 ms - 10% × 2 s = 400 ms over 200 events = 2,000 µs each
    expect(processes.find((p) => p.name === 'ingest')!.usPerEventAboveIdle).toBe(2000);
    expect(processes.find((p) => p.name === 'broker')!.usPerEventAboveIdle).toBe(1000);
    expect(total.usPerEventAboveIdle).toBe(3000);
    expect(total.usPerEvent).toBe(6000);
  });

  it('skips a process missing from either snapshot, and gives NaN per event for no events', () => {
    const { processes, total } = processCosts(snap(0, { a: 1 }), snap(1000, { a: 3, b: 9 }), 0);
    expect(processes.map((p) => p.name)).toEqual(['a']);
    expect(total.usPerEvent).toBeNaN();
    expect(total.pctOfCore).toBe(2);
  });

  it('gives messages and bytes per event of the topics that moved, new topics from zero', () => {
    const before = {
      'cdp.events': { messages: 100, bytes: 10_000 },
      'cdp.dead-letter': { messages: 3, bytes: 300 },
      __consumer_offsets: { messages: 50, bytes: 5_000 },
    };
    const after = {
      'cdp.events': { messages: 1100, bytes: 610_000 },
      'cdp.dead-letter': { messages: 3, bytes: 300 },
      __consumer_offsets: { messages: 70, bytes: 7_600 },
      'cdp.activation-retry': { messages: 10, bytes: 2_000 },
    };
    expect(topicCosts(before, after, 1000)).toEqual([
      { topic: '__consumer_offsets', messagesPerEvent: 0.02, bytesPerEvent: 2.6, bytesPerMessage: 130 },
      { topic: 'cdp.activation-retry', messagesPerEvent: 0.01, bytesPerEvent: 2, bytesPerMessage: 200 },
      { topic: 'cdp.events', messagesPerEvent: 1, bytesPerEvent: 600, bytesPerMessage: 600 },
    ]);
  });

  it('leaves bytes unknown when the broker disk is not readable', () => {
    expect(topicCosts({ t: { messages: 0 } }, { t: { messages: 30 } }, 10)).toEqual([
      { topic: 't', messagesPerEvent: 3, bytesPerEvent: null, bytesPerMessage: null },
    ]);
  });

  it('sums partition directories by topic, topic names with dashes and dots included', () => {
    expect(
      bytesByTopic([
        { dir: 'p.cdp.segment-changes-0', logBytes: 10 },
        { dir: 'p.cdp.segment-changes-11', logBytes: 5 },
        { dir: '__consumer_offsets-3', logBytes: 7 },
        { dir: 'meta.properties', logBytes: 0 },
      ]),
    ).toEqual({ 'p.cdp.segment-changes': 15, __consumer_offsets: 7 });
    expect(shortTopic('bench-e2e-ab.cdp.events', 'bench-e2e-ab')).toBe('cdp.events');
    expect(shortTopic('__consumer_offsets', 'bench-e2e-ab')).toBe('__consumer_offsets');
  });

  it('renders the step and flattens it for the JSON report', () => {
    const { processes, total, outside } = processCosts(
      snap(0, { ingest: 0, gen: 0 }, { 'ingest\tnode': 0 }),
      snap(1000, { ingest: 30, gen: 10 }, { 'ingest\tnode': 30 }),
      1000,
      {},
      new Set(['gen']),
    );
    const step = {
      load: '1000/s',
      events: 1000,
      windowMs: 1000,
      loadAvg: 0.5,
      processes,
      total,
      outside,
      topics: topicCosts({}, { 'cdp.events': { messages: 1000, bytes: 500_000 } }, 1000),
    };
    const text = renderStepCost(step);
    expect(text).toContain('cost per event @ 1000/s: 1,000 events, 1.0 s (load average 0.50)');
    expect(renderStepCost({ ...step, requests: 400 })).toContain(
      '1,000 events in 400 requests (2.50 events each), 1.0 s',
    );
    expect(text).toMatch(/ingest\s+300\s+–\s+30\s+node 100%/);
    expect(text).toMatch(/total\s+300/);
    expect(text).toMatch(/gen\s+100/);
    expect(text).toMatch(/cdp\.events\s+1\.000\s+500\s+500/);
    expect(costDetails(step)).toMatchObject({
      'cpuUsPerEvent:ingest': 300,
      'cpuUsPerEvent:total': 300,
      'cpuUsPerEvent:gen': 100,
      'cpuMs:ingest:node': 300,
      'messagesPerEvent:cdp.events': 1,
      'bytesPerEvent:cdp.events': 500,
    });
  });
});
