// Ingest: how many events the HTTP edge takes, side by side in one run with
//   ingest/bare      a bare Hono accept-and-drop handler (parse JSON, answer success): the HTTP ceiling
//   ingest/kafkajs   the real ingest service, CDP_KAFKA_DRIVER=kafkajs
//   ingest/rdkafka   the real ingest service, CDP_KAFKA_DRIVER=rdkafka
//   ingest/kafkajs ×2  `cdp start ingest` with CDP_INGEST_WORKERS=2: two processes on one
//                    port (cli/ingest-workers.ts), its CPU the primary's and workers' together
//   ingest/kafkajs +plan  the kafkajs ingest service with a tracking plan in flag mode (20
//                    events with typed properties; a quarter of the events sent violate it and
//                    are flagged): its CPU per event beside ingest/kafkajs's is what checking
//                    every event costs (target ≤ 1.2×)
//   producer/<drv>   our runtime/kafka producer sending the same (normalised) events straight to
//                    the broker: the producer's and broker's ceiling for that driver
// Each is loaded with single-event requests (/v1/track) and 100-event batches (/v1/batch)
// from a separate process; repeats are interleaved so drifting background load hits all
// targets alike.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Hono } from 'hono';
import { Redis } from 'ioredis';
import { type RunningServices, startServices } from '../../cli/services.ts';
import { freePort } from '../../infra/local/ports.ts';
import { normalizeEvent } from '../../ingest/normalize-event.ts';
import { applyPlan } from '../../ingest/tracking-plan.ts';
import { loadConfig } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { listen } from '../../runtime/http.ts';
import { createKafka } from '../../runtime/kafka/index.ts';
import { eventKey, topics } from '../../schemas/topics.ts';
import { compilePlan, PLAN_ID, type TrackingPlan } from '../../schemas/tracking-plan.ts';
import { batchBodies, fillSlots, singleBodies } from '../events.ts';
import { type LoadResult, type LoadSpec, runLoad } from '../load.ts';
import { type CpuWindow, cpuSampler } from '../machine.ts';
import { buildRows, type Figure, type Target } from '../report.ts';
import {
  ensureTopicsWithRetry,
  type Measurement,
  type ScenarioContext,
  type ScenarioResult,
} from '../scenario.ts';
import { median } from '../stats.ts';

const SINGLE_CONNECTIONS = 32;
const BATCH_CONNECTIONS = 16;
const BATCH_SIZE = 100;
const PARTITIONS = 8;
const LINGER_MS = 5; // what ingest asks its producer for (CDP_INGEST_LINGER_MS's default)
const WORKSPACE = 'default';

/** From the issue: batched ingest ≥ 50,000 events/s; single-event req/s ≥ 60% of the bare handler's. */
export const TARGETS = {
  batchEventsPerSec: { kind: 'atLeast', value: 50_000 } as Target,
  singleVsBare: { kind: 'ratioAtLeast', value: 0.6 } as Target,
  /** From the tracking-plans issue: validation ≤ 20% of ingest CPU per event. */
  planCpuVsNone: { kind: 'ratioAtMost', value: 1.2 } as Target,
};
const PLAN_TARGET = 'ingest/kafkajs +plan';

const DRIVERS = ['kafkajs', 'rdkafka'] as const;
type Driver = (typeof DRIVERS)[number];
type LoadKind = 'single' | 'batch';

const FIG = {
  single: {
    tp: 'single: throughput',
    p50: 'single: p50',
    p99: 'single: p99',
    cpu: 'single: CPU',
    cpuPerEvent: 'single: CPU per event',
    err: 'single: errors',
  },
  batch: {
    tp: `batch×${BATCH_SIZE}: throughput`,
    p50: `batch×${BATCH_SIZE}: p50`,
    p99: `batch×${BATCH_SIZE}: p99`,
    cpu: `batch×${BATCH_SIZE}: CPU`,
    cpuPerEvent: `batch×${BATCH_SIZE}: CPU per event`,
    err: `batch×${BATCH_SIZE}: errors`,
  },
} as const;

