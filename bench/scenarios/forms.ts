// Forms: what the ingest host takes in lead-form submissions, beside its own single-event
// tracking call in the same run, on the same number of connections, same process:
//
//   forms · form post     an HTML form's urlencoded POST (no JavaScript), every field filled and
//                         checked (email, text, number, select, a hidden field), a valid signed
//                         time-to-fill token, the consent box left unticked; each post becomes
//                         an identify and a `Form Submitted` event on Kafka (acks=all), answered
//                         200 with the success page
//   forms · form+consent  the same with the consent box ticked: one more write, to Redis (the
//                         consent queued for the query service), after Kafka acknowledged
//   forms · track       POST /v1/track, one ~400-byte event per request, as in the ingest scenario
//
// The service runs with a minimum time to fill of 0 and no per-address or per-form limit (the
// benchmark posts thousands a second from one address with one token), so the figures are the
// capacity of the path, not of its abuse limits. The form definition is written to the
// definition store directly (as the query API would). Loopback only; runs interleave.
import { Redis } from 'ioredis';
import { type RunningServices, startServices } from '../../cli/services.ts';
import { signFormToken } from '../../ingest/form-token.ts';
import { loadConfig } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { checkFormInput, type FormDefinition } from '../../schemas/form.ts';
import { ID_SLOT, singleBodies } from '../events.ts';
import { type LoadSpec, runLoad } from '../load.ts';
import { cpuSampler } from '../machine.ts';
import { buildRows, type Figure } from '../report.ts';
import type { Measurement, ScenarioContext, ScenarioResult } from '../scenario.ts';
import { median } from '../stats.ts';

const CONNECTIONS = 32;
const WORKSPACE = 'default';
const FORM_ID = 'frm_bench';
const SECRET = 'bench-forms-secret-0123456789abcdef';

type Load = 'form post' | 'form+consent' | 'track';
const LOADS: Load[] = ['form post', 'form+consent', 'track'];

/** A lead form as a marketer builds one: the fields every post fills in. */
export function leadForm(): FormDefinition {
  const input = checkFormInput({
    name: 'Download the report',
    fields: [
      { name: 'email', label: 'Work email', type: 'email', required: true },
      { name: 'company', label: 'Company', type: 'text', required: true, maxLength: 120 },
      { name: 'size', label: 'Team size', type: 'number', min: 1, max: 100_000, trait: 'team_size' },
      { name: 'role', label: 'Role', type: 'select', options: ['dev', 'marketing', 'sales', 'other'] },
      { name: 'lead_source', label: 'Source', type: 'hidden', value: 'report' },
    ],
    consents: [
      {
        name: 'newsletter',
        purpose: 'newsletter',
        channel: 'email',
        text: 'Email me the monthly newsletter (unsubscribe any time).',
      },
    ],
    success: { message: 'Thanks! The report is on its way.' },
  });
  const at = new Date().toISOString();
  return {
    ...input,
    id: FORM_ID,
    workspaceId: WORKSPACE,
    version: 1,
    status: 'active',
    createdAt: at,
    updatedAt: at,
  };
}

/**
 * Urlencoded bodies as a browser posts the rendered form; the email's ID_SLOT is filled per
 * request by the load generator, so every lead is a different person.
 */
export function formBodies(count: number, token: string, nonce: string, consent: boolean): string[] {
  const enc = encodeURIComponent;
  const roles = ['dev', 'marketing', 'sales', 'other'];
  return Array.from({ length: count }, (_, i) =>
    [
      `_token=${enc(token)}`,
      `_page=${enc(`https://www.example.com/report?utm_source=news&utm_medium=email&utm_campaign=q${i % 4}`)}`,
      `_referrer=${enc('https://news.example.net/issue-42')}`,
      '_website=',
      `email=lead-${nonce}-${i}-${ID_SLOT}%40example.com`,
      `company=${enc(`Acme Widgets ${i}`)}`,
      `size=${10 + i}`,
      `role=${roles[i % roles.length]}`,
      'lead_source=report',
      ...(consent ? ['newsletter=on'] : []),
    ].join('&'),
  );
}

