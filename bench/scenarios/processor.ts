// Processor: what one processor process takes, fed directly through processor.handleBatch
// (the consumer's handler) against the stack's real Redis and a real Kafka producer, with
//   processor/no segments        identity resolution and profile updates only
//   processor/10 segments        a small workspace: five rules that read what the events
//                                set (traits, counted events, in_segment) and five that never match
//   processor/1,000 segments     the same five plus 995 that never match
//   processor/10,000 segments    the same five plus 9,995 that never match
//   processor/no segments, Redis fsynced   no segments with a CDP_REDIS_DURABILITY mode on:
//                                appendfsync always (CONFIG SET for the measurement), plus
//                                one WAITAOF per batch (waitaof) where the server has it;
//                                right after the plain one in each run
// The events (see bench/processor-events.ts) are generated once up front, then cut per
// sub-scenario into 500-message batches per partition as a consumer receives a backlog;
// batches are handled one after another, as the processor's consumer does. The known
// people's profiles are built once through the processor (one history event each, with the
// segments every size has, so memberships exist as after a backfill); every
// sub-scenario and run copies them into its own workspace and Redis key prefix (removed
// afterwards), so all start from the same state. CPU per event is this process's CPU time
// (process.cpuUsage) over the measured batches; Redis CPU per event is redis-server's (INFO cpu).
import { readFileSync } from 'node:fs';
import { createProcessor } from '../../processor/pipeline.ts';
import { SegmentRegistry } from '../../processor/segment-registry.ts';
import { profileIdOfKey, profileScanPattern } from '../../profiles/scan.ts';
import { createKafka, type Producer } from '../../runtime/kafka/index.ts';
import { createRedis, type Redis } from '../../runtime/redis.ts';
import { supportsWaitaof, waitForAof } from '../../runtime/redis-durability.ts';
import { type IdentityKind, type WorkspaceKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { topics } from '../../schemas/topics.ts';
import { cpuSampler } from '../machine.ts';
import {
  type Batch,
  type EventStream,
  generateStream,
  prepareBatches,
  segmentDefinitions,
  TOUCHING_SEGMENTS,
} from '../processor-events.ts';
import { buildRows, type Figure, type Target } from '../report.ts';
import {
  type BenchSettings,
  ensureTopicsWithRetry,
  type Measurement,
  type ScenarioContext,
  type ScenarioResult,
} from '../scenario.ts';
import { cvPct, median, summarizeLatencies } from '../stats.ts';

const BATCH_SIZE = 500; // the processor consumer's maxBatchSize
/** Messages of the first batch handled alone first, to estimate what a whole batch costs. */
const PROBE = 10;
const PARTITIONS = 8;
const SEED = 20_260_601;
/** People with a profile before the measured stream starts. */
const KNOWN_PEOPLE = 10_000;
/** Workspace sizes measured, in order; 0 = no segments at all. */
export const SEGMENT_COUNTS = [0, 10, 1000, 10_000] as const;
/** Profiles whose keys are weighed with MEMORY USAGE. */
const MEMORY_SAMPLE = 500;

/** From the issues: ≥ 25,000 events/s per core; 10,000 segments cost at most 2× what 10 do. */
export const TARGETS = {
  eventsPerCore: { kind: 'atLeast', value: 25_000 } as Target,
  segmentScaling: { kind: 'ratioAtMost', value: 2 } as Target,
};

/** Timing of one sub-scenario run: warm-up (at least a probe), then a measured window (at least one batch). */
export function processorTiming(settings: BenchSettings): {
  warmupMs: number;
  durationMs: number;
  /** A batch predicted to take longer is measured as smaller batches (named in the notes). */
  maxBatchMs: number;
  /** Events generated up front (a run that uses them all ends its window early). */
  events: number;
} {
  // quick mode must leave the whole benchmark under 2 minutes: ~4 s per workspace size
  return settings.mode === 'quick'
    ? { warmupMs: 300, durationMs: 1200, maxBatchMs: 1200, events: 30_000 }
    : {
        warmupMs: settings.warmupMs,
        durationMs: settings.durationMs,
        maxBatchMs: 4 * settings.durationMs,
        events: 300_000,
      };
}

export const scenarioName = (segments: number) =>
  segments === 0 ? 'processor/no segments' : `processor/${segments.toLocaleString('en-US')} segments`;

/** The no-segments workload with the batch's Redis writes on disk before it completes. */
export const DURABLE_SCENARIO = 'processor/no segments, Redis fsynced';

/** How the durable measurement makes a batch's writes durable (CDP_REDIS_DURABILITY). */
interface Durable {
  mode: 'waitaof' | 'appendfsync-always';
  /** After each batch, before it counts as done (WAITAOF; nothing for appendfsync-always). */
  barrier(): Promise<void>;
  /** Around the measurement: the server's appendfsync to always, and back after. */
  begin(): Promise<void>;
  end(): Promise<void>;
}

/**
 * The recommended setting: appendfsync always on the server (CONFIG SET for the measurement),
 * plus one WAITAOF per batch where the server has it (under everysec a WAITAOF waits for the
 * next fsync, up to a second per batch). Null where CONFIG is not allowed.
 */
async function durableMode(redis: Redis): Promise<Durable | null> {
  const before = ((await redis.config('GET', 'appendfsync').catch(() => [])) as string[])[1];
  if (!before) return null;
  const waitaof = await supportsWaitaof(redis);
  return {
    mode: waitaof ? 'waitaof' : 'appendfsync-always',
    barrier: waitaof ? () => waitForAof(redis, 5000) : async () => {},
    begin: async () => void (await redis.config('SET', 'appendfsync', 'always')),
    end: async () => void (await redis.config('SET', 'appendfsync', before)),
  };
}

const FIG = {
  tp: 'throughput',
  perCore: 'events/s per core',
  cpu: 'CPU',
  cpuPerEvent: 'CPU per event',
  redisPerEvent: 'Redis CPU per event',
  p50: 'batch p50',
  p99: 'batch p99',
  err: 'errors',
  profileBytes: 'Redis bytes per profile',
  usedPerProfile: 'Redis used_memory per new profile',
  dedupBytes: 'Redis dedup marker per event',
} as const;

/** CPU time of this process's main thread (the event loop), µs; NaN where /proc is missing. */
function mainThreadCpuMicros(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}
/** USER_HZ: Linux reports thread times in 1/100 s. */
const CLOCK_TICKS = 100;

/** `INFO` text → field map. */
export function parseRedisInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) out.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return out;
}

