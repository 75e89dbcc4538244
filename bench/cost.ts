// Cost per event, stage by stage (issue #26): the CPU every process of the pipeline used
// in a measured window, read from /proc (Linux), and the Kafka traffic of every topic
// (messages from the end offsets, bytes from the broker's log segments on disk), both
// divided by the events of the window. The parsing and the arithmetic are pure and tested
// (cost.test.ts); the readers below them only collect the numbers.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { formatValue, renderGrid } from './report.ts';

// ---------------------------------------------------------------------------------- /proc

export interface ProcStat {
  pid: number;
  /** The command (process) or thread name, as the kernel keeps it (15 characters at most). */
  comm: string;
  state: string;
  ppid: number;
  /** CPU time in clock ticks (CLK_TCK, 100 a second on Linux): user, system. */
  utime: number;
  stime: number;
}

/**
 * Parses a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat line. The name is in
 * parentheses and may itself contain spaces and parentheses, so the fields are counted
 * from the last ')'. Fields (proc(5)): 1 pid, 2 comm, 3 state, 4 ppid, 14 utime, 15 stime.
 */
export function parseProcStat(line: string): ProcStat {
  const open = line.indexOf('(');
  const close = line.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`not a /proc stat line: ${line.slice(0, 80)}`);
  const pid = Number(line.slice(0, open).trim());
  const rest = line
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  // rest[0] is field 3 (state): field n is rest[n - 3]
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  const ppid = Number(rest[4 - 3]);
  if (!Number.isInteger(pid) || !Number.isFinite(utime) || !Number.isFinite(stime) || !Number.isFinite(ppid))
    throw new Error(`not a /proc stat line: ${line.slice(0, 80)}`);
  return { pid, comm: line.slice(open + 1, close), state: rest[0] ?? '?', ppid, utime, stime };
}

/** The pid and every descendant of it in a process list (pure). */
export function processTree(root: number, all: readonly ProcStat[]): number[] {
  const children = new Map<number, number[]>();
  for (const p of all) {
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const out: number[] = [];
  const todo = [root];
  const seen = new Set<number>();
  while (todo.length > 0) {
    const pid = todo.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * A thread's name without its number, so a pool's threads count together: "rdk:broker3" →
 * "rdk:broker#", "GC Thread#1" → "GC Thread#", "libuv-worker" stays.
 */
export function threadGroup(comm: string): string {
  return comm.replace(/\d+/g, '#');
}

function readStat(path: string): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(path, 'latin1'));
  } catch {
    return undefined; // gone in between, or not Linux
  }
}

function allProcesses(): ProcStat[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: ProcStat[] = [];
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    const s = readStat(`/proc/${n}/stat`);
    if (s) out.push(s);
  }
  return out;
}

/** A process of the pipeline to account for; `tree`: its descendants too (a wrapper's child). */
export interface Tracked {
  name: string;
  pid: number | undefined;
  tree?: boolean;
}

/** CPU ticks by process name, and by `name\tthread group` for its live threads. */
export interface CpuSnapshot {
  atMs: number;
  ticks: Record<string, number>;
  threads: Record<string, number>;
}

/**
 * Reads the CPU ticks of the tracked processes (and of their threads: what a JVM's GC or a
 * librdkafka broker thread costs shows by name). A thread or child that exits between two
 * snapshots takes its ticks with it; the pipeline's are long-lived.
 */
export function cpuSnapshot(tracked: readonly Tracked[]): CpuSnapshot {
  const all = tracked.some((t) => t.tree) ? allProcesses() : [];
  const ticks: Record<string, number> = {};
  const threads: Record<string, number> = {};
  for (const t of tracked) {
    if (t.pid === undefined) continue;
    const pids = t.tree ? processTree(t.pid, all) : [t.pid];
    let sum = 0;
    let any = false;
    for (const pid of pids) {
      // the process's own counters include its threads that have exited since (a thread's
      // do not), so the total comes from them and the threads only split it
      const own = readStat(`/proc/${pid}/stat`);
      if (!own) continue;
      any = true;
      sum += own.utime + own.stime;
      let tids: string[];
      try {
        tids = readdirSync(`/proc/${pid}/task`);
      } catch {
        continue;
      }
      for (const tid of tids) {
        const s = readStat(`/proc/${pid}/task/${tid}/stat`);
        if (!s) continue;
        const k = `${t.name}\t${threadGroup(s.comm)}`;
        threads[k] = (threads[k] ?? 0) + s.utime + s.stime;
      }
    }
    if (any) ticks[t.name] = sum;
  }
  return { atMs: performance.now(), ticks, threads };
}

/** Clock ticks a second for /proc's CPU times: 100 on every Linux this runs on (USER_HZ). */
export const CLK_TCK = 100;

// ---------------------------------------------------------------------------- Kafka bytes

/**
 * Kafka keeps each partition in a directory `<topic>-<partition>`; sums the sizes of the
 * `.log` segment files by topic (pure: takes the directory listing with sizes).
 */
