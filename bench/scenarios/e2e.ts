// End to end: an event accepted by ingest → the profile enters a segment (message on
// cdp.segment-changes) → the campaign's webhook arrives at a receiver. The services run
// as they do in production, in their own process (`cdp start all`), against the
// benchmark's Kafka and Redis; this process sends the events at fixed rates, reads the
// segment-change topic and runs the webhook receiver, so every latency is measured on one
// clock: from the moment the HTTP request with the event is sent (ingest's own time
// included) to the moment the change / the webhook is seen. The change is timed twice:
// when it was published (its record's timestamp, set by the processor's producer: what
// the issue's target is about) and when this process's consumer saw it (which adds that
// consumer's own fetch and its share of the busy cores).
//
// Every event comes from a new user and enters the segment, so each is one transition
// and one send. A last measurement checks timers: profiles that must leave a 3 s window
// without any new event, and how late after their deadline the exit is seen.
//
// The `peer` scenario (peerScenario) is the same pipeline in the shape published
// comparisons with other pipelines use (RudderStack's): 100-event batches from the same
// load generator as fast as 4 senders go, 20 s, reporting events/s, the CPU µs per event of
// every process involved (broker and Redis included) and p50/p99, so such a comparison can
// be repeated with `--only=peer`.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Admin, Kafka, logLevel } from 'kafkajs';
import { freePort } from '../../infra/local/ports.ts';
import { fixKafkajsIdleTimer } from '../../runtime/kafka/kafkajs-request-queue.ts';
import { topics } from '../../schemas/topics.ts';
import {
  type CpuSnapshot,
  costDetails,
  cpuSnapshot,
  idlePercent,
  logBytesOnDisk,
  processCosts,
  renderStepCost,
  type StepCost,
  shortTopic,
  type TopicCounts,
  type Tracked,
  topicCosts,
} from '../cost.ts';
import { type CpuProfile, renderProfile, selfTimeByFile, topSelfTime } from '../cpu-profile.ts';
import { buildRows, type Figure } from '../report.ts';
import type { Measurement, ScenarioContext, ScenarioResult } from '../scenario.ts';
import { percentile, summarizeLatencies } from '../stats.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NAME = 'e2e';
const PEER = 'peer';
/** The peer-shaped run: one load, 100-event batches from 4 senders, this long. */
export const PEER_SECONDS = { quick: 3, full: 20 } as const;
const PEER_LOAD = '100-event batches';
const WRITE_KEY = 'bench-e2e-write-key';
const ADMIN_KEY = 'bench-e2e-admin-key';
const SIGNAL = 'E2E Signal';
/** Enters a segment no campaign sends for: the same path up to the change, no webhooks. */
const QUIET = 'E2E Quiet';
const TIMER_EVENT = 'E2E Timer';
const TIMER_WINDOW_MS = 3000;
/** The processes the services run in, and what each runs. */
const PROCESSES = [
  { name: 'ingest', services: ['ingest'] },
  { name: 'activation', services: ['activation'] },
  { name: 'processor+ledger+query', services: ['processor', 'ledger', 'query'] },
] as const;
/** The benchmark process: load generator, webhook receiver and segment-change reader. */
const GENERATOR = 'bench (load, receiver, reader)';
/** After a step's last change and webhook: the sinks' flushes (history every 1 s) land in it. */
const SETTLE_MS = 1200;
/** A step's CPU is read in the profile's window: the 1,000 events/s step with webhooks. */
const PROFILED_LOAD = '1000/s';
/** Fixed rates up to this send one event per request; above, a tick's events in one batch. */
const SINGLE_EVENTS_UP_TO = 1000;
/** A process's profiles go to a directory of its own: V8 writes one per thread (tsx's loader is one). */
const profileDir = (dir: string, name: string) => join(dir, name.replace(/[^a-z0-9]+/gi, '-'));
/** Monotonic µs: the clock V8's CPU profiles use. */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) return r();
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      r();
    }, 15_000);
    child.once('exit', () => {
      clearTimeout(t);
      r();
    });
    child.kill('SIGTERM');
  });
}