export async function formsScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const { settings } = ctx;
  const prefix = `bench-${ctx.nonce}-forms`;
  const redis = new Redis(ctx.redisUrl, { lazyConnect: false, maxRetriesPerRequest: 2 });
  let running: RunningServices | undefined;
  const measurements: Measurement[] = [];
  try {
    await new DefinitionStore(redis, prefix).put('forms', leadForm());
    const cfg = loadConfig({
      NODE_ENV: 'development',
      LOG_LEVEL: ctx.log.level as string,
      KAFKA_BROKERS: ctx.kafkaBrokers,
      REDIS_URL: ctx.redisUrl,
      CDP_TOPIC_PREFIX: prefix,
      CDP_REDIS_PREFIX: prefix,
      CDP_TOPIC_PARTITIONS: '8',
      CDP_DATA_DIR: ctx.dataDir,
      CDP_INGEST_HOST: '127.0.0.1',
      CDP_INGEST_PORT: '0',
      CDP_INGEST_RATE_LIMIT: '0',
      CDP_FORMS_SECRET: SECRET,
      CDP_FORMS_MIN_FILL_SECONDS: '0',
      CDP_FORMS_MAX_AGE_HOURS: '24',
      CDP_FORMS_IP_RATE_PER_MINUTE: '0',
      CDP_FORMS_FORM_RATE_PER_MINUTE: '0',
    });
    ctx.progress('forms: starting the ingest service (kafkajs) with a lead form');
    running = await startServices(cfg, ['ingest'], ctx.log.child({ bench: 'forms' }));
    const url = running.urls.ingest!;
    const token = signFormToken(SECRET, WORKSPACE, FORM_ID, Date.now());
    const auth = `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`;
    const bodies: Record<Load, string[]> = {
      'form post': formBodies(32, token, ctx.nonce, false),
      'form+consent': formBodies(32, token, ctx.nonce, true),
      track: singleBodies(64, ctx.nonce),
    };
    const specs: Record<Load, Omit<LoadSpec & { kind: 'http' }, 'warmupMs' | 'durationMs'>> = {
      'form post': formSpec(url, bodies['form post']),
      'form+consent': formSpec(url, bodies['form+consent']),
      track: {
        kind: 'http',
        url,
        path: '/v1/track',
        headers: { authorization: auth, 'content-type': 'application/json' },
        bodies: bodies.track,
        eventsPerRequest: 1,
        connections: CONNECTIONS,
      },
    };
    // both answer 200 before anything is measured: a refusing target is a failure, not a figure
    for (const load of LOADS) await firstOk(specs[load].url + specs[load].path, specs[load]);

    // one discarded pass of each load first: the first one measured would otherwise also pay
    // for the process warming up (JIT, the producer's first batches), in quick mode most of all
    ctx.progress('  forms: a discarded warm-up pass of each load');
    for (const load of LOADS)
      await runLoad({ ...specs[load], warmupMs: settings.warmupMs, durationMs: 1000 });
    // each run starts with another load: on a shared machine the position in the sequence
    // matters as much as the load (measured: the same loads reversed swapped the ranking)
    for (let run = 1; run <= settings.runs; run++)
      for (const load of LOADS.map((_, i) => LOADS[(i + run - 1) % LOADS.length]!)) {
        const spec: LoadSpec = {
          ...specs[load],
          warmupMs: settings.warmupMs,
          durationMs: settings.durationMs,
        };
        measurements.push(await measure(ctx, load, run, spec));
      }
  } finally {
    await running?.stop().catch(() => {});
    await redis.quit().catch(() => {});
  }
  return {
    rows: buildRows(figures(measurements)),
    measurements,
    notes: [
      `forms: ${CONNECTIONS} keep-alive connections each, the same ingest process; form post = an HTML form's urlencoded` +
        ' POST of a 5-field lead form with a valid token (~400 B; each becomes an identify + Form Submitted on Kafka),' +
        ' form+consent = the same with its consent box ticked (+ the consent queued in Redis), track = /v1/track, one' +
        ' event; CPU = the ingest process (here the benchmark process), per request; minimum time to fill 0, no form' +
        ' rate limits; a discarded warm-up pass of each load before the first run, and each run starts with the next' +
        ' load (one run, in quick mode, cannot even that out: compare CPU per request, the steadier figure)',
    ],
  };
}

function formSpec(url: string, bodies: string[]) {
  return {
    kind: 'http' as const,
    url,
    path: `/v1/forms/${WORKSPACE}/${FORM_ID}/submit`,
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
    bodies,
    eventsPerRequest: 2,
    connections: CONNECTIONS,
  };
}