export function bytesByTopic(dirs: ReadonlyArray<{ dir: string; logBytes: number }>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { dir, logBytes } of dirs) {
    const m = /^(.+)-(\d+)$/.exec(dir);
    if (!m) continue; // meta files, the cluster metadata log is __cluster_metadata-0 (kept: it counts)
    out[m[1]!] = (out[m[1]!] ?? 0) + logBytes;
  }
  return out;
}

/** Bytes of the log segments by topic under a broker's log.dirs (empty when unreadable). */
export function logBytesOnDisk(logDir: string): Record<string, number> {
  let dirs: string[];
  try {
    dirs = readdirSync(logDir);
  } catch {
    return {};
  }
  const sized = dirs.map((dir) => {
    let logBytes = 0;
    try {
      for (const f of readdirSync(join(logDir, dir)))
        if (f.endsWith('.log')) logBytes += statSync(join(logDir, dir, f)).size;
    } catch {}
    return { dir, logBytes };
  });
  return bytesByTopic(sized);
}

// ------------------------------------------------------------------------------ arithmetic

export interface TopicCounts {
  /** Sum over partitions of the end offset: messages ever written. */
  messages: number;
  /** Bytes of its log segments on disk; undefined when the broker's disk is not readable here. */
  bytes?: number;
}

export interface ProcessCost {
  name: string;
  cpuMs: number;
  usPerEvent: number;
  /** Share of one core over the window, %. */
  pctOfCore: number;
  /** µs per event above what the process uses idle (its idle % core × the window), when known. */
  usPerEventAboveIdle: number | null;
  /** The busiest thread groups, CPU ms each, largest first. */
  threads: Array<{ group: string; cpuMs: number }>;
}

export interface TopicCost {
  topic: string;
  messagesPerEvent: number;
  bytesPerEvent: number | null;
  /** Bytes per message on disk (record batch overhead included), when known. */
  bytesPerMessage: number | null;
}

export interface StepCost {
  load: string;
  events: number;
  /** The HTTP requests that carried them, when known. */
  requests?: number;
  windowMs: number;
  /** 1-minute load average at the end of the window: other work on the machine. */
  loadAvg: number;
  processes: ProcessCost[];
  /** The pipeline's processes together. */
  total: ProcessCost;
  /** Measured beside the pipeline, not in its total: the load generator. */
  outside: ProcessCost[];
  topics: TopicCost[];
}

const ms = (ticks: number) => (ticks * 1000) / CLK_TCK;

/**
 * CPU per event of every process between two snapshots. `idlePct` (% of a core each process
 * used with no load) gives the figure above idle too.
 */
export function processCosts(
  before: CpuSnapshot,
  after: CpuSnapshot,
  events: number,
  idlePct: Record<string, number> = {},
  /** Processes shown but not part of the pipeline's total (the load generator). */
  notInTotal: ReadonlySet<string> = new Set(),
): { processes: ProcessCost[]; total: ProcessCost; outside: ProcessCost[] } {
  const windowMs = after.atMs - before.atMs;
  const perEvent = (cpuMs: number) => (events > 0 ? (cpuMs * 1000) / events : NaN);
  const pct = (cpuMs: number) => (windowMs > 0 ? (cpuMs / windowMs) * 100 : NaN);
  const aboveIdle = (cpuMs: number, idle: number | undefined) =>
    idle === undefined || events <= 0 ? null : ((cpuMs - (idle / 100) * windowMs) * 1000) / events;
  const processes: ProcessCost[] = [];
  for (const [name, t1] of Object.entries(after.ticks)) {
    const t0 = before.ticks[name];
    if (t0 === undefined) continue;
    const cpuMs = ms(t1 - t0);
    const threads = Object.entries(after.threads)
      .filter(([k]) => k.startsWith(`${name}\t`))
      .map(([k, v]) => ({ group: k.slice(name.length + 1), cpuMs: ms(v - (before.threads[k] ?? 0)) }))
      .filter((t) => t.cpuMs > 0)
      .sort((a, b) => b.cpuMs - a.cpuMs);
    processes.push({
      name,
      cpuMs,
      usPerEvent: perEvent(cpuMs),
      pctOfCore: pct(cpuMs),
      usPerEventAboveIdle: aboveIdle(cpuMs, idlePct[name]),
      threads,
    });
  }
  const inside = processes.filter((p) => !notInTotal.has(p.name));
  const cpuMs = inside.reduce((s, p) => s + p.cpuMs, 0);
  const idleAll = inside.every((p) => idlePct[p.name] !== undefined)
    ? inside.reduce((s, p) => s + idlePct[p.name]!, 0)
    : undefined;
  return {
    processes: inside,
    outside: processes.filter((p) => notInTotal.has(p.name)),
    total: {
      name: 'total',
      cpuMs,
      usPerEvent: perEvent(cpuMs),
      pctOfCore: pct(cpuMs),
      usPerEventAboveIdle: aboveIdle(cpuMs, idleAll),
      threads: [],
    },
  };
}

