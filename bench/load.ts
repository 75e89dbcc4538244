// The load generator. It runs in its own Node process (forked from the benchmark), so the
// system under test and the client that loads it do not share an event loop.
//
//   http:  a closed loop of keep-alive HTTP/1.1 connections, one request in flight on each,
//          over raw sockets with pre-built request bytes (no HTTP client library on the
//          hot path); messageIds are made unique by overwriting digits in place.
//   kafka: `concurrency` loops each awaiting producer.send() of a pre-built message set,
//          through our runtime/kafka drivers, to show what the producer and broker take.
//
// Each run warms up first, then measures a window: completions inside the window count,
// latencies are recorded exactly (performance.now()), and throughput is also bucketed per
// interval to show how steady it was. The parent is told when the window starts and ends
// so it can sample CPU of the process under test.
import { fork } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ID_SLOT } from './events.ts';
import { cvPct, type LatencySummary, summarizeLatencies } from './stats.ts';

export interface HttpLoadSpec {
  kind: 'http';
  url: string;
  path: string;
  headers: Record<string, string>;
  /** Request bodies, cycled per connection; ID_SLOT placeholders are filled per request. */
  bodies: string[];
  /** Events per request (for events/s). */
  eventsPerRequest: number;
  connections: number;
  warmupMs: number;
  durationMs: number;
}

export interface KafkaLoadSpec {
  kind: 'kafka';
  driver: 'kafkajs' | 'rdkafka';
  brokers: string[];
  topic: string;
  /** Message sets, cycled per loop; one producer.send() each. */
  sets: Array<Array<{ key: string; value: string }>>;
  concurrency: number;
  lingerMs: number;
  warmupMs: number;
  durationMs: number;
}

export type LoadSpec = HttpLoadSpec | KafkaLoadSpec;

export interface LoadResult {
  /** Successful operations (2xx responses / acknowledged sends) completed in the window. */
  ops: number;
  /** ops × events per operation. */
  events: number;
  /** Failed operations in the window (non-2xx, socket errors, rejected sends). */
  errors: number;
  /** A few distinct error descriptions. */
  errorSamples: string[];
  /** Measured window, ms. */
  windowMs: number;
  opsPerSec: number;
  eventsPerSec: number;
  /** Latency of successful operations completed in the window, ms. */
  latency: LatencySummary;
  /** Ops per second in consecutive intervals of the window. */
  intervalRates: number[];
  /** Coefficient of variation of intervalRates, %. */
  jitterPct: number | null;
  /** CPU used by the load generator during the window, % of one core. */
  generatorCpuPct: number;
  /** Operations still in flight when the window closed (abandoned). */
  abandoned: number;
}

export type ChildMessage =
  | { type: 'window-start' }
  | { type: 'window-end' }
  | { type: 'result'; result: LoadResult }
  | { type: 'error'; message: string };

const INTERVAL_MS = 500;
/** How long in-flight operations may take to finish after the window before being dropped. */
const DRAIN_MS = 3000;

// ---------------------------------------------------------------------------------------
// parent side

export interface LoadHooks {
  onWindowStart?: () => void;
  onWindowEnd?: () => void;
}

/** Forks a load-generator process, runs `spec` in it, and returns what it measured. */
export function runLoad(spec: LoadSpec, hooks: LoadHooks = {}): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    // The child inherits execArgv, so it runs through tsx like this process does. Its
    // stdout goes to our stderr: stdout is reserved for the report.
    const child = fork(fileURLToPath(import.meta.url), ['--load-child'], {
      stdio: ['ignore', 2, 2, 'ipc'],
    });
    let settled = false;
    const deadline = setTimeout(
      () => finish(new Error(`load generator overran its deadline (${spec.kind})`)),
      spec.warmupMs + spec.durationMs + DRAIN_MS + 30_000,
    );
    const finish = (err: Error | null, result?: LoadResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      if (err) reject(err);
      else resolve(result!);
    };
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'window-start') hooks.onWindowStart?.();
      else if (m.type === 'window-end') hooks.onWindowEnd?.();
      else if (m.type === 'result') finish(null, m.result);
      else if (m.type === 'error') finish(new Error(`load generator: ${m.message}`));
    });
    child.on('error', (err) => finish(err));
    child.on('exit', (code, signal) =>
      finish(new Error(`load generator exited (${signal ?? code}) before reporting`)),
    );
    child.send(spec);
    activeChildren.add(child);
    child.on('exit', () => activeChildren.delete(child));
  });
}

const activeChildren = new Set<ReturnType<typeof fork>>();

/** Kills any running load generator (used when the benchmark is interrupted). */
export function killLoadGenerators(): void {
  for (const c of activeChildren) c.kill('SIGKILL');
}

// ---------------------------------------------------------------------------------------
// child side

interface Window {
  start: number;
  end: number;
}