async function redisCpuMicros(redis: Redis): Promise<number> {
  const info = parseRedisInfo(await redis.info('cpu'));
  return (Number(info.get('used_cpu_user') ?? 0) + Number(info.get('used_cpu_sys') ?? 0)) * 1e6;
}

async function redisUsedMemory(redis: Redis): Promise<number> {
  return Number(parseRedisInfo(await redis.info('memory')).get('used_memory') ?? Number.NaN);
}

/** Keys matching `pattern`, by SCAN; stops once `enough` of them pass `keep`. */
async function scanKeys(
  redis: Redis,
  pattern: string,
  keep: (key: string) => boolean = () => true,
  enough = Number.POSITIVE_INFINITY,
): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 10_000);
    cursor = next;
    for (const k of keys) if (keep(k)) out.push(k);
  } while (cursor !== '0' && out.length < enough);
  return out;
}

async function removeKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 10_000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/** `INFO commandstats` → command → calls and µs. */
async function commandStats(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const out = new Map<string, { calls: number; usec: number }>();
  for (const [k, v] of parseRedisInfo(await redis.info('commandstats'))) {
    const calls = /calls=(\d+)/.exec(v);
    const usec = /usec=(\d+)/.exec(v);
    if (calls && usec)
      out.set(k.replace(/^cmdstat_/, ''), { calls: Number(calls[1]), usec: Number(usec[1]) });
  }
  return out;
}

interface MemoryFigures {
  /** MEMORY USAGE of a live profile's own keys and of its identifier keys, mean over a sample. */
  profileBytes: number;
  /** MEMORY USAGE of a dedup marker (one per event, kept CDP_DEDUP_TTL_SECONDS). */
  dedupBytes: number;
}

const memoryUsage = async (redis: Redis, keys: string[]) => {
  let bytes = 0;
  for (let i = 0; i < keys.length; i += 5000)
    for (const [, v] of (await redis
      .pipeline(keys.slice(i, i + 5000).map((k) => ['memory', 'usage', k, 'samples', '0']))
      .exec()) ?? [])
      bytes += typeof v === 'number' ? v : 0;
  return bytes;
};

