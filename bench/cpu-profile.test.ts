import { describe, expect, it } from 'vitest';
import { type CpuProfile, renderProfile, selfTimeByFile, shortUrl, topSelfTime } from './cpu-profile.ts';

const frame = (functionName: string, url = '', lineNumber = -1) => ({ functionName, url, lineNumber });

// root → handle (ingest) → JSON.parse-ish leaf in a package; plus GC and idle
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 4, 5] },
    { id: 2, callFrame: frame('handle', 'file:///work/main/ingest/app.ts', 9), children: [3] },
    {
      id: 3,
      callFrame: frame('encode', 'file:///work/main/node_modules/kafkajs/src/protocol/encoder.js', 99),
    },
    { id: 4, callFrame: frame('(garbage collector)') },
    { id: 5, callFrame: frame('(idle)') },
  ],
  startTime: 1_000_000,
  endTime: 1_000_000 + 10_000,
  // samples at +1000, +2000, ... +10000 µs (1 ms apart)
  samples: [2, 3, 3, 4, 5, 5, 5, 2, 3, 5],
  timeDeltas: [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
};

describe('CPU profile self time', () => {
  it('ranks functions by self time and leaves idle out of the busy share', () => {
    const s = topSelfTime(profile);
    expect(s.sampledMs).toBe(10);
    expect(s.busyMs).toBe(6);
    expect(s.top).toEqual([
      { name: 'encode (node_modules/kafkajs/src/protocol/encoder.js:100)', selfMs: 3, pct: 50 },
      { name: 'handle (ingest/app.ts:10)', selfMs: 2, pct: (2 / 6) * 100 },
      { name: '(garbage collector)', selfMs: 1, pct: (1 / 6) * 100 },
    ]);
  });

  it('counts only the samples inside the window', () => {
    // samples 1..4 (at +1000..+4000 µs): handle, encode, encode, GC
    const s = topSelfTime(profile, 10, 1_001_000, 1_004_000);
    expect(s.busyMs).toBe(4);
    expect(s.top.map((t) => [t.name.split(' ')[0], t.selfMs])).toEqual([
      ['encode', 2],
      ['handle', 1],
      ['(garbage', 1],
    ]);
    expect(topSelfTime(profile, 10, 2_000_000, 3_000_000)).toEqual({ sampledMs: 0, busyMs: 0, top: [] });
  });

  it('counts samples, not the wall-clock gap after them (a preempted thread is not busy)', () => {
    // the third sample is followed by a 50 ms gap: the process was not running
    const stalled = { ...profile, timeDeltas: profile.timeDeltas.map((d, i) => (i === 3 ? 50_000 : d)) };
    const s = topSelfTime(stalled);
    expect(s.sampledMs).toBe(10);
    expect(s.top[0]).toMatchObject({ name: expect.stringMatching(/^encode/), selfMs: 3 });
  });

  it('keeps the top n', () => {
    expect(topSelfTime(profile, 1).top).toHaveLength(1);
  });

  it('groups self time by package or source file', () => {
    expect(selfTimeByFile(profile).map((t) => [t.name, t.selfMs])).toEqual([
      ['kafkajs', 3],
      ['ingest/app.ts', 2],
      ['(garbage collector)', 1],
    ]);
  });

  it('shortens file URLs to the repository path or the package path', () => {
    expect(shortUrl('file:///work/main/processor/segments.ts')).toBe('processor/segments.ts');
    expect(shortUrl('file:///x/node_modules/a/node_modules/ioredis/built/Redis.js')).toBe(
      'node_modules/ioredis/built/Redis.js',
    );
    expect(shortUrl('node:internal/streams/writable')).toBe('node:internal/streams/writable');
  });

  it('renders a process summary', () => {
    const text = renderProfile('ingest', topSelfTime(profile, 2), selfTimeByFile(profile, 1));
    expect(text).toContain('ingest: 6 ms busy on the main thread of 10 ms sampled');
    expect(text).toMatch(/3 ms\s+50\.0%\s+encode/);
    expect(text).toMatch(/by file\/package:\n\s+3 ms\s+\d+\.\d%\s+kafkajs/);
  });
});