/** % of a core each process used between two snapshots (the idle baseline). */
export function idlePercent(before: CpuSnapshot, after: CpuSnapshot): Record<string, number> {
  const { processes, outside } = processCosts(before, after, 0);
  return Object.fromEntries([...processes, ...outside].map((p) => [p.name, p.pctOfCore]));
}

/** Messages and bytes per event of every topic that moved (or every topic, `all`). */
export function topicCosts(
  before: Record<string, TopicCounts>,
  after: Record<string, TopicCounts>,
  events: number,
): TopicCost[] {
  const out: TopicCost[] = [];
  for (const [topic, a] of Object.entries(after)) {
    const b = before[topic] ?? { messages: 0, bytes: a.bytes === undefined ? undefined : 0 };
    const messages = a.messages - b.messages;
    const bytes = a.bytes !== undefined && b.bytes !== undefined ? a.bytes - b.bytes : null;
    if (messages === 0 && !bytes) continue;
    out.push({
      topic,
      messagesPerEvent: events > 0 ? messages / events : NaN,
      bytesPerEvent: bytes === null || events <= 0 ? null : bytes / events,
      bytesPerMessage: bytes === null || messages <= 0 ? null : bytes / messages,
    });
  }
  return out.sort((x, y) => x.topic.localeCompare(y.topic));
}

/** A topic's name without the deployment's prefix ("bench-e2e-ab12.cdp.events" → "cdp.events"). */
export function shortTopic(topic: string, prefix: string): string {
  return topic.startsWith(`${prefix}.`) ? topic.slice(prefix.length + 1) : topic;
}

// ------------------------------------------------------------------------------ rendering

const n1 = (v: number | null) => (v === null || !Number.isFinite(v) ? '–' : formatValue(v, 'µs'));

/** The step's budget as two small tables: CPU per process, then Kafka per topic. */
export function renderStepCost(s: StepCost): string {
  const head =
    `cost per event @ ${s.load}: ${s.events.toLocaleString('en-US')} events` +
    (s.requests
      ? ` in ${s.requests.toLocaleString('en-US')} requests (${(s.events / s.requests).toFixed(2)} events each)`
      : '') +
    `, ${(s.windowMs / 1000).toFixed(1)} s` +
    ` (load average ${s.loadAvg.toFixed(2)})\n`;
  const cpuCols = [
    { title: 'process', right: false },
    { title: 'CPU µs/event', right: true },
    { title: 'above idle', right: true },
    { title: '% core', right: true },
    { title: 'busiest threads (% of its CPU)', right: false },
  ];
  const row = (p: ProcessCost) => [
    p.name,
    n1(p.usPerEvent),
    n1(p.usPerEventAboveIdle),
    Number.isFinite(p.pctOfCore) ? p.pctOfCore.toFixed(0) : '–',
    p.threads
      .slice(0, 4)
      .map((t) => `${t.group} ${p.cpuMs > 0 ? Math.round((t.cpuMs / p.cpuMs) * 100) : 0}%`)
      .join(', '),
  ];
  const cpu = renderGrid(
    cpuCols,
    [...s.processes.map(row), row(s.total), ...s.outside.map(row)],
    [...s.processes.map(() => 'p'), 't', ...s.outside.map(() => 'o')],
  );
  const topicCols = [
    { title: 'topic', right: false },
    { title: 'messages/event', right: true },
    { title: 'bytes/event', right: true },
    { title: 'bytes/message', right: true },
  ];
  const topics = renderGrid(
    topicCols,
    s.topics.map((t) => [
      t.topic,
      t.messagesPerEvent.toFixed(3),
      t.bytesPerEvent === null ? '–' : Math.round(t.bytesPerEvent).toLocaleString('en-US'),
      t.bytesPerMessage === null ? '–' : Math.round(t.bytesPerMessage).toLocaleString('en-US'),
    ]),
    s.topics.map(() => 't'),
  );
  return `${head}${cpu}${topics}`;
}

/** The step's figures for a measurement's details (JSON report). */
export function costDetails(s: StepCost): Record<string, number> {
  const d: Record<string, number> = {
    'cost:events': s.events,
    ...(s.requests ? { 'cost:requests': s.requests } : {}),
    'cost:windowMs': s.windowMs,
    'cost:loadAvg': s.loadAvg,
  };
  for (const p of [...s.processes, s.total, ...s.outside]) {
    d[`cpuUsPerEvent:${p.name}`] = p.usPerEvent;
    if (p.usPerEventAboveIdle !== null) d[`cpuUsPerEventAboveIdle:${p.name}`] = p.usPerEventAboveIdle;
    for (const t of p.threads) d[`cpuMs:${p.name}:${t.group}`] = t.cpuMs;
  }
  for (const t of s.topics) {
    d[`messagesPerEvent:${t.topic}`] = t.messagesPerEvent;
    if (t.bytesPerEvent !== null) d[`bytesPerEvent:${t.topic}`] = t.bytesPerEvent;
  }
  return d;
}