/** Weighs a sample of what a run left in Redis (SCAN order is the hash table's: unrelated to the keys). */
async function weigh(redis: Redis, wk: WorkspaceKeys): Promise<MemoryFigures> {
  const { tag } = wk;
  const candidates = (
    await scanKeys(
      redis,
      profileScanPattern(tag),
      (k) => profileIdOfKey(tag, k) !== undefined,
      2 * MEMORY_SAMPLE,
    )
  ).map((k) => profileIdOfKey(tag, k)!);
  const merged = await redis.pipeline(candidates.map((p) => ['hexists', wk.profile(p), 'mergedInto'])).exec();
  const sample = candidates.filter((_, i) => merged?.[i]?.[1] === 0).slice(0, MEMORY_SAMPLE);
  const sets = await redis
    .pipeline(
      sample.flatMap((p) => [
        ['smembers', wk.profileIdentities(p)],
        ['smembers', wk.profileConditions(p)],
      ]),
    )
    .exec();
  const keys: string[] = [];
  sample.forEach((p, i) => {
    const ids = (sets?.[2 * i]?.[1] as string[] | undefined) ?? [];
    const conds = (sets?.[2 * i + 1]?.[1] as string[] | undefined) ?? [];
    keys.push(
      wk.profile(p),
      wk.profileTraits(p),
      wk.profileTraitTimes(p),
      wk.profileIdentities(p),
      wk.profileSegments(p),
      wk.profileConditions(p),
      ...conds.map((c) => wk.profileConditionTimes(p, c)),
    );
    for (const m of ids) {
      const sep = m.indexOf(':');
      keys.push(wk.identity(m.slice(0, sep) as IdentityKind, m.slice(sep + 1)));
    }
  });
  const dedupKeys = await scanKeys(redis, wk.dedup('*'), () => true, MEMORY_SAMPLE);
  return {
    profileBytes: sample.length ? (await memoryUsage(redis, keys)) / sample.length : Number.NaN,
    dedupBytes: dedupKeys.length ? (await memoryUsage(redis, dedupKeys)) / dedupKeys.length : Number.NaN,
  };
}

/** The producer, counting what the processor publishes per topic. */
function countingProducer(inner: Producer): Producer & { sent: Map<string, number> } {
  const sent = new Map<string, number>();
  return {
    sent,
    connect: () => inner.connect(),
    disconnect: () => inner.disconnect(),
    async send(topic, messages) {
      await inner.send(topic, messages);
      sent.set(topic, (sent.get(topic) ?? 0) + messages.length);
    },
  };
}

interface Shared {
  ctx: ScenarioContext;
  redis: Redis;
  producer: ReturnType<typeof countingProducer>;
  stream: EventStream;
  topicPrefix: string;
  timing: ReturnType<typeof processorTiming>;
}

const batchCtx = { heartbeat: async () => {}, isActive: () => true };

function processorFor(s: Shared, registry: SegmentRegistry, redisPrefix: string, scenario: string) {
  return createProcessor({
    redis: s.redis,
    producer: s.producer,
    topics: topics(s.topicPrefix),
    registry,
    redisPrefix,
    apply: { dedupTtlSeconds: 7 * 24 * 3600, maxIdentities: 100 },
    log: s.ctx.log.child({ bench: scenario }),
    now: () => new Date(),
  });
}

/** The known people's profiles, built once through the processor; every run starts from a copy (timers aside). */
interface Template {
  tag: string;
  prefix: string;
  /** Keys below the tag (dedup markers left out). */
  suffixes: string[];
  profiles: number;
  /** INFO used_memory growth while building it / profiles: a new profile with its first event's dedup marker. */
  usedMemoryPerNewProfile: number;
  ms: number;
}

