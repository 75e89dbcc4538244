// Ingest cost per event at a fixed moderate rate (issue #26): single-event /v1/track requests
// at `--rate` per second over keep-alive connections, against `cdp start ingest` in a process
// of its own, with the CPU of that process and of the Kafka broker read from /proc over the
// measured window, divided by the events acknowledged in it. Variants (checkouts of this
// repository, e.g. one unpacked from an earlier commit with `git archive`) are measured
// interleaved, in pairs, so the drifting load of a shared machine hits them alike.
//
//   tsx bench/ingest-rate.ts [--variants=dirA,dirB] [--rate=1000] [--seconds=15] [--pairs=2]
//                            [--connections=16] [--env=NAME=value,...]
//
// A variant may carry its own environment after a '#' (';' between): `--variants=.#CDP_INGEST_LINGER_MS=5,.`;
// NODE_ARGS there adds node options (`.#NODE_ARGS=--cpu-prof --cpu-prof-dir=/tmp/p`).
// --broker-settings='num.io.threads=2;num.network.threads=1' starts a second broker with these
// settings; variants with BROKER=alt in their environment use it (`--variants=.,.#BROKER=alt`).
// Kafka and Redis are started in a temporary directory unless KAFKA_BROKERS / REDIS_URL are
// set (then the broker's CPU is not measured).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startKafka } from '../infra/local/kafka.ts';
import { freePort } from '../infra/local/ports.ts';
import { startLocalStack } from '../infra/local/stack.ts';
import { cpuSnapshot, type Tracked } from './cost.ts';
import { ID_SLOT, singleBodies } from './events.ts';

interface Args {
  variants: Array<{ dir: string; env: Record<string, string>; label: string }>;
  rate: number;
  seconds: number;
  warmup: number;
  pairs: number;
  connections: number;
  /** Settings of a second broker, used by variants with BROKER=alt in their environment. */
  brokerSettings?: Record<string, string>;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string) =>
    argv
      .find((a) => a.startsWith(`--${name}=`))
      ?.split('=')
      .slice(1)
      .join('=');
  const variants = (get('variants') ?? '.').split(',').map((v) => {
    const [dir, envPart] = v.split('#');
    const env: Record<string, string> = {};
    for (const kv of (envPart ?? '').split(';').filter(Boolean)) {
      const i = kv.indexOf('=');
      env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    return { dir: resolve(dir!), env, label: v };
  });
  return {
    variants,
    rate: Number(get('rate') ?? 1000),
    seconds: Number(get('seconds') ?? 15),
    warmup: Number(get('warmup') ?? 4),
    pairs: Number(get('pairs') ?? 2),
    connections: Number(get('connections') ?? 16),
    ...(get('broker-settings')
      ? {
          brokerSettings: Object.fromEntries(
            get('broker-settings')!
              .split(';')
              .filter(Boolean)
              .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
          ),
        }
      : {}),
  };
}

/** One keep-alive HTTP/1.1 connection with one request in flight at a time. */
class Conn {
  private buf: Buffer = Buffer.alloc(0);
  private pending: ((status: number) => void) | undefined;
  busy = false;
  constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d) => this.onData(d));
  }
  static open(port: number): Promise<Conn> {
    return new Promise((res, rej) => {
      const s = connect(port, '127.0.0.1', () => res(new Conn(s)));
      s.once('error', rej);
    });
  }
  send(bytes: Buffer): Promise<number> {
    this.busy = true;
    return new Promise((res) => {
      this.pending = (status) => {
        this.busy = false;
        res(status);
      };
      this.socket.write(bytes);
    });
  }
  private onData(d: Buffer) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString('latin1');
      const m = /content-length:\s*(\d+)/i.exec(head);
      const len = m ? Number(m[1]) : 0;
      if (this.buf.length < end + 4 + len) return;
      const status = Number(head.slice(9, 12));
      this.buf = this.buf.subarray(end + 4 + len);
      const p = this.pending;
      this.pending = undefined;
      p?.(status);
    }
  }
  close() {
    this.socket.destroy();
  }
}

