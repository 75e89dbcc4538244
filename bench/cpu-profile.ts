// The top self-time functions of a V8 CPU profile (`node --cpu-prof`, a .cpuprofile
// file), over a time window of it: the bench profiles the services for their whole life
// and looks only at the samples of the step it cares about. Pure; cpu-profile.test.ts.
//
// The profile's times are µs of the monotonic clock V8 and libuv both read on Linux
// (CLOCK_MONOTONIC), so a window taken with process.hrtime in another process lines up.

export interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
    hitCount?: number;
    children?: number[];
  }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  /** `function (file:line)`, or V8's pseudo-frames: (garbage collector), (program), (idle). */
  name: string;
  selfMs: number;
  /** Share of the busy (non-idle) samples in the window, %. */
  pct: number;
}

export interface ProfileSummary {
  /** Sampled time in the window, ms; busy = not (idle). */
  sampledMs: number;
  busyMs: number;
  top: SelfTime[];
}

/** A file name short enough for a table: the path from the repository's top directory. */
export function shortUrl(url: string): string {
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) return u.slice(nm + 1);
  const m = /\/(activation|bench|bin|cli|infra|ingest|processor|query|runtime|schemas)\/.*$/.exec(u);
  return m ? m[0].slice(1) : u;
}

function frameName(f: CpuProfile['nodes'][number]['callFrame']): string {
  const fn = f.functionName || '(anonymous)';
  if (!f.url) return fn; // (program), (idle), (garbage collector), (root), native builtins
  // tsx's transpiled sources report line 0 for every function: leave it out
  return f.lineNumber > 0 ? `${fn} (${shortUrl(f.url)}:${f.lineNumber + 1})` : `${fn} (${shortUrl(f.url)})`;
}

/**
 * The sampling interval: the median gap between samples, µs. Every sample counts this much,
 * not the gap after it: a thread the kernel preempted (a busy machine) is sampled once when
 * it runs again, and the wall-clock gap would charge the wait to whatever it was running.
 */
export function sampleInterval(p: CpuProfile): number {
  const gaps = p.timeDeltas.slice(1).filter((d) => d > 0);
  if (gaps.length === 0) return 0;
  gaps.sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)]!;
}

/** The profile-clock time of each sample, µs. */
function sampleTimes(p: CpuProfile): number[] {
  const times: number[] = [];
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    times.push(t);
  }
  return times;
}

/** Self time by function over [fromUs, toUs] (profile clock; the whole profile when omitted). */
export function topSelfTime(p: CpuProfile, top = 15, fromUs = -Infinity, toUs = Infinity): ProfileSummary {
  const names = new Map<number, string>();
  for (const n of p.nodes) names.set(n.id, frameName(n.callFrame));
  const times = sampleTimes(p);
  const gap = sampleInterval(p);
  const self = new Map<string, number>();
  let sampled = 0;
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const at = times[i]!;
    if (at < fromUs || at > toUs) continue;
    const name = names.get(p.samples[i]!) ?? '(unknown)';
    sampled += gap;
    if (name === '(idle)') idle += gap;
    self.set(name, (self.get(name) ?? 0) + gap);
  }
  const busy = sampled - idle;
  const ranked = [...self.entries()]
    .filter(([name]) => name !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, selfMs: us / 1000, pct: busy > 0 ? (us / busy) * 100 : 0 }));
  return { sampledMs: sampled / 1000, busyMs: busy / 1000, top: ranked };
}

/** Self time aggregated by file (package or source file): where a process's JS time goes. */
export function selfTimeByFile(p: CpuProfile, top = 10, fromUs = -Infinity, toUs = Infinity): SelfTime[] {
  const files = new Map<number, string>();
  for (const n of p.nodes)
    files.set(n.id, n.callFrame.url ? fileGroup(shortUrl(n.callFrame.url)) : n.callFrame.functionName);
  const by = new Map<string, number>();
  const times = sampleTimes(p);
  const gap = sampleInterval(p);
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    if (times[i]! < fromUs || times[i]! > toUs) continue;
    const f = files.get(p.samples[i]!) ?? '(unknown)';
    if (f === '(idle)') continue;
    busy += gap;
    by.set(f, (by.get(f) ?? 0) + gap);
  }
  return [...by.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, selfMs: us / 1000, pct: busy > 0 ? (us / busy) * 100 : 0 }));
}

/** node_modules/<pkg>/… → the package; anything else is its file. */
function fileGroup(path: string): string {
  const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  return m ? m[1]! : path;
}

export function renderProfile(name: string, s: ProfileSummary, byFile: SelfTime[]): string {
  const lines = [
    `${name}: ${s.busyMs.toFixed(0)} ms busy on the main thread of ${s.sampledMs.toFixed(0)} ms sampled`,
    ...s.top.map(
      (t) => `  ${t.selfMs.toFixed(0).padStart(6)} ms ${t.pct.toFixed(1).padStart(5)}%  ${t.name}`,
    ),
    '  by file/package:',
    ...byFile.map(
      (t) => `  ${t.selfMs.toFixed(0).padStart(6)} ms ${t.pct.toFixed(1).padStart(5)}%  ${t.name}`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