async function buildTemplate(s: Shared): Promise<Template> {
  const { ctx, redis } = s;
  const workspaceId = `ws-${ctx.nonce}-known`;
  const prefix = `bench-${ctx.nonce}-proc-known`;
  const wk = workspaceKeys(prefix, workspaceId);
  const { tag } = wk;
  // with the rules every workspace size has, so the known profiles already hold their
  // memberships (as after a backfill) and a run publishes only real transitions
  const registry = new SegmentRegistry(ctx.log);
  registry.replace(segmentDefinitions(workspaceId, TOUCHING_SEGMENTS.length));
  const processor = processorFor(s, registry, prefix, 'processor/known people');
  const batches = prepareBatches(
    s.stream.history,
    workspaceId,
    topics(s.topicPrefix).events,
    PARTITIONS,
    BATCH_SIZE,
  );
  const t0 = performance.now();
  const used0 = await redisUsedMemory(redis);
  for (let i = 0; i < batches.length; i++) await processor.handleBatch(batches.batch(i), batchCtx);
  const used1 = await redisUsedMemory(redis);
  const keys = (await scanKeys(redis, `${tag}:*`)).filter((k) => !k.startsWith(wk.dedup('')));
  const profiles = keys.filter((k) => profileIdOfKey(tag, k) !== undefined).length;
  return {
    tag,
    prefix,
    suffixes: keys.map((k) => k.slice(tag.length)),
    profiles,
    usedMemoryPerNewProfile: profiles ? (used1 - used0) / profiles : Number.NaN,
    ms: performance.now() - t0,
  };
}

async function copyTemplate(redis: Redis, tpl: Template, tag: string): Promise<void> {
  for (let i = 0; i < tpl.suffixes.length; i += 10_000)
    await redis
      .pipeline(tpl.suffixes.slice(i, i + 10_000).map((x) => ['copy', `${tpl.tag}${x}`, `${tag}${x}`]))
      .exec();
}