class Recorder {
  ops = 0;
  errors = 0;
  readonly errorSamples = new Set<string>();
  latencies: Float64Array = new Float64Array(1 << 16);
  private n = 0;
  readonly buckets: number[];
  constructor(private readonly w: Window) {
    this.buckets = new Array(Math.max(1, Math.ceil((w.end - w.start) / INTERVAL_MS))).fill(0);
  }
  inWindow(t: number): boolean {
    return t >= this.w.start && t < this.w.end;
  }
  ok(startedAt: number, doneAt: number): void {
    if (!this.inWindow(doneAt)) return;
    this.ops++;
    const b = Math.floor((doneAt - this.w.start) / INTERVAL_MS);
    if (b < this.buckets.length) this.buckets[b]!++;
    if (this.n === this.latencies.length) {
      const bigger = new Float64Array(this.n * 2);
      bigger.set(this.latencies);
      this.latencies = bigger;
    }
    this.latencies[this.n++] = doneAt - startedAt;
  }
  fail(doneAt: number, what: string): void {
    if (!this.inWindow(doneAt)) return;
    this.errors++;
    if (this.errorSamples.size < 5) this.errorSamples.add(what);
  }
  samples(): Float64Array {
    return this.latencies.subarray(0, this.n);
  }
}

function summarize(
  rec: Recorder,
  w: Window,
  eventsPerOp: number,
  cpuMicros: number,
  abandoned: number,
): LoadResult {
  const windowMs = w.end - w.start;
  // the last bucket may be partial; rate it over its own length
  const rates = rec.buckets.map((c, i) => {
    const len = Math.min(INTERVAL_MS, windowMs - i * INTERVAL_MS);
    return len > 0 ? (c * 1000) / len : 0;
  });
  return {
    ops: rec.ops,
    events: rec.ops * eventsPerOp,
    errors: rec.errors,
    errorSamples: [...rec.errorSamples],
    windowMs,
    opsPerSec: (rec.ops * 1000) / windowMs,
    eventsPerSec: (rec.ops * eventsPerOp * 1000) / windowMs,
    latency: summarizeLatencies(rec.samples()),
    intervalRates: rates,
    jitterPct: cvPct(rates),
    generatorCpuPct: cpuMicros / 10 / windowMs,
    abandoned,
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Windows of the run, starting now; tells the parent when the measured window opens and closes. */
function plan(warmupMs: number, durationMs: number): { w: Window; cpu: () => number } {
  const now = performance.now();
  const w = { start: now + warmupMs, end: now + warmupMs + durationMs };
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  let cpuMicros = 0;
  setTimeout(() => {
    cpuAtStart = process.cpuUsage();
    process.send?.({ type: 'window-start' } satisfies ChildMessage);
  }, warmupMs);
  setTimeout(() => {
    const d = process.cpuUsage(cpuAtStart);
    cpuMicros = d.user + d.system;
    process.send?.({ type: 'window-end' } satisfies ChildMessage);
  }, warmupMs + durationMs);
  return { w, cpu: () => cpuMicros };
}

/** Writes `value` as zero-padded decimal digits into buf[at, at+width). */
function writeDigits(buf: Buffer, at: number, width: number, value: number): void {
  let v = value;
  for (let i = at + width - 1; i >= at; i--) {
    buf[i] = 48 + (v % 10);
    v = Math.floor(v / 10);
  }
}

interface PreparedRequest {
  bytes: Buffer;
  slots: number[];
}

function prepareRequests(spec: HttpLoadSpec): PreparedRequest[] {
  const u = new URL(spec.url);
  const slot = Buffer.from(ID_SLOT);
  return spec.bodies.map((body) => {
    const b = Buffer.from(body);
    const head =
      `POST ${spec.path} HTTP/1.1\r\nhost: ${u.host}\r\nconnection: keep-alive\r\n` +
      Object.entries(spec.headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('') +
      `content-length: ${b.length}\r\n\r\n`;
    const bytes = Buffer.concat([Buffer.from(head, 'latin1'), b]);
    const slots: number[] = [];
    for (let at = bytes.indexOf(slot); at >= 0; at = bytes.indexOf(slot, at + slot.length)) slots.push(at);
    return { bytes, slots };
  });
}

const CRLF2 = Buffer.from('\r\n\r\n');

export interface ParsedResponse {
  /** Bytes the response takes at the head of the buffer. */
  length: number;
  status: number;
  /** The server will close the connection after it. */
  close: boolean;
}

/** The complete HTTP/1.1 response at the head of `buf`, or null while more bytes are needed. */
export function parseResponse(buf: Buffer): ParsedResponse | null {
  const headEnd = buf.indexOf(CRLF2);
  if (headEnd < 0) return null;
  const head = buf.toString('latin1', 0, headEnd).toLowerCase();
  const status = Number.parseInt(head.slice(9, 12), 10);
  const close = head.includes('\r\nconnection: close');
  const cl = head.indexOf('\r\ncontent-length:');
  let length: number;
  if (cl >= 0) {
    const eol = head.indexOf('\r\n', cl + 2);
    length = headEnd + 4 + Number.parseInt(head.slice(cl + 17, eol < 0 ? undefined : eol).trim(), 10);
  } else if (head.includes('\r\ntransfer-encoding: chunked')) {
    const end = buf.indexOf('\r\n0\r\n\r\n', headEnd);
    if (end < 0) return null;
    length = end + 7;
  } else length = headEnd + 4; // no body (e.g. 204)
  return buf.length >= length ? { length, status, close } : null;
}

async function runHttp(spec: HttpLoadSpec): Promise<LoadResult> {
  const u = new URL(spec.url);
  const host = u.hostname;
  const port = Number(u.port);
  const templates = prepareRequests(spec);
  const { w, cpu } = plan(spec.warmupMs, spec.durationMs);
  const rec = new Recorder(w);
  let inFlight = 0;
  let allDone: () => void = () => {};
  const done = new Promise<void>((r) => {
    allDone = r;
  });
  const sockets = new Set<Socket>();

  const startConnection = (conn: number) => {
    // each connection owns copies of the request bytes, so it can fill slots in place
    const mine = templates.map((t) => ({ bytes: Buffer.from(t.bytes), slots: t.slots }));
    let next = conn % mine.length;
    // sequences start from the clock so that runs of the same benchmark do not repeat ids
    let seq = (Date.now() % 1e9) * 1000;
    let startedAt = 0;
    let pending: Buffer | null = null;
    let busy = false;
    let socket: Socket;

    const send = () => {
      if (performance.now() >= w.end) {
        if (inFlight === 0) allDone();
        return;
      }
      const req = mine[next]!;
      next = (next + 1) % mine.length;
      seq++;
      for (const at of req.slots) {
        writeDigits(req.bytes, at, 4, conn);
        writeDigits(req.bytes, at + 4, 12, seq);
      }
      busy = true;
      inFlight++;
      startedAt = performance.now();
      socket.write(req.bytes);
    };
    const complete = (ok: boolean, what: string) => {
      const t = performance.now();
      busy = false;
      inFlight--;
      if (ok) rec.ok(startedAt, t);
      else rec.fail(t, what);
    };
    const open = () => {
      pending = null;
      socket = connect({ host, port, noDelay: true });
      sockets.add(socket);
      socket.on('connect', send);
      socket.on('data', (chunk: Buffer) => {
        pending = pending ? Buffer.concat([pending, chunk]) : chunk;
        const res = parseResponse(pending);
        if (!res) return;
        pending = res.length === pending.length ? null : pending.subarray(res.length);
        complete(res.status >= 200 && res.status < 300, `HTTP ${res.status}`);
        if (res.close) socket.destroy();
        else send();
      });
      socket.on('error', (err) => {
        if (busy) complete(false, `socket: ${err.message}`);
      });
      socket.on('close', () => {
        sockets.delete(socket);
        if (busy) complete(false, 'connection closed mid-request');
        if (performance.now() < w.end) setTimeout(open, 10);
        else if (inFlight === 0) allDone();
      });
    };
    open();
  };

  for (let c = 0; c < spec.connections; c++) startConnection(c);
  await sleep(spec.warmupMs + spec.durationMs);
  await Promise.race([done, sleep(DRAIN_MS)]);
  const abandoned = inFlight;
  for (const s of sockets) s.destroy();
  return summarize(rec, w, spec.eventsPerRequest, cpu(), abandoned);
}

async function runKafka(spec: KafkaLoadSpec): Promise<LoadResult> {
  const { createKafka } = await import('../runtime/kafka/index.ts');
  const { pino } = await import('pino');
  const log = pino({ level: 'warn' }, pino.destination(2));
  const producer = createKafka(
    { brokers: spec.brokers, driver: spec.driver, clientId: 'cdp-bench' },
    log,
  ).producer({ lingerMs: spec.lingerMs });
  await producer.connect();
  const { w, cpu } = plan(spec.warmupMs, spec.durationMs);
  const rec = new Recorder(w);
  const perOp = spec.sets[0]?.length ?? 1;
  let inFlight = 0;
  const loop = async (i: number) => {
    let next = i % spec.sets.length;
    while (performance.now() < w.end) {
      const set = spec.sets[next]!;
      next = (next + 1) % spec.sets.length;
      const t0 = performance.now();
      inFlight++;
      try {
        await producer.send(spec.topic, set);
        rec.ok(t0, performance.now());
      } catch (err) {
        rec.fail(performance.now(), (err as Error).message);
        await sleep(50);
      } finally {
        inFlight--;
      }
    }
  };
  const loops = Promise.all(Array.from({ length: spec.concurrency }, (_, i) => loop(i)));
  await sleep(spec.warmupMs + spec.durationMs);
  await Promise.race([loops, sleep(DRAIN_MS)]);
  const abandoned = inFlight;
  const result = summarize(rec, w, perOp, cpu(), abandoned);
  await Promise.race([producer.disconnect().catch(() => {}), sleep(5000)]);
  return result;
}

if (process.argv.includes('--load-child') && process.send) {
  // the benchmark went away: do not linger
  process.on('disconnect', () => process.exit(1));
  process.once('message', (spec: LoadSpec) => {
    const reply = (m: ChildMessage) => process.send!(m, () => process.exit(0));
    (spec.kind === 'http' ? runHttp(spec) : runKafka(spec)).then(
      (result) => reply({ type: 'result', result }),
      (err: unknown) =>
        reply({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
    );
  });
}