export const E2E_TARGETS = {
  /** Issue #5: ingest acceptance → segment change published, p99 < 100 ms at 1,000 events/s. */
  changeP99At1000: { kind: 'atMost', value: 100 },
  /** Issue #5: timer exits within 1 s of their deadline. */
  timerLateness: { kind: 'atMost', value: 1000 },
} as const;

interface Seen {
  sentAt: Map<string, number>;
  /** The segment change's record timestamp (set by the processor's producer), on this clock. */
  producedAt: Map<string, number>;
  changeAt: Map<string, number>;
  webhookAt: Map<string, number>;
  exitAt: Map<string, number>;
}

export function e2eRates(mode: 'quick' | 'full'): {
  rates: number[];
  seconds: number;
  saturationSeconds: number;
} {
  return mode === 'quick'
    ? { rates: [100, 1000], seconds: 2, saturationSeconds: 2 }
    : { rates: [100, 1000, 10_000], seconds: 10, saturationSeconds: 8 };
}

export const e2eScenario = (ctx: ScenarioContext) => runPipeline(ctx, NAME);
export const peerScenario = (ctx: ScenarioContext) => runPipeline(ctx, PEER);

async function runPipeline(ctx: ScenarioContext, shape: typeof NAME | typeof PEER): Promise<ScenarioResult> {
  const peer = shape === PEER;
  const { rates, seconds, saturationSeconds } = peer
    ? { rates: [], seconds: 0, saturationSeconds: PEER_SECONDS[ctx.settings.mode] }
    : e2eRates(ctx.settings.mode);
  const prefix = `bench-${shape}-${ctx.nonce}`;
  const [ingestPort, queryPort] = await Promise.all([freePort(), freePort()]);
  const seen: Seen = {
    sentAt: new Map(),
    producedAt: new Map(),
    changeAt: new Map(),
    webhookAt: new Map(),
    exitAt: new Map(),
  };

  const receiver = await startReceiver(seen);
  const env = {
    ...process.env,
    NODE_ENV: 'development',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    KAFKA_BROKERS: ctx.kafkaBrokers,
    REDIS_URL: ctx.redisUrl,
    CDP_DATA_DIR: join(ctx.dataDir, shape),
    CDP_TOPIC_PREFIX: prefix,
    CDP_REDIS_PREFIX: prefix,
    CDP_TOPIC_PARTITIONS: '4',
    CDP_WRITE_KEY: WRITE_KEY,
    CDP_ADMIN_KEY: ADMIN_KEY,
    CDP_INGEST_PORT: String(ingestPort),
    CDP_QUERY_PORT: String(queryPort),
    CDP_WEBHOOK_ALLOW_LOOPBACK: 'true',
    CDP_INGEST_RATE_LIMIT: '0',
  };
  // As deployed: the ingest edge and the activation worker each in a process of their own;
  // the services that use the in-process ClickHouse (chDB: one process per data directory)
  // together in a third.
  const processes = PROCESSES.map(({ name, services }) => ({
    name,
    child: spawn(
      process.execPath,
      [
        '--max-semi-space-size=64',
        ...(ctx.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir(ctx.cpuProfDir, name)}`] : []),
        join(ROOT, 'bin/cdp.js'),
        'start',
        ...services,
      ],
      {
        cwd: ROOT,
        env,
        stdio: ['ignore', 2, 2],
      },
    ),
  }));
  const ingest = `http://127.0.0.1:${ingestPort}`;
  const query = `http://127.0.0.1:${queryPort}`;
  // the reader's own kafkajs without its 1 ms timer per connection, as the services run it
  fixKafkajsIdleTimer();
  const kafka = new Kafka({ brokers: ctx.kafkaBrokers.split(','), logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `${prefix}-bench-reader`, maxWaitTimeInMs: 50 });
  const kafkaAdmin = kafka.admin();
  const measurements: Measurement[] = [];
  const notes: string[] = [];
  // cost per event (issue #26): every process's CPU from /proc, every topic's traffic
  const tracked: Tracked[] = [
    ...processes.map((p) => ({ name: p.name, pid: p.child.pid, tree: true })),
    { name: 'kafka broker', pid: ctx.stackPids?.kafka, tree: true },
    { name: 'redis-server', pid: ctx.stackPids?.redis, tree: true },
    { name: GENERATOR, pid: process.pid },
  ];
  const counts = () => topicCounts(kafkaAdmin, prefix, ctx.kafkaLogDir);
  let idlePct: Record<string, number> = {};
  /** Every costed step's window on the monotonic clock (the profiles'), by load. */
  const windows: Record<string, { fromUs: number; toUs: number }> = {};
  /** Runs a step between two readings of CPU and topics; the step's cost goes into its details. */
  const costed = async (run: () => Promise<Measurement>): Promise<Measurement> => {
    const c0 = await counts();
    const s0 = cpuSnapshot(tracked);
    const fromUs = monotonicUs();
    const m = await run();
    await sleep(SETTLE_MS);
    const s1 = cpuSnapshot(tracked);
    windows[m.load] = { fromUs, toUs: monotonicUs() };
    const c1 = await counts();
    const cost = stepCost(m.load, s0, s1, c0, c1, m.details?.events ?? 0, idlePct);
    if (m.details?.requests !== undefined) cost.requests = m.details.requests;
    m.details = { ...m.details, ...costDetails(cost) };
    const table = renderStepCost(cost);
    ctx.progress(table);
    notes.push(`${shape} ${table}`);
    return m;
  };
  try {
    ctx.progress(
      `${shape}: starting the services (${PROCESSES.map((p) => `cdp start ${p.services.join(' ')}`).join('; ')})`,
    );
    await waitReady([ingest, query], processes, 120_000);
    const admin = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
    const segment = await postJson(`${query}/v1/segments`, admin, {
      name: 'bench e2e signal',
      rule: { '>=': [{ event_count: [SIGNAL, '1h'] }, 1] },
    });
    await postJson(`${query}/v1/campaigns`, admin, {
      name: 'bench e2e webhook',
      segmentId: segment.id,
      on: 'enter',
      channel: 'webhook',
      webhook: { url: receiver.url },
    });
    const quietSegment = await postJson(`${query}/v1/segments`, admin, {
      name: 'bench e2e quiet',
      rule: { '>=': [{ event_count: [QUIET, '1h'] }, 1] },
    });
    const timerSegment = await postJson(`${query}/v1/segments`, admin, {
      name: 'bench e2e timer',
      rule: { '>=': [{ event_count: [TIMER_EVENT, `${TIMER_WINDOW_MS / 1000}s`] }, 1] },
    });

    await consumer.connect();
    await consumer.subscribe({ topic: topics(prefix).segmentChanges, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const at = performance.now();
        const wallOffset = Date.now() - at; // record timestamps are wall-clock ms
        for (const m of batch.messages) {
          const c = JSON.parse(String(m.value)) as { segmentId: string; type: string; userId: string | null };
          if (!c.userId) continue;
          if ((c.segmentId === segment.id || c.segmentId === quietSegment.id) && c.type === 'entered') {
            seen.changeAt.set(c.userId, at);
            seen.producedAt.set(c.userId, Number(m.timestamp) - wallOffset);
          } else if (c.segmentId === timerSegment.id && c.type === 'exited') seen.exitAt.set(c.userId, at);
        }
      },
    });
    // definitions reach the processor within a second; one event shows the path is live
    await warmUp(ingest, seen, `${ctx.nonce}-warm`);
    await kafkaAdmin.connect();
    // what the processes use with no events at all (polls, timers, heartbeats)
    await sleep(SETTLE_MS);
    const idle0 = cpuSnapshot(tracked);
    await sleep(ctx.settings.mode === 'quick' ? 2000 : 5000);
    idlePct = idlePercent(idle0, cpuSnapshot(tracked));
    const idleLine = `${shape} idle (no events): ${Object.entries(idlePct)
      .map(([n, v]) => `${n} ${v.toFixed(1)}%`)
      .join(', ')} of a core (load average ${loadavg()[0]!.toFixed(2)})`;
    ctx.progress(idleLine);
    notes.push(idleLine);

    // 1,000/s twice: as everywhere, a webhook per change; then into a segment no campaign
    // sends for (the same path to the change, without the sends and the receiver's load
    // on the same two cores), to show what the webhooks cost the changes
    const phases = rates.flatMap((rate) => [
      { rate, quiet: false },
      ...(rate === 1000 ? [{ rate, quiet: true }] : []),
    ]);
    for (const { rate, quiet } of phases) {
      const label = `${rate}/s${quiet ? ' without campaign' : ''}`;
      ctx.progress(
        `e2e: ${rate.toLocaleString('en-US')} events/s for ${seconds} s${quiet ? ' (no campaign)' : ''}`,
      );
      // footprint: each process's resident memory, sampled while it works (its peak)
      const rss = processes.map(() => 0);
      const sample = () => {
        processes.forEach((p, i) => {
          rss[i] = Math.max(rss[i]!, rssMb(p.child.pid));
        });
      };
      const sampler = setInterval(sample, 250);
      const m = await costed(() =>
        fixedRate(
          ingest,
          seen,
          `${ctx.nonce}-r${rate}${quiet ? 'q' : ''}`,
          rate,
          seconds * 1000,
          label,
          quiet ? QUIET : SIGNAL,
        ),
      );
      clearInterval(sampler);
      sample();
      m.details = {
        ...m.details,
        ...Object.fromEntries(processes.map((p, i) => [`rssMb:${p.name}`, rss[i]!])),
      };
      measurements.push(m);
    }
    ctx.progress(
      `${shape}: ${peer ? '100-event batches from 4 senders' : 'saturation'} for ${saturationSeconds} s`,
    );
    measurements.push(
      await costed(() =>
        saturate(ingest, seen, `${ctx.nonce}-sat`, saturationSeconds * 1000, peer ? PEER_LOAD : 'saturation'),
      ),
    );

    if (!peer) {
      ctx.progress(`e2e: timers (${TIMER_WINDOW_MS / 1000} s window, exits without a new event)`);
      const lateness = await timerExits(ingest, seen, `${ctx.nonce}-timer`, 200);
      measurements.push(lateness);
    }
    notes.push(
      'e2e: latency is measured from sending the HTTP request with the event (ingest included) to the segment ' +
        "change's publication (its record timestamp), to seeing it on Kafka, and to the webhook at a loopback " +
        'receiver, all on this clock; services run in ' +
        `processes (${PROCESSES.map((p) => `${p.name}: cdp start ${p.services.join(' ')}`).join('; ')}) on the same 2 cores as the load`,
    );
  } finally {
    agent.destroy();
    await consumer.disconnect().catch(() => {});
    await kafkaAdmin.disconnect().catch(() => {});
    await Promise.all(processes.map((p) => stopChild(p.child)));
    await receiver.close();
  }
  if (ctx.cpuProfDir) notes.push(...profileReport(ctx, windows, peer ? PEER_LOAD : PROFILED_LOAD));
  for (const m of measurements) m.scenario = shape;
  return { rows: buildRows(e2eFigures(measurements, shape)), measurements, notes };
}

function stepCost(
  load: string,
  s0: CpuSnapshot,
  s1: CpuSnapshot,
  c0: Record<string, TopicCounts>,
  c1: Record<string, TopicCounts>,
  events: number,
  idlePct: Record<string, number>,
): StepCost {
  const { processes, total, outside } = processCosts(s0, s1, events, idlePct, new Set([GENERATOR]));
  return {
    load,
    events,
    windowMs: s1.atMs - s0.atMs,
    loadAvg: loadavg()[0]!,
    processes,
    total,
    outside,
    topics: topicCosts(c0, c1, events),
  };
}

/**
 * End offsets (messages) and log bytes on disk of the deployment's topics and of the
 * consumer offsets topic (every commit is a message there; the bench's own reader commits
 * too). Bytes only with the local broker, whose log.dirs this process can read.
 */
async function topicCounts(
  admin: Admin,
  prefix: string,
  logDir: string | undefined,
): Promise<Record<string, TopicCounts>> {
  const names = (await admin.listTopics()).filter(
    (t) => t.startsWith(`${prefix}.`) || t === '__consumer_offsets',
  );
  const bytes = logDir ? logBytesOnDisk(logDir) : undefined;
  const entries = await Promise.all(
    names.map(async (t): Promise<[string, TopicCounts]> => {
      const parts = await admin.fetchTopicOffsets(t);
      const messages = parts.reduce((sum, p) => sum + Number(p.high), 0);
      return [shortTopic(t, prefix), bytes ? { messages, bytes: bytes[t] ?? 0 } : { messages }];
    }),
  );
  return Object.fromEntries(entries);
}

/** --cpu-prof: each service process's top self time in the profiled step (written on exit). */
function profileReport(
  ctx: ScenarioContext,
  windows: Record<string, { fromUs: number; toUs: number }>,
  profiledLoad: string,
): string[] {
  const dir = ctx.cpuProfDir!;
  // every step's window on the profiles' clock, to look at another step later
  writeFileSync(join(dir, 'windows.json'), `${JSON.stringify(windows, null, 2)}\n`);
  const window = windows[profiledLoad];
  if (!window) return [`e2e --cpu-prof: no ${profiledLoad} step ran; profiles in ${dir}`];
  const out = [
    `e2e --cpu-prof: V8 CPU profiles of the services in ${dir} (whole life of each process); ` +
      `the top self time of each during the ${profiledLoad} step (${((window.toUs - window.fromUs) / 1e6).toFixed(1)} s, its drain included). ` +
      'Main JS thread only: librdkafka, libuv pool, GC helper and compiler threads are not sampled (see the CPU table).',
  ];
  for (const { name } of PROCESSES) {
    // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: the main thread is thread 0
    const sub = profileDir(dir, name);
    const main = existsSync(sub)
      ? readdirSync(sub).find((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f))
      : undefined;
    if (!main) {
      out.push(`${name}: no main-thread profile written in ${sub}`);
      continue;
    }
    const file = join(sub, main);
    const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    if (window.fromUs < p.startTime || window.toUs > p.endTime)
      out.push(`${name}: the step's window is outside the profile's clock range; showing the whole profile`);
    const inside = window.fromUs >= p.startTime && window.toUs <= p.endTime;
    const [from, to] = inside ? [window.fromUs, window.toUs] : [-Infinity, Infinity];
    out.push(renderProfile(name, topSelfTime(p, 20, from, to), selfTimeByFile(p, 10, from, to)));
  }
  for (const line of out) ctx.progress(line);
  return out;
}

export function e2eFigures(ms: readonly Measurement[], scenario: string = NAME): Figure[] {
  const out: Figure[] = [];
  for (const m of ms) {
    const d = m.details ?? {};
    if (m.load === 'timers') {
      out.push({
        scenario,
        figure: 'timer exit after deadline p50',
        unit: 'ms',
        runs: [d.lateP50 ?? NaN],
      });
      out.push({
        scenario,
        figure: 'timer exit after deadline max',
        unit: 'ms',
        runs: [d.lateMax ?? NaN],
        target: E2E_TARGETS.timerLateness,
      });
      continue;
    }
    const at = `@ ${m.load}`;
    out.push({ scenario, figure: `events/s ${at}`, unit: 'events/s', runs: [m.eventsPerSec] });
    out.push({
      scenario,
      figure: `event→segment change published p50 ${at}`,
      unit: 'ms',
      runs: [d.producedP50 ?? NaN],
    });
    out.push({
      scenario,
      figure: `event→segment change published p99 ${at}`,
      unit: 'ms',
      runs: [d.producedP99 ?? NaN],
      ...(m.load === '1000/s' ? { target: E2E_TARGETS.changeP99At1000 } : {}),
    });
    out.push({
      scenario,
      figure: `event→segment change p50 ${at}`,
      unit: 'ms',
      runs: [d.changeP50 ?? NaN],
    });
    out.push({
      scenario,
      figure: `event→segment change p95 ${at}`,
      unit: 'ms',
      runs: [d.changeP95 ?? NaN],
    });
    out.push({
      scenario,
      figure: `event→segment change p99 ${at}`,
      unit: 'ms',
      runs: [d.changeP99 ?? NaN],
    });
    if (Number.isFinite(d.webhookP50)) {
      out.push({ scenario, figure: `event→webhook p50 ${at}`, unit: 'ms', runs: [d.webhookP50!] });
      out.push({
        scenario,
        figure: `event→webhook p99 ${at}`,
        unit: 'ms',
        runs: [d.webhookP99 ?? NaN],
      });
    }
    out.push({ scenario, figure: `changes missing ${at}`, unit: 'count', runs: [d.missing ?? NaN] });
    for (const [key, mb] of Object.entries(d))
      if (key.startsWith('rssMb:'))
        out.push({ scenario, figure: `RSS of ${key.slice(6)} ${at}`, unit: 'MB', runs: [Number(mb)] });
    // cost per event (bench/cost.ts): CPU of every process, traffic of every topic
    for (const [key, v] of Object.entries(d)) {
      const [kind, what] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
      if (kind === 'cpuUsPerEvent')
        out.push({ scenario, figure: `CPU per event: ${what} ${at}`, unit: 'µs', runs: [v] });
      else if (kind === 'messagesPerEvent')
        out.push({
          scenario,
          figure: `messages per event: ${what} ${at}`,
          unit: 'msg/event',
          runs: [v],
        });
      else if (kind === 'bytesPerEvent')
        out.push({ scenario, figure: `bytes per event: ${what} ${at}`, unit: 'B/event', runs: [v] });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------

async function startReceiver(seen: Seen): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { userId?: string };
        if (body.userId) seen.webhookAt.set(body.userId, at);
      } catch {
        // not ours
      }
      res.statusCode = 200;
      res.end();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function waitReady(
  urls: string[],
  children: Array<{ name: string; child: ChildProcess }>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const { name, child } of children)
      if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    const ok = await Promise.all(
      urls.map((u) =>
        fetch(`${u}/readyz`, { signal: AbortSignal.timeout(1000) })
          .then((r) => r.ok)
          .catch(() => false),
      ),
    );
    if (ok.every(Boolean)) return;
    if (Date.now() > deadline) throw new Error('services not ready in time');
    await sleep(250);
  }
}

async function postJson(url: string, headers: Record<string, string>, body: unknown) {
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: ${res.status} ${text}`);
  return JSON.parse(text) as { id: string };
}

const ingestHeaders = {
  authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`,
  'content-type': 'application/json',
};

const signal = (userId: string, event = SIGNAL) => ({
  type: 'track',
  event,
  userId,
  messageId: `m-${userId}`,
  timestamp: new Date().toISOString(),
});

/** Sends users' events in one request; records each user's send time. */
async function sendEvents(ingest: string, seen: Seen, users: string[], event = SIGNAL): Promise<boolean> {
  const at = performance.now();
  for (const u of users) seen.sentAt.set(u, at);
  const body =
    users.length === 1
      ? JSON.stringify(signal(users[0]!, event))
      : JSON.stringify({ batch: users.map((u) => signal(u, event)) });
  return post(`${ingest}/v1/${users.length === 1 ? 'track' : 'batch'}`, body);
}

// The load goes through node:http on kept-alive connections rather than fetch: this
// process shares the 2 cores with the services it measures, and with fetch (undici, web
// streams) it took 35% of a core at 1,000 events/s against 27% this way.
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/** POSTs a JSON body to ingest; true on a 2xx. Never throws. */
function post(url: string, body: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const req = request(
      url,
      { method: 'POST', agent, headers: { ...ingestHeaders, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        res.on('end', () => resolve(status >= 200 && status < 300));
        res.on('error', () => resolve(false));
      },
    );
    req.on('error', () => resolve(false));
    req.end(body);
  });
}

async function warmUp(ingest: string, seen: Seen, prefix: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (let i = 0; Date.now() < deadline; i++) {
    const u = `${prefix}-${i}`;
    await sendEvents(ingest, seen, [u]);
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      if (seen.changeAt.has(u) && seen.webhookAt.has(u)) return;
      await sleep(50);
    }
  }
  throw new Error('e2e: no segment change and webhook for a warm-up event within 60 s');
}

/** Waits (bounded) until every user has its change (and webhook), then summarises. */
async function collect(
  seen: Seen,
  users: string[],
  load: string,
  windowMs: number,
  errors: number,
  webhooks = true,
): Promise<Measurement> {
  // above saturation a backlog builds up: give it time to drain (a late event is slow, not lost)
  const deadline = Date.now() + 30_000 + users.length; // + 1 ms per event
  const arrived = (u: string) => seen.changeAt.has(u) && (!webhooks || seen.webhookAt.has(u));
  while (Date.now() < deadline && !users.every(arrived)) await sleep(100);
  const change: number[] = [];
  const produced: number[] = [];
  const hook: number[] = [];
  let missing = 0;
  for (const u of users) {
    const sent = seen.sentAt.get(u)!;
    const c = seen.changeAt.get(u);
    const w = seen.webhookAt.get(u);
    if (c === undefined || (webhooks && w === undefined)) missing++;
    if (c !== undefined) change.push(c - sent);
    const p = seen.producedAt.get(u);
    if (p !== undefined) produced.push(p - sent);
    if (w !== undefined) hook.push(w - sent);
  }
  const cs = summarizeLatencies(change);
  const ps = summarizeLatencies(produced);
  const ws = summarizeLatencies(hook);
  const p95 = percentile(change, 95);
  return {
    scenario: NAME,
    load,
    run: 1,
    opsPerSec: (users.length / windowMs) * 1000,
    eventsPerSec: (users.length / windowMs) * 1000,
    p50Ms: cs.p50,
    p99Ms: cs.p99,
    maxMs: cs.max,
    errors: errors + missing,
    errorSamples:
      missing > 0
        ? [`${missing} events without a segment change${webhooks ? ' and webhook' : ''} in time`]
        : [],
    abandoned: 0,
    serverCpuPct: null,
    generatorCpuPct: 0,
    cpuUsPerEvent: null,
    machineBusyPct: null,
    jitterPct: null,
    details: {
      events: users.length,
      producedP50: ps.p50,
      producedP99: ps.p99,
      changeP50: cs.p50,
      changeP95: p95,
      changeP99: cs.p99,
      webhookP50: ws.p50,
      webhookP99: ws.p99,
      missing,
    },
  };
}

/**
 * `rate` events/s for `durationMs`: on every tick (1–10 ms) the events due by then. Up to
 * 1,000/s each goes in a request of its own (/v1/track), as a site's or an app's visitors
 * send them; above, a tick's events go in one /v1/batch request, as a server-side source
 * sends them (10,000 single requests a second would measure this process, not the pipeline).
 * (Every step used to batch a tick's events: on a busy machine the ticks came late and the
 * "1,000/s" step carried 2–4 events a request, a load that changed with the machine's.)
 */
async function fixedRate(
  ingest: string,
  seen: Seen,
  prefix: string,
  rate: number,
  durationMs: number,
  load: string,
  event = SIGNAL,
): Promise<Measurement> {
  const users: string[] = [];
  const inFlight: Promise<boolean>[] = [];
  const start = performance.now();
  let sent = 0;
  let errors = 0;
  while (performance.now() - start < durationMs) {
    const due = Math.floor(((performance.now() - start) / 1000) * rate) + 1;
    while (sent < due) {
      const batch: string[] = [];
      for (; sent < due && (batch.length === 0 || rate > SINGLE_EVENTS_UP_TO); sent++)
        batch.push(`${prefix}-${sent}`);
      users.push(...batch);
      inFlight.push(
        sendEvents(ingest, seen, batch, event).then((ok) => {
          if (!ok) errors++;
          return ok;
        }),
      );
    }
    await sleep(Math.max(1, Math.min(10, 1000 / rate)));
  }
  await Promise.all(inFlight);
  const m = await collect(seen, users, load, performance.now() - start, errors, event !== QUIET);
  m.details = { ...m.details, requests: inFlight.length };
  return m;
}

/** As fast as 4 senders of 100-event batches go. */
async function saturate(
  ingest: string,
  seen: Seen,
  prefix: string,
  durationMs: number,
  load = 'saturation',
): Promise<Measurement> {
  const users: string[] = [];
  let errors = 0;
  let n = 0;
  const start = performance.now();
  const sender = async () => {
    while (performance.now() - start < durationMs) {
      const batch = Array.from({ length: 100 }, () => `${prefix}-${n++}`);
      users.push(...batch);
      if (!(await sendEvents(ingest, seen, batch))) errors++;
    }
  };
  await Promise.all([sender(), sender(), sender(), sender()]);
  // throughput is what the pipeline delivered: the last change seen after the window
  const m = await collect(seen, users, load, performance.now() - start, errors);
  m.details = { ...m.details, requests: Math.ceil(users.length / 100) };
  // a loop, not Math.max(...): at saturation there are more users than call arguments fit
  let last = 0;
  for (const u of users) last = Math.max(last, seen.changeAt.get(u) ?? 0);
  m.eventsPerSec = m.opsPerSec = (users.length / Math.max(1, last - start)) * 1000;
  return m;
}

/** Profiles with one event in a short window: how late after the deadline is the exit seen. */
async function timerExits(ingest: string, seen: Seen, prefix: string, count: number): Promise<Measurement> {
  const users = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  const deadlines = new Map<string, number>();
  for (let i = 0; i < users.length; i += 50) {
    const batch = users.slice(i, i + 50);
    const wall = Date.now();
    const perf = performance.now();
    // the event's own timestamp starts the window: the deadline is timestamp + window
    const ok = await post(
      `${ingest}/v1/batch`,
      JSON.stringify({
        batch: batch.map((u) => ({ ...signal(u, TIMER_EVENT), timestamp: new Date(wall).toISOString() })),
      }),
    );
    if (!ok) throw new Error('e2e: timer events refused');
    for (const u of batch) deadlines.set(u, perf + TIMER_WINDOW_MS);
  }
  const until = Date.now() + TIMER_WINDOW_MS + 15_000;
  while (Date.now() < until && !users.every((u) => seen.exitAt.has(u))) await sleep(100);
  const late = users.flatMap((u) => {
    const at = seen.exitAt.get(u);
    return at === undefined ? [] : [at - deadlines.get(u)!];
  });
  const s = summarizeLatencies(late);
  const missing = users.length - late.length;
  const exitsPerSec = late.length / ((TIMER_WINDOW_MS + (s.max || 0)) / 1000);
  return {
    scenario: NAME,
    load: 'timers',
    run: 1,
    opsPerSec: exitsPerSec,
    eventsPerSec: exitsPerSec,
    p50Ms: s.p50,
    p99Ms: s.p99,
    maxMs: s.max,
    errors: missing,
    errorSamples:
      missing > 0 ? [`${missing} profiles did not leave the timer segment within 15 s of the deadline`] : [],
    abandoned: 0,
    serverCpuPct: null,
    generatorCpuPct: 0,
    cpuUsPerEvent: null,
    machineBusyPct: null,
    jitterPct: null,
    details: { lateP50: s.p50, lateP99: s.p99, lateMax: s.max },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resident set size of a process (Linux /proc), MB; 0 when unknown. */
function rssMb(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}