async function measure(
  s: Shared,
  tpl: Template,
  segments: number,
  run: number,
  durable?: Durable,
): Promise<Measurement> {
  const { ctx, redis, stream, timing } = s;
  const scenario = durable ? DURABLE_SCENARIO : scenarioName(segments);
  const workspaceId = `ws-${ctx.nonce}-s${segments}${durable ? 'd' : ''}-r${run}`;
  const redisPrefix = `bench-${ctx.nonce}-proc-s${segments}${durable ? 'd' : ''}-r${run}`;
  const wk = workspaceKeys(redisPrefix, workspaceId);
  const { tag } = wk;

  const registry = new SegmentRegistry(ctx.log);
  const defs = segmentDefinitions(workspaceId, segments);
  const r0 = performance.now();
  registry.replace(defs);
  const replaceMs = performance.now() - r0;
  const processor = processorFor(s, registry, redisPrefix, scenario);
  const c0 = performance.now();
  await copyTemplate(redis, tpl, tag);
  const copyMs = performance.now() - c0;
  const prepared = prepareBatches(
    stream.events,
    workspaceId,
    topics(s.topicPrefix).events,
    PARTITIONS,
    BATCH_SIZE,
  );

  const errorSamples = new Set<string>();
  let errors = 0;
  const handle = async (b: Batch): Promise<number> => {
    const b0 = performance.now();
    try {
      await processor.handleBatch(b, batchCtx);
      await durable?.barrier();
    } catch (err) {
      errors++;
      if (errorSamples.size < 5) errorSamples.add((err as Error).message);
    }
    return performance.now() - b0;
  };
  // hands out the prepared batches, or pieces of them (never messages of two partitions at once)
  let nextBatch = 0;
  let current: Batch | null = null;
  let pos = 0;
  const take = (max: number): Batch | null => {
    if (!current || pos >= current.messages.length) {
      if (nextBatch >= prepared.length) return null;
      current = prepared.batch(nextBatch++);
      pos = 0;
    }
    const messages =
      pos === 0 && max >= current.messages.length ? current.messages : current.messages.slice(pos, pos + max);
    pos += messages.length;
    return { ...current, messages };
  };

  // warm-up, which also learns what a batch costs before committing to one (with thousands
  // of segments one can take many seconds): batches of 10, 20, 40, ... up to 500 messages,
  // then 500s, for as long as the next one fits in the warm-up time
  let size = PROBE;
  let perEventMs = Number.POSITIVE_INFINITY;
  await durable?.begin();
  const w0 = performance.now();
  for (;;) {
    const b = take(size);
    if (!b) break;
    perEventMs = (await handle(b)) / b.messages.length;
    size = Math.min(BATCH_SIZE, size * 2);
    if (
      errors > 0 ||
      nextBatch > prepared.length / 4 ||
      performance.now() - w0 + perEventMs * size > timing.warmupMs
    )
      break;
  }

  // a batch that would take longer than the window allows is measured in smaller pieces
  const batchSize =
    perEventMs * BATCH_SIZE > timing.maxBatchMs
      ? Math.max(PROBE, Math.floor(timing.maxBatchMs / 2 / perEventMs))
      : BATCH_SIZE;

  // the measured window: at least one batch
  const latencies: number[] = [];
  const rates: number[] = [];
  let events = 0;
  let exhausted = false;
  const t = topics(s.topicPrefix);
  const sent0 = {
    changes: s.producer.sent.get(t.segmentChanges) ?? 0,
    dead: s.producer.sent.get(t.deadLetter) ?? 0,
  };
  const stats0 = await commandStats(redis);
  const sampler = cpuSampler();
  const main0 = mainThreadCpuMicros();
  const cpu0 = process.cpuUsage();
  const redis0 = await redisCpuMicros(redis);
  const m0 = performance.now();
  while (errors === 0 && (latencies.length === 0 || performance.now() - m0 < timing.durationMs)) {
    const b = take(batchSize);
    if (!b) {
      exhausted = true;
      break;
    }
    const ms = await handle(b);
    if (errors > 0) break;
    latencies.push(ms);
    rates.push((b.messages.length * 1000) / ms);
    events += b.messages.length;
  }
  const windowMs = performance.now() - m0;
  const cpu = process.cpuUsage(cpu0);
  const mainMicros = mainThreadCpuMicros() - main0;
  const redisMicros = (await redisCpuMicros(redis)) - redis0;
  await durable?.end();
  const machine = sampler.stop();
  const stats1 = await commandStats(redis);
  const changes = (s.producer.sent.get(t.segmentChanges) ?? 0) - sent0.changes;
  const deadLettered = (s.producer.sent.get(t.deadLetter) ?? 0) - sent0.dead;

  const mem = await weigh(redis, wk);
  await removeKeys(redis, redisPrefix);

  let redisCalls = 0;
  for (const [cmd, v] of stats1)
    if (!['info', 'scan', 'memory', 'hexists', 'smembers', 'unlink', 'copy'].includes(cmd))
      redisCalls += v.calls - (stats0.get(cmd)?.calls ?? 0);
  const evalsha = {
    calls: (stats1.get('evalsha')?.calls ?? 0) - (stats0.get('evalsha')?.calls ?? 0),
    usec: (stats1.get('evalsha')?.usec ?? 0) - (stats0.get('evalsha')?.usec ?? 0),
  };
  const cpuMicros = cpu.user + cpu.system;
  const lat = summarizeLatencies(latencies);
  const m: Measurement = {
    scenario,
    load: `batch×${batchSize}`,
    run,
    opsPerSec: (latencies.length * 1000) / windowMs,
    eventsPerSec: (events * 1000) / windowMs,
    p50Ms: lat.p50,
    p99Ms: lat.p99,
    maxMs: lat.max,
    errors,
    errorSamples: [...errorSamples],
    abandoned: 0,
    serverCpuPct: cpuMicros / 10 / windowMs,
    generatorCpuPct: 0,
    cpuUsPerEvent: events > 0 ? cpuMicros / events : null,
    machineBusyPct: machine.machineBusyPct,
    jitterPct: cvPct(rates),
    details: {
      segments,
      events,
      batches: latencies.length,
      batchSize,
      windowMs,
      /** The event loop thread's share (the rest: GC and compiler threads, libuv). */
      mainThreadCpuUsPerEvent: events > 0 ? mainMicros / events : Number.NaN,
      redisCpuUsPerEvent: events > 0 ? redisMicros / events : Number.NaN,
      redisCpuPct: redisMicros / 10 / windowMs,
      /** Commands Redis ran per event, those inside the Lua scripts included. */
      redisCommandsPerEvent: events > 0 ? redisCalls / events : Number.NaN,
      /** Redis time per apply-event script call (its own accounting, µs). */
      applyScriptUs: evalsha.calls > 0 ? evalsha.usec / evalsha.calls : Number.NaN,
      /** Segment transitions published, per 1,000 events. */
      segmentChangesPer1000: events > 0 ? (changes * 1000) / events : Number.NaN,
      deadLettered,
      registryReplaceMs: replaceMs,
      templateCopyMs: copyMs,
      streamExhausted: exhausted ? 1 : 0,
      profileBytes: mem.profileBytes,
      dedupBytesPerEvent: mem.dedupBytes,
      usedMemoryPerNewProfile: tpl.usedMemoryPerNewProfile,
    },
  };
  const d = m.details!;
  ctx.progress(
    `  run ${run}/${ctx.settings.runs}  ${scenario.padEnd(26)} ${Math.round(m.eventsPerSec).toLocaleString('en-US').padStart(7)} events/s` +
      `  cpu ${m.serverCpuPct!.toFixed(0)}% (${m.cpuUsPerEvent?.toFixed(1) ?? '?'} µs/event, ${d.mainThreadCpuUsPerEvent!.toFixed(0)} on the event loop)` +
      `  redis ${d.redisCpuPct!.toFixed(0)}% (${d.redisCpuUsPerEvent!.toFixed(1)} µs/event, ${d.redisCommandsPerEvent!.toFixed(0)} commands)` +
      `  ${d.segmentChangesPer1000!.toFixed(0)} segment changes/1k events` +
      `  batch p50 ${m.p50Ms.toFixed(1)} ms p99 ${m.p99Ms.toFixed(1)} ms` +
      `  machine ${m.machineBusyPct === null ? '?' : m.machineBusyPct.toFixed(0)}%` +
      `  ${Math.round(mem.profileBytes)} B per profile` +
      (batchSize !== BATCH_SIZE
        ? `  (batches of ${batchSize}: one of ${BATCH_SIZE} would take ~${((perEventMs * BATCH_SIZE) / 1000).toFixed(0)} s)`
        : '') +
      (exhausted ? '  (ran out of generated events)' : '') +
      (deadLettered > 0 ? `  DEAD-LETTERED ${deadLettered}` : '') +
      (errors > 0 ? `  ERRORS ${errors} (${m.errorSamples.join('; ')})` : ''),
  );
  return m;
}