interface HttpTarget {
  scenario: string;
  url: string;
  stop(): Promise<void>;
  /** For a target in processes of its own: their CPU time so far, in clock ticks (1/100 s). */
  cpuTicks?: () => number;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKERS = 2;

/** utime + stime of `pid` and its child processes, in clock ticks (Linux /proc). */
function treeTicks(pid: number): number {
  const ticks = (stat: string) => {
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpu: Number(f[11]) + Number(f[12]) };
  };
  let total = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const t = ticks(readFileSync(`/proc/${name}/stat`, 'utf8'));
      if (Number(name) === pid || t.ppid === pid) total += t.cpu;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** The ingest service in WORKERS processes on one port, started as an operator would. */
async function startIngestWorkers(ctx: ScenarioContext): Promise<HttpTarget> {
  const port = await freePort();
  const tag = `bench-${ctx.nonce}-kafkajs-w${WORKERS}`;
  const child = spawn(process.execPath, ['--max-semi-space-size=64', 'bin/cdp.js', 'start', 'ingest'], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      KAFKA_BROKERS: ctx.kafkaBrokers,
      REDIS_URL: ctx.redisUrl,
      CDP_KAFKA_DRIVER: 'kafkajs',
      CDP_TOPIC_PREFIX: tag,
      CDP_REDIS_PREFIX: tag,
      CDP_TOPIC_PARTITIONS: String(PARTITIONS),
      CDP_DATA_DIR: ctx.dataDir,
      CDP_INGEST_HOST: '127.0.0.1',
      CDP_INGEST_PORT: String(port),
      CDP_INGEST_RATE_LIMIT: '0',
      CDP_INGEST_WORKERS: String(WORKERS),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const pid = child.pid!;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    scenario: `ingest/kafkajs ×${WORKERS}`,
    url: `http://127.0.0.1:${port}`,
    cpuTicks: () => treeTicks(pid),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function startBare(): Promise<HttpTarget> {
  const app = new Hono();
  app.post('/v1/:type', async (c) => {
    await c.req.json();
    return c.json({ success: true });
  });
  const server = await listen(app, '127.0.0.1', 0);
  return { scenario: 'ingest/bare', url: `http://127.0.0.1:${server.port}`, stop: server.close };
}

async function startIngest(
  ctx: ScenarioContext,
  driver: Driver,
  plan?: TrackingPlan,
): Promise<RunningServices> {
  const prefix = `bench-${ctx.nonce}-${driver}${plan ? '-plan' : ''}`;
  const cfg = loadConfig({
    NODE_ENV: 'development',
    LOG_LEVEL: ctx.log.level as string,
    KAFKA_BROKERS: ctx.kafkaBrokers,
    REDIS_URL: ctx.redisUrl,
    CDP_KAFKA_DRIVER: driver,
    CDP_TOPIC_PREFIX: prefix,
    CDP_REDIS_PREFIX: prefix,
    CDP_TOPIC_PARTITIONS: String(PARTITIONS),
    CDP_DATA_DIR: ctx.dataDir,
    CDP_INGEST_HOST: '127.0.0.1',
    CDP_INGEST_PORT: '0',
    // capacity is measured, not the per-key limit (100k events/s by default, above what we reach)
    CDP_INGEST_RATE_LIMIT: '0',
  });
  if (plan) {
    // saved as the query service would, before ingest starts: its first load has it
    const redis = new Redis(ctx.redisUrl);
    try {
      await new DefinitionStore(redis, prefix).putMany([
        { kind: 'trackingPlans', def: { ...plan, workspaceId: cfg.keys.workspace } },
      ]);
    } finally {
      redis.disconnect();
    }
  }
  return startServices(cfg, ['ingest'], ctx.log.child({ bench: `${driver}${plan ? '+plan' : ''}` }));
}

/**
 * A realistic plan in flag mode: the four events the load sends and 16 more, each with typed
 * properties (ids by pattern, prices by range, currencies by enum, formats). Checkout Started
 * refuses properties it does not list (`category` is sent): a quarter of the events violate
 * the plan and are flagged, the rest conform.
 */
export function benchPlan(): TrackingPlan {
  const product = {
    type: 'object',
    required: ['product_id', 'price'],
    properties: {
      product_id: { type: 'string', pattern: '^sku-[0-9]{5}$' },
      name: { type: 'string', minLength: 1, maxLength: 200 },
      price: { type: 'number', minimum: 0 },
      currency: { type: 'string', enum: ['USD', 'EUR', 'GBP'] },
      category: { type: 'string', maxLength: 100 },
      quantity: { type: 'integer', minimum: 1 },
    },
  };
  const events: TrackingPlan['events'] = {
    'Product Viewed': { properties: product },
    'Product Added': { properties: product },
    'Product Clicked': { properties: { ...product, required: ['product_id'] } },
    'Checkout Started': {
      properties: {
        type: 'object',
        required: ['product_id', 'price', 'currency'],
        properties: {
          product_id: { type: 'string' },
          name: { type: 'string' },
          price: { type: 'number', minimum: 0 },
          currency: { type: 'string', pattern: '^[A-Z]{3}$' },
        },
        additionalProperties: false,
      },
    },
  };
  const more = [
    'Order Completed',
    'Order Refunded',
    'Cart Viewed',
    'Coupon Applied',
    'Signed Up',
    'Signed In',
  ]
    .concat(['Signed Out', 'Trial Started', 'Subscription Renewed', 'Payment Failed', 'Search Performed'])
    .concat(['Video Played', 'Form Submitted', 'Invite Sent', 'Feature Used', 'Plan Upgraded']);
  for (const name of more)
    events[name] = {
      properties: {
        type: 'object',
        required: ['id'],
        properties: {
          id: { type: 'string', minLength: 1, maxLength: 64 },
          value: { type: 'number' },
          at: { type: 'string', format: 'date-time' },
          email: { type: 'string', format: 'email' },
          tags: { type: 'array', items: { type: 'string' }, maxItems: 20 },
        },
      },
    };
  const at = new Date().toISOString();
  return {
    id: PLAN_ID,
    workspaceId: WORKSPACE,
    version: 1,
    mode: 'flag',
    unplannedEvents: 'allow',
    events,
    createdAt: at,
    updatedAt: at,
  };
}

/**
 * Waits until the target takes a real event (200). A target that never does is a failure,
 * not a figure. Returns what /readyz said once it did (it should agree).
 */
async function waitAccepting(url: string, auth: string, body: string, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/v1/track`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body,
      });
      last = `${res.status} ${await res.text()}`;
      if (res.status === 200) {
        const ready = await fetch(`${url}/readyz`).catch(() => undefined);
        return ready ? `${ready.status} ${await ready.text()}` : 'no answer';
      }
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`POST ${url}/v1/track did not answer 200 within ${timeoutMs} ms (last: ${last})`);
}

/** The events as ingest would put them on Kafka (normalised, keyed), pre-serialised. */
function normalisedSets(bodies: string[], kind: LoadKind) {
  const receivedAt = new Date();
  const ctx = { workspaceId: WORKSPACE, receivedAt, ip: '127.0.0.1' };
  return bodies.map((body) => {
    const parsed = JSON.parse(fillSlots(body)) as { batch?: unknown[] };
    const items = kind === 'batch' ? parsed.batch! : [parsed];
    return items.map((item) => {
      const e = normalizeEvent(item, kind === 'single' ? { ...ctx, routeType: 'track' } : ctx);
      return {
        key: eventKey(e.workspaceId, e.userId ?? e.anonymousId ?? e.messageId),
        value: JSON.stringify(e),
      };
    });
  });
}

export async function ingestScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const { settings } = ctx;
  const auth = `Basic ${Buffer.from('dev-write-key:').toString('base64')}`;
  const bodies = {
    single: singleBodies(64, ctx.nonce),
    batch: batchBodies(8, BATCH_SIZE, ctx.nonce),
  };
  const brokers = ctx.kafkaBrokers.split(',');

  const targets: HttpTarget[] = [];
  const measurements: Measurement[] = [];
  const planCheck: number[] = [];
  let flaggedShare = 0;
  const notes: string[] = [];
  try {
    ctx.progress('ingest: starting the bare handler and the ingest service on both drivers');
    targets.push(await startBare());
    for (const d of DRIVERS) {
      const running = await startIngest(ctx, d);
      targets.push({ scenario: `ingest/${d}`, url: running.urls.ingest!, stop: running.stop });
    }
    targets.push(await startIngestWorkers(ctx));
    const planned = await startIngest(ctx, 'kafkajs', benchPlan());
    targets.push({ scenario: PLAN_TARGET, url: planned.urls.ingest!, stop: planned.stop });
    for (const t of targets) {
      const ready = await waitAccepting(t.url, auth, fillSlots(bodies.single[0]!));
      if (t.scenario !== 'ingest/bare' && !ready.startsWith('200')) {
        const note = `${t.scenario}: takes events, but GET /readyz answers ${ready}`;
        ctx.progress(`  warning: ${note}`);
        notes.push(note);
      }
    }

    const rawTopic = (d: Driver) => topics(`bench-${ctx.nonce}-raw-${d}`).events;
    const admin = createKafka({ brokers, driver: 'kafkajs', clientId: 'cdp-bench' }, ctx.log).admin();
    try {
      await ensureTopicsWithRetry(
        admin,
        DRIVERS.map((d) => ({ topic: rawTopic(d), partitions: PARTITIONS })),
      );
    } finally {
      await admin.disconnect().catch(() => {});
    }
    const sets = {
      single: normalisedSets(bodies.single, 'single'),
      batch: normalisedSets(bodies.batch, 'batch'),
    };

    const timing = { warmupMs: settings.warmupMs, durationMs: settings.durationMs };
    for (let run = 1; run <= settings.runs; run++) {
      const check = measurePlanCheck(bodies.batch);
      planCheck.push(check.usPerEvent);
      flaggedShare = check.flaggedShare;
      ctx.progress(
        `  run ${run}/${settings.runs}  plan check in process: ${check.usPerEvent.toFixed(2)} µs/event` +
          ` (${Math.round(check.flaggedShare * 100)}% of the events flagged)`,
      );
      for (const t of targets) {
        for (const kind of ['single', 'batch'] as const) {
          const spec: LoadSpec = {
            kind: 'http',
            url: t.url,
            path: kind === 'single' ? '/v1/track' : '/v1/batch',
            headers: { authorization: auth, 'content-type': 'application/json' },
            bodies: bodies[kind],
            eventsPerRequest: kind === 'single' ? 1 : BATCH_SIZE,
            connections: kind === 'single' ? SINGLE_CONNECTIONS : BATCH_CONNECTIONS,
            ...timing,
          };
          measurements.push(await measure(ctx, t.scenario, kind, run, spec, t.cpuTicks ?? true));
        }
      }
      for (const d of DRIVERS) {
        for (const kind of ['single', 'batch'] as const) {
          const spec: LoadSpec = {
            kind: 'kafka',
            driver: d,
            brokers,
            topic: rawTopic(d),
            sets: sets[kind],
            concurrency: kind === 'single' ? SINGLE_CONNECTIONS : BATCH_CONNECTIONS,
            lingerMs: LINGER_MS,
            ...timing,
          };
          measurements.push(await measure(ctx, `producer/${d}`, kind, run, spec, false));
        }
      }
    }
  } finally {
    for (const t of targets.reverse()) await t.stop().catch(() => {});
  }
  return {
    rows: buildRows([
      ...figures(measurements),
      { scenario: 'plan check (in process)', figure: 'CPU per event', unit: 'µs', runs: planCheck },
    ]),
    measurements,
    notes: [
      `ingest: load from a separate process; single = ${SINGLE_CONNECTIONS} keep-alive connections × 1 event` +
        ` (/v1/track, ~${bodies.single[0]!.length} B), batch = ${BATCH_CONNECTIONS} connections × ${BATCH_SIZE} events` +
        ` (/v1/batch, ~${Math.round(bodies.batch[0]!.length / 1024)} KB); producer/<driver> = ${SINGLE_CONNECTIONS}` +
        ` (single) or ${BATCH_CONNECTIONS} (batch) concurrent producer.send() of the same events, normalised;` +
        ' p50/p99 are per request (or per send); ingest runs with CDP_INGEST_RATE_LIMIT=0',
      `ingest/kafkajs +plan: a 20-event tracking plan in flag mode (${Math.round(flaggedShare * 100)}% of the events sent violate it and are flagged);` +
        ' its CPU per event is compared with ingest/kafkajs (target ≤ 1.2×); plan check (in process) = applyPlan alone on the same events',
      ...notes,
    ],
  };
}

/**
 * The tracking plan's own cost, apart from HTTP and Kafka: CPU time of applyPlan (the compiled
 * check, the flag and its headers) over the batch events, normalised as ingest would, for
 * about a second; and the share of them the plan flags (a check that the plan applies).
 */
function measurePlanCheck(batchBodies: string[]): { usPerEvent: number; flaggedShare: number } {
  const compiled = compilePlan(benchPlan());
  const plans = { get: () => compiled };
  const receivedAt = new Date();
  const events = batchBodies.flatMap((body) =>
    (JSON.parse(fillSlots(body)) as { batch: unknown[] }).batch.map((item) =>
      normalizeEvent(item, { workspaceId: WORKSPACE, receivedAt, ip: '127.0.0.1' }),
    ),
  );
  let flagged = 0;
  for (const e of events) if (applyPlan(plans, { ...e })) flagged++;
  let n = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  while (performance.now() - t0 < 1000) {
    for (const e of events) applyPlan(plans, { ...e });
    n += events.length;
  }
  const cpu = process.cpuUsage(cpu0);
  return { usPerEvent: (cpu.user + cpu.system) / n, flaggedShare: flagged / events.length };
}

async function measure(
  ctx: ScenarioContext,
  scenario: string,
  kind: LoadKind,
  run: number,
  spec: LoadSpec,
  /** true: the server runs in this process; a function: its processes' CPU ticks; false: none. */
  server: boolean | (() => number),
): Promise<Measurement> {
  let sampler: ReturnType<typeof cpuSampler> | undefined;
  let cpu: CpuWindow | undefined;
  let ticks0 = 0;
  let t0 = 0;
  let treePct: number | null = null;
  const r: LoadResult = await runLoad(spec, {
    onWindowStart: () => {
      sampler = cpuSampler();
      if (typeof server === 'function') {
        ticks0 = server();
        t0 = performance.now();
      }
    },
    onWindowEnd: () => {
      cpu = sampler?.stop();
      // ticks are 1/100 s: ticks per ms × 1000 = % of a core
      if (typeof server === 'function') treePct = ((server() - ticks0) * 1000) / (performance.now() - t0);
    },
  });
  const serverInProcess = server !== false;
  const m: Measurement = {
    scenario,
    load: kind,
    run,
    opsPerSec: r.opsPerSec,
    eventsPerSec: r.eventsPerSec,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    errors: r.errors,
    errorSamples: r.errorSamples,
    abandoned: r.abandoned,
    serverCpuPct: typeof server === 'function' ? treePct : server ? (cpu?.processPct ?? null) : null,
    generatorCpuPct: r.generatorCpuPct,
    cpuUsPerEvent: null,
    machineBusyPct: cpu?.machineBusyPct ?? null,
    jitterPct: r.jitterPct,
  };
  const cpuPct = serverInProcess ? m.serverCpuPct : m.generatorCpuPct;
  m.cpuUsPerEvent = cpuPct !== null && m.eventsPerSec > 0 ? (cpuPct * 1e4) / m.eventsPerSec : null;
  const unit = kind === 'batch' ? 'events/s' : scenario.startsWith('producer/') ? 'msg/s' : 'req/s';
  const rate = kind === 'batch' ? m.eventsPerSec : m.opsPerSec;
  ctx.progress(
    `  run ${run}/${ctx.settings.runs}  ${`${scenario} ${kind}`.padEnd(24)} ${Math.round(rate).toLocaleString('en-US').padStart(8)} ${unit.padEnd(8)}` +
      ` p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms` +
      `  cpu ${(m.serverCpuPct ?? m.generatorCpuPct).toFixed(0)}% (${m.cpuUsPerEvent?.toFixed(1) ?? '?'} µs/event)` +
      `  loadgen ${m.generatorCpuPct.toFixed(0)}%` +
      `  machine ${m.machineBusyPct === null ? '?' : m.machineBusyPct.toFixed(0)}%` +
      (m.errors > 0 ? `  ERRORS ${m.errors} (${m.errorSamples.join('; ')})` : '') +
      (m.abandoned > 0 ? `  abandoned ${m.abandoned}` : ''),
  );
  return m;
}

/** Per-run measurements → figures (one value per run), with comparisons and targets. */
export function figures(ms: readonly Measurement[]): Figure[] {
  const out: Figure[] = [];
  const scenarios = [...new Set(ms.map((m) => m.scenario))];
  for (const scenario of scenarios) {
    const producer = scenario.startsWith('producer/');
    const driver = scenario.split('/')[1]!.split(' ')[0] as Driver | 'bare';
    for (const kind of ['single', 'batch'] as const) {
      const runs = ms.filter((m) => m.scenario === scenario && m.load === kind);
      if (runs.length === 0) continue;
      const f = FIG[kind];
      const isIngest = !producer && driver !== 'bare';
      const tpUnit = kind === 'batch' ? 'events/s' : producer ? 'msg/s' : 'req/s';
      const jitters = runs.map((m) => m.jitterPct).filter((j): j is number => j !== null);
      const tp: Figure = {
        scenario,
        figure: f.tp,
        unit: tpUnit,
        runs: runs.map((m) => (kind === 'batch' ? m.eventsPerSec : m.opsPerSec)),
        jitterPct: jitters.length ? median(jitters) : null,
      };
      if (isIngest && kind === 'single') {
        tp.compareTo = { scenario: 'ingest/bare', figure: f.tp };
        tp.target = TARGETS.singleVsBare;
      }
      if (isIngest && kind === 'batch') {
        tp.compareTo = { scenario: `producer/${driver}`, figure: f.tp };
        tp.target = TARGETS.batchEventsPerSec;
      }
      out.push(tp);
      const latRef = isIngest ? { scenario: 'ingest/bare' } : undefined;
      out.push({
        scenario,
        figure: f.p50,
        unit: 'ms',
        runs: runs.map((m) => m.p50Ms),
        ...(latRef ? { compareTo: { ...latRef, figure: f.p50 } } : {}),
      });
      out.push({
        scenario,
        figure: f.p99,
        unit: 'ms',
        runs: runs.map((m) => m.p99Ms),
        ...(latRef ? { compareTo: { ...latRef, figure: f.p99 } } : {}),
      });
      out.push({
        scenario,
        figure: f.cpu,
        unit: '% core',
        runs: runs.map((m) => m.serverCpuPct ?? m.generatorCpuPct),
      });
      // CPU time per event is steadier than throughput on a busy machine: compare runs with it
      const planned = scenario === PLAN_TARGET;
      out.push({
        scenario,
        figure: f.cpuPerEvent,
        unit: 'µs',
        runs: runs.map((m) => m.cpuUsPerEvent ?? Number.NaN),
        // with a plan: against the same service without one
        ...(planned
          ? {
              compareTo: { scenario: 'ingest/kafkajs', figure: f.cpuPerEvent },
              target: TARGETS.planCpuVsNone,
            }
          : isIngest
            ? { compareTo: { scenario: 'ingest/bare', figure: f.cpuPerEvent } }
            : {}),
      });
      if (runs.some((m) => m.errors > 0))
        out.push({
          scenario,
          figure: f.err,
          unit: 'count',
          runs: runs.map((m) => m.errors),
          target: { kind: 'atMost', value: 0 },
        });
    }
  }
  // only compare with figures that were measured
  const known = new Set(out.map((f) => `${f.scenario}\u0000${f.figure}`));
  for (const f of out)
    if (f.compareTo && !known.has(`${f.compareTo.scenario}\u0000${f.compareTo.figure}`)) {
      delete f.compareTo;
      if (f.target?.kind === 'ratioAtLeast' || f.target?.kind === 'ratioAtMost') delete f.target;
    }
  return out;
}