function requestBytes(body: string, auth: string): Buffer {
  const b = Buffer.from(body);
  return Buffer.concat([
    Buffer.from(
      `POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${b.length}\r\n\r\n`,
    ),
    b,
  ]);
}

interface Result {
  label: string;
  pair: number;
  events: number;
  errors: number;
  windowS: number;
  ingestUs: number;
  brokerUs: number | null;
  idleIngestPct: number;
  idleBrokerPct: number | null;
  p50: number;
  p99: number;
  /** The busiest threads of each process in the window, µs per event. */
  threads: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startIngest(
  dir: string,
  env: Record<string, string>,
  stack: { kafkaBrokers: string; redisUrl: string },
  tag: string,
): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  // NODE_ARGS (a variant's environment): extra node options, e.g. --cpu-prof --cpu-prof-dir=/tmp/p
  const { NODE_ARGS, BROKER: _broker, ...rest } = env;
  const nodeArgs = (NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(
    process.execPath,
    ['--max-semi-space-size=64', ...nodeArgs, 'bin/cdp.js', 'start', 'ingest'],
    {
      cwd: dir,
      env: {
        ...process.env,
        NODE_ENV: 'development',
        LOG_LEVEL: 'warn',
        KAFKA_BROKERS: stack.kafkaBrokers,
        REDIS_URL: stack.redisUrl,
        CDP_TOPIC_PREFIX: tag,
        CDP_REDIS_PREFIX: tag,
        CDP_TOPIC_PARTITIONS: '8',
        CDP_INGEST_HOST: '127.0.0.1',
        CDP_INGEST_PORT: String(port),
        CDP_INGEST_RATE_LIMIT: '0',
        ...rest,
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  return { child, port };
}

async function waitAccepting(port: number, req: Buffer, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    try {
      const c = await Conn.open(port);
      last = await c.send(req);
      c.close();
      if (last === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(300);
  }
  throw new Error(`ingest on port ${port} did not answer 200 within ${timeoutMs} ms (last ${last})`);
}

async function measureOne(
  a: Args,
  v: Args['variants'][number],
  pair: number,
  stack: { kafkaBrokers: string; redisUrl: string; pids: { kafka?: number } },
  nonce: string,
): Promise<Result> {
  const tag = `rate-${nonce}-${pair}-${a.variants.indexOf(v)}`;
  const auth = `Basic ${Buffer.from('dev-write-key:').toString('base64')}`;
  const bodies = singleBodies(64, tag).map((b) => requestBytes(b, auth));
  const { child, port } = await startIngest(v.dir, v.env, stack, tag);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    const first = Buffer.from(bodies[0]!);
    first.write('0'.repeat(16), first.indexOf(ID_SLOT));
    await waitAccepting(port, first);
    const tracked: Tracked[] = [
      { name: 'ingest', pid: child.pid, tree: true },
      { name: 'broker', pid: stack.pids.kafka, tree: true },
    ];
    // idle cost: what the process spends with nothing to do (pollers, timers)
    await sleep(2000);
    const i0 = cpuSnapshot(tracked);
    await sleep(5000);
    const i1 = cpuSnapshot(tracked);
    const idleS = (i1.atMs - i0.atMs) / 1000;
    const idle = (n: string) => (i1.ticks[n]! - i0.ticks[n]!) / idleS; // ticks/s = % of a core

    const conns = await Promise.all(Array.from({ length: a.connections }, () => Conn.open(port)));
    let seq = 0;
    let acked = 0;
    let errors = 0;
    let measuring = false;
    const lat: number[] = [];
    const backlog: number[] = [];
    const fire = (conn: Conn, due: number) => {
      const req = Buffer.from(bodies[seq % bodies.length]!);
      req.write(String(seq++).padStart(16, '0'), req.indexOf(ID_SLOT));
      conn.send(req).then((status) => {
        if (measuring) {
          if (status === 200) {
            acked++;
            lat.push(performance.now() - due);
          } else errors++;
        }
        const next = backlog.shift();
        if (next !== undefined) fire(conn, next);
      });
    };
    const total = a.warmup + a.seconds;
    const start = performance.now();
    let sent = 0;
    let s0: ReturnType<typeof cpuSnapshot> | undefined;
    let s1: ReturnType<typeof cpuSnapshot> | undefined;
    while (performance.now() - start < total * 1000) {
      const now = performance.now();
      if (!measuring && now - start >= a.warmup * 1000) {
        measuring = true;
        s0 = cpuSnapshot(tracked);
      }
      const due = Math.floor(((now - start) / 1000) * a.rate);
      for (; sent < due; sent++) {
        const at = start + (sent / a.rate) * 1000;
        const idleConn = conns.find((c) => !c.busy);
        if (idleConn) fire(idleConn, at);
        else backlog.push(at);
      }
      await sleep(1);
    }
    s1 = cpuSnapshot(tracked);
    measuring = false;
    for (const c of conns) c.close();
    const windowS = (s1.atMs - s0!.atMs) / 1000;
    const used = (n: string) => (s1!.ticks[n]! - s0!.ticks[n]!) * 10_000; // ticks → µs
    lat.sort((x, y) => x - y);
    const threads = Object.entries(s1.threads)
      .map(([k, t1]) => [k, ((t1 - (s0!.threads[k] ?? 0)) * 10_000) / acked] as const)
      .sort((x, y) => y[1] - x[1])
      .slice(0, 6)
      .map(([k, us]) => `${k.replace('\t', ':')} ${us.toFixed(0)}`)
      .join(', ');
    return {
      label: v.label,
      pair,
      events: acked,
      errors,
      windowS,
      ingestUs: used('ingest') / acked,
      brokerUs: stack.pids.kafka ? used('broker') / acked : null,
      idleIngestPct: idle('ingest'),
      idleBrokerPct: stack.pids.kafka ? idle('broker') : null,
      p50: lat[Math.floor(lat.length * 0.5)] ?? Number.NaN,
      p99: lat[Math.floor(lat.length * 0.99)] ?? Number.NaN,
      threads,
    };
  } finally {
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(15_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const dataDir = mkdtempSync(join(tmpdir(), 'cdp-ingest-rate-'));
  const stack = await startLocalStack({ dataDir, env: process.env });
  const alt = a.brokerSettings
    ? await startKafka({ dataDir: join(dataDir, 'alt'), settings: a.brokerSettings })
    : undefined;
  const stackFor = (v: Args['variants'][number]) =>
    v.env.BROKER === 'alt'
      ? { ...stack, kafkaBrokers: alt!.brokers.join(','), pids: { kafka: alt!.process.pid } }
      : stack;
  const nonce = Math.random().toString(36).slice(2, 8);
  const results: Result[] = [];
  try {
    for (let pair = 1; pair <= a.pairs; pair++) {
      // alternate the order so neither variant always runs first
      const order = pair % 2 ? a.variants : [...a.variants].reverse();
      for (const v of order) {
        const r = await measureOne(a, v, pair, stackFor(v), nonce);
        results.push(r);
        const load = (await import('node:os')).loadavg()[0]!.toFixed(1);
        console.log(
          `pair ${pair} ${r.label.padEnd(40)} ${(r.events / r.windowS).toFixed(0)} ev/s  ingest ${r.ingestUs.toFixed(0)} µs/ev` +
            `  broker ${r.brokerUs?.toFixed(0) ?? '?'} µs/ev  idle ingest ${r.idleIngestPct.toFixed(1)}% broker ${r.idleBrokerPct?.toFixed(1) ?? '?'}%` +
            `  p50 ${r.p50.toFixed(1)} ms p99 ${r.p99.toFixed(1)} ms  errors ${r.errors}  load ${load}\n    threads µs/ev: ${r.threads}`,
        );
      }
    }
  } finally {
    await alt?.stop();
    await stack.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