export async function processorScenario(
  ctx: ScenarioContext,
  segmentCounts: readonly number[] = SEGMENT_COUNTS,
): Promise<ScenarioResult> {
  const timing = processorTiming(ctx.settings);
  const topicPrefix = `bench-${ctx.nonce}-proc`;
  const t = topics(topicPrefix);
  const kafka = createKafka(
    { brokers: ctx.kafkaBrokers.split(','), driver: 'kafkajs', clientId: 'cdp-bench' },
    ctx.log,
  );

  ctx.progress(`processor: generating ${timing.events.toLocaleString('en-US')} events`);
  const g0 = performance.now();
  const stream = generateStream({
    seed: SEED,
    count: timing.events,
    initialPeople: KNOWN_PEOPLE,
    // event times end about now, so counted windows (1 h, 7 d) hold them
    startMs: Date.now() - 60_000,
    spacingMs: 0.05,
    idPrefix: `bench-${ctx.nonce}`,
  });
  const generateMs = performance.now() - g0;

  const admin = kafka.admin();
  try {
    await ensureTopicsWithRetry(admin, [
      { topic: t.segmentChanges, partitions: PARTITIONS },
      { topic: t.identity, partitions: PARTITIONS },
      { topic: t.deadLetter, partitions: 1 },
    ]);
  } finally {
    await admin.disconnect().catch(() => {});
  }

  const redis = createRedis(ctx.redisUrl, ctx.log, 'cdp-bench-processor');
  const producer = countingProducer(kafka.producer());
  const measurements: Measurement[] = [];
  let tpl: Template | undefined;
  let durable: Durable | null = null;
  try {
    await producer.connect();
    const shared: Shared = { ctx, redis, producer, stream, topicPrefix, timing };
    tpl = await buildTemplate(shared);
    ctx.progress(
      `  ${tpl.profiles.toLocaleString('en-US')} known people's profiles built in ${(tpl.ms / 1000).toFixed(1)} s;` +
        ' every run starts from a copy of them',
    );
    durable = await durableMode(redis);
    for (let run = 1; run <= ctx.settings.runs; run++)
      for (const segments of segmentCounts) {
        measurements.push(await measure(shared, tpl, segments, run));
        // side by side with the plain one: the same events from the same copy, durable
        if (segments === 0 && durable) measurements.push(await measure(shared, tpl, 0, run, durable));
      }
  } finally {
    if (tpl) await removeKeys(redis, tpl.prefix).catch(() => {});
    await producer.disconnect().catch(() => {});
    redis.disconnect();
  }

  const smaller = measurements
    .filter((m) => m.details?.batchSize !== BATCH_SIZE)
    .map((m) => `${m.scenario} run ${m.run}: ${m.details?.batchSize}`);
  const st = stream.stats;
  const n = timing.events;
  const pct = (v: number) => `${((v / n) * 100).toFixed(0)}%`;
  return {
    rows: buildRows(figures(measurements)),
    measurements,
    notes: [
      `processor: processor.handleBatch called in this process with ${BATCH_SIZE}-message batches of one partition ` +
        `(${PARTITIONS} partitions, round robin), one batch at a time as the consumer does, against the stack's Redis ` +
        'and a kafkajs producer (segment changes, acks=all); ' +
        `${timing.warmupMs / 1000} s warm-up + ${timing.durationMs / 1000} s measured per workspace size and run, ` +
        `each in its own workspace and Redis prefix, starting from the same ${KNOWN_PEOPLE.toLocaleString('en-US')} ` +
        'known profiles (built once through the processor with the 5 rules below that read the events, so their ' +
        'memberships exist, then copied)',
      `processor events: ${n.toLocaleString('en-US')} generated up front in ${(generateMs / 1000).toFixed(1)} s ` +
        `(seed ${SEED}), ${Math.round(st.meanBytes)} B mean; track ${pct(st.track)}, page ${pct(st.page)}, ` +
        `identify ${pct(st.identify)}; Zipf-like popularity; ${pct(st.newVisitors)} from new anonymous visitors, ` +
        `${st.signups.toLocaleString('en-US')} anonymous visitors who identify, ` +
        `${st.deviceJoins.toLocaleString('en-US')} identifies merging a new device's profile`,
      `processor segments: the same ${TOUCHING_SEGMENTS.length} rules read what the events set (traits.plan, ` +
        "traits.logins, event_count of 'Order Completed' and of 'Product Viewed' with a filter, in_segment); the " +
        'others never match: 2/3 compare traits no event sets, 1/3 count an event name never sent (each its own condition)',
      'processor figures: events/s per core = 1 / (process CPU per event); Redis CPU = redis-server used_cpu_user+sys ' +
        `(INFO cpu) over the window; bytes per profile = MEMORY USAGE of a sample of ${MEMORY_SAMPLE} live profiles' ` +
        'keys after the run (hash, traits, trait times, identifiers, segment epochs, counted-event sets) plus their ' +
        'identifier keys; used_memory per new profile = INFO used_memory growth while the known profiles were ' +
        "built (one event each) / profiles, which includes that event's dedup marker",
      ...(durable
        ? [
            `processor durability: "${DURABLE_SCENARIO}" is "processor/no segments" with CDP_REDIS_DURABILITY=${durable.mode} ` +
              '(CONFIG SET appendfsync always for its warm-up and window, then back' +
              (durable.mode === 'waitaof'
                ? ', and one WAITAOF 1 0 per batch)'
                : '; this Redis has no WAITAOF)') +
              ', measured right after it in each run; ratio = durable / plain',
          ]
        : segmentCounts.includes(0)
          ? ['processor durability: not measured (this Redis does not allow CONFIG SET appendfsync)']
          : []),
      ...(smaller.length
        ? [
            `processor: measured with smaller batches because one of ${BATCH_SIZE} would outlast the window ` +
              `(${smaller.join('; ')}): per-event figures still hold, batch p50/p99 are of those batches`,
          ]
        : []),
    ],
  };
}