async function firstOk(target: string, spec: { headers: Record<string, string>; bodies: string[] }) {
  const body = spec.bodies[0]!.split(ID_SLOT).join('0'.repeat(ID_SLOT.length));
  let last = '';
  for (let i = 0; i < 40; i++) {
    const res = await fetch(target, { method: 'POST', headers: spec.headers, body }).catch(
      (err: Error) => err,
    );
    if (!(res instanceof Error) && res.status === 200) return;
    last = res instanceof Error ? res.message : `${res.status} ${(await res.text()).slice(0, 200)}`;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`POST ${target} did not answer 200 (last: ${last})`);
}

async function measure(ctx: ScenarioContext, load: Load, run: number, spec: LoadSpec): Promise<Measurement> {
  let sampler: ReturnType<typeof cpuSampler> | undefined;
  let cpu: { processPct: number; machineBusyPct: number | null } | undefined;
  const r = await runLoad(spec, {
    onWindowStart: () => {
      sampler = cpuSampler();
    },
    onWindowEnd: () => {
      cpu = sampler?.stop();
    },
  });
  const serverCpuPct = cpu?.processPct ?? null;
  const m: Measurement = {
    scenario: 'forms',
    load,
    run,
    opsPerSec: r.opsPerSec,
    eventsPerSec: r.eventsPerSec,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    errors: r.errors,
    errorSamples: r.errorSamples,
    abandoned: r.abandoned,
    serverCpuPct,
    generatorCpuPct: r.generatorCpuPct,
    // per request (a form post is one submission, two events): what a post costs
    cpuUsPerEvent: serverCpuPct !== null && r.opsPerSec > 0 ? (serverCpuPct * 1e4) / r.opsPerSec : null,
    machineBusyPct: cpu?.machineBusyPct ?? null,
    jitterPct: r.jitterPct,
  };
  ctx.progress(
    `  run ${run}/${ctx.settings.runs}  forms ${load.padEnd(12)} ${Math.round(m.opsPerSec).toLocaleString('en-US').padStart(8)} req/s` +
      `  p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms` +
      `  cpu ${(serverCpuPct ?? 0).toFixed(0)}% (${m.cpuUsPerEvent?.toFixed(1) ?? '?'} µs/request)` +
      `  loadgen ${m.generatorCpuPct.toFixed(0)}%  machine ${m.machineBusyPct === null ? '?' : m.machineBusyPct.toFixed(0)}%` +
      (m.errors > 0 ? `  ERRORS ${m.errors} (${m.errorSamples.join('; ')})` : ''),
  );
  return m;
}

/** Per-run measurements → figures; the form post's compared with the tracking call's. */
export function figures(ms: readonly Measurement[]): Figure[] {
  const out: Figure[] = [];
  for (const load of LOADS) {
    const runs = ms.filter((m) => m.scenario === 'forms' && m.load === load);
    if (runs.length === 0) continue;
    const ref = (figure: string) =>
      load !== 'track' && ms.some((m) => m.load === 'track') ? { scenario: 'forms', figure } : undefined;
    const jitters = runs.map((m) => m.jitterPct).filter((j): j is number => j !== null);
    const fig = (name: string, unit: string, values: number[], extra: Partial<Figure> = {}): Figure => {
      const compareTo = ref(`track: ${name}`);
      return {
        scenario: 'forms',
        figure: `${load}: ${name}`,
        unit,
        runs: values,
        ...(compareTo ? { compareTo } : {}),
        ...extra,
      };
    };
    out.push(
      fig(
        'throughput',
        'req/s',
        runs.map((m) => m.opsPerSec),
        { jitterPct: jitters.length ? median(jitters) : null },
      ),
      fig(
        'p50',
        'ms',
        runs.map((m) => m.p50Ms),
      ),
      fig(
        'p99',
        'ms',
        runs.map((m) => m.p99Ms),
      ),
      fig(
        'CPU',
        '% core',
        runs.map((m) => m.serverCpuPct ?? Number.NaN),
      ),
      fig(
        'CPU per request',
        'µs',
        runs.map((m) => m.cpuUsPerEvent ?? Number.NaN),
      ),
    );
    if (runs.some((m) => m.errors > 0))
      out.push({
        scenario: 'forms',
        figure: `${load}: errors`,
        unit: 'count',
        runs: runs.map((m) => m.errors),
        target: { kind: 'atMost', value: 0 },
      });
  }
  return out;
}