/** Per-run measurements → figures, with comparisons and targets. */
export function figures(ms: readonly Measurement[]): Figure[] {
  const out: Figure[] = [];
  const ref = scenarioName(10);
  const haveRef = ms.some((m) => m.scenario === ref);
  for (const segments of SEGMENT_COUNTS) {
    const scenario = scenarioName(segments);
    const runs = ms.filter((m) => m.scenario === scenario);
    if (runs.length === 0) continue;
    const detail = (k: string) => runs.map((m) => m.details?.[k] ?? Number.NaN);
    const jitters = runs.map((m) => m.jitterPct).filter((j): j is number => j !== null);
    const compare = haveRef && segments > 10 ? ref : null;
    out.push({
      scenario,
      figure: FIG.tp,
      unit: 'events/s',
      runs: runs.map((m) => m.eventsPerSec),
      jitterPct: jitters.length ? median(jitters) : null,
    });
    out.push({
      scenario,
      figure: FIG.perCore,
      unit: 'events/s',
      runs: runs.map((m) => (m.cpuUsPerEvent ? 1e6 / m.cpuUsPerEvent : Number.NaN)),
      // issue #4's target is on identity and profile updates; the segment sizes are
      // issue #5's, whose target is the cost ratio below
      ...(segments === 0 ? { target: TARGETS.eventsPerCore } : {}),
    });
    out.push({
      scenario,
      figure: FIG.cpu,
      unit: '% core',
      runs: runs.map((m) => m.serverCpuPct ?? Number.NaN),
    });
    out.push({
      scenario,
      figure: FIG.cpuPerEvent,
      unit: 'µs',
      runs: runs.map((m) => m.cpuUsPerEvent ?? Number.NaN),
      ...(compare ? { compareTo: { scenario: compare, figure: FIG.cpuPerEvent } } : {}),
      ...(compare && segments === 10_000 ? { target: TARGETS.segmentScaling } : {}),
    });
    out.push({
      scenario,
      figure: FIG.redisPerEvent,
      unit: 'µs',
      runs: detail('redisCpuUsPerEvent'),
      ...(compare ? { compareTo: { scenario: compare, figure: FIG.redisPerEvent } } : {}),
    });
    out.push({ scenario, figure: FIG.p50, unit: 'ms', runs: runs.map((m) => m.p50Ms) });
    out.push({ scenario, figure: FIG.p99, unit: 'ms', runs: runs.map((m) => m.p99Ms) });
    if (segments === 10) {
      out.push({ scenario, figure: FIG.profileBytes, unit: 'B', runs: detail('profileBytes') });
      out.push({ scenario, figure: FIG.usedPerProfile, unit: 'B', runs: detail('usedMemoryPerNewProfile') });
      out.push({ scenario, figure: FIG.dedupBytes, unit: 'B', runs: detail('dedupBytesPerEvent') });
    }
    if (runs.some((m) => m.errors > 0))
      out.push({
        scenario,
        figure: FIG.err,
        unit: 'count',
        runs: runs.map((m) => m.errors),
        target: { kind: 'atMost', value: 0 },
      });
  }
  const durable = ms.filter((m) => m.scenario === DURABLE_SCENARIO);
  if (durable.length > 0) {
    const plain = scenarioName(0);
    const vs = (figure: string) =>
      ms.some((m) => m.scenario === plain) ? { compareTo: { scenario: plain, figure } } : {};
    const fig = (figure: string, unit: string, runs: number[]) =>
      out.push({ scenario: DURABLE_SCENARIO, figure, unit, runs, ...vs(figure) });
    fig(
      FIG.tp,
      'events/s',
      durable.map((m) => m.eventsPerSec),
    );
    fig(
      FIG.perCore,
      'events/s',
      durable.map((m) => (m.cpuUsPerEvent ? 1e6 / m.cpuUsPerEvent : Number.NaN)),
    );
    fig(
      FIG.cpuPerEvent,
      'µs',
      durable.map((m) => m.cpuUsPerEvent ?? Number.NaN),
    );
    fig(
      FIG.redisPerEvent,
      'µs',
      durable.map((m) => m.details?.redisCpuUsPerEvent ?? Number.NaN),
    );
    fig(
      FIG.p50,
      'ms',
      durable.map((m) => m.p50Ms),
    );
    fig(
      FIG.p99,
      'ms',
      durable.map((m) => m.p99Ms),
    );
    if (durable.some((m) => m.errors > 0))
      out.push({
        scenario: DURABLE_SCENARIO,
        figure: FIG.err,
        unit: 'count',
        runs: durable.map((m) => m.errors),
        target: { kind: 'atMost', value: 0 },
      });
  }
  return out;
}
