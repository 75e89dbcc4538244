// `npm run bench`: measures the pipeline on this machine against its own local stack.
//
//   tsx bench/main.ts            full: 3 interleaved runs of every measurement (~10 min on 2 cores)
//   tsx bench/main.ts --quick    one short run (< 2 min): a CI smoke check, never fails on speed
//   tsx bench/main.ts --json     the report as JSON on stdout (progress goes to stderr)
//   tsx bench/main.ts --compare=before.json   also compares this run with a saved report
//
// Kafka and Redis are started in a temporary directory and stopped at the end, unless
// KAFKA_BROKERS / REDIS_URL point at running ones. Exit status: 0 done; 1 the benchmark
// failed or a target answered errors; 3 (full mode only) a speed target was missed.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { type LocalStack, startLocalStack } from '../infra/local/stack.ts';
import type { Logger } from '../runtime/log.ts';
import { type Comparison, compareReports, readReportRows, renderComparison } from './compare.ts';
import { killLoadGenerators } from './load.ts';
import { type MachineInfo, machineInfo } from './machine.ts';
import { describeNoise, type NoiseBand, noiseBand, type ResultRow, renderTable } from './report.ts';
import { type BenchSettings, type Measurement, type Mode, type Scenario, SETTINGS } from './scenario.ts';
import { activationScenario } from './scenarios/activation.ts';
import { broadcastScenario } from './scenarios/broadcast.ts';
import { consoleScenario } from './scenarios/console.ts';
import { e2eScenario, peerScenario } from './scenarios/e2e.ts';
import { formsScenario } from './scenarios/forms.ts';
import { historyScenario } from './scenarios/history.ts';
import { importsScenario } from './scenarios/imports.ts';
import { ingestScenario } from './scenarios/ingest.ts';
import { journeysScenario } from './scenarios/journeys.ts';
import { processorScenario } from './scenarios/processor.ts';
import { median } from './stats.ts';

/** Scenarios in the order they run; add end-to-end here. */
const SCENARIOS: Array<{ name: string; run: Scenario }> = [
  { name: 'ingest', run: ingestScenario },
  { name: 'forms', run: formsScenario },
  { name: 'processor', run: processorScenario },
  { name: 'e2e', run: e2eScenario },
  { name: 'peer', run: peerScenario },
  { name: 'activation', run: activationScenario },
  { name: 'journeys', run: journeysScenario },
  { name: 'broadcast', run: broadcastScenario },
  { name: 'history', run: historyScenario },
  { name: 'console', run: consoleScenario },
  { name: 'imports', run: importsScenario },
];

const USAGE = `usage: tsx bench/main.ts [--quick] [--json] [--only=<scenario>] [--compare=<report.json>]
  --quick   one short run of every measurement (under 2 minutes); never fails on speed
  --json    machine-readable report on stdout
  --compare=before.json  this run's figures beside a saved --json report's, each marked as
            agreeing when the change is within the larger of the two spreads (exit status
            unchanged; also: tsx bench/compare.ts before.json after.json)
  --only=a,b  run only these scenarios (names: ${SCENARIOS.map((s) => s.name).join(', ')})
  --cpu-prof[=dir]  e2e: run the services under V8's CPU profiler (profiles written to dir,
            default a new directory under the system's temp directory) and print each
            process's top self-time functions during the 1,000 events/s step
Honours KAFKA_BROKERS and REDIS_URL (use running ones instead of starting a local stack)
and LOG_LEVEL (service logs on stderr, default warn).`;

export interface BenchReport {
  machine: MachineInfo;
  mode: Mode;
  settings: BenchSettings;
  startedAt: string;
  durationSec: number;
  noise: NoiseBand & { summary: string };
  machineBusyPct: { median: number | null; min: number | null; max: number | null };
  allTargetsMet: boolean;
  errors: number;
  notes: string[];
  results: ResultRow[];
  measurements: Measurement[];
  /** With --compare: this run against the saved report. */
  comparison?: Comparison & { against: string };
}

async function main(argv: string[]): Promise<number> {
  const only = argv
    .filter((a) => a.startsWith('--only='))
    .flatMap((a) => a.slice('--only='.length).split(','));
  const compareWith = argv.find((a) => a.startsWith('--compare='))?.slice('--compare='.length);
  const cpuProfArg = argv.find((a) => a === '--cpu-prof' || a.startsWith('--cpu-prof='));
  const cpuProfDir =
    cpuProfArg === undefined
      ? undefined
      : resolve(
          cpuProfArg.slice('--cpu-prof='.length) ||
            join(tmpdir(), `cdp-cpu-prof-${new Date().toISOString().replace(/[:.]/g, '-')}`),
        );
  const unknown = argv.filter(
    (a) =>
      !['--json', '--quick', '--help', '-h'].includes(a) &&
      a !== cpuProfArg &&
      !(a.startsWith('--compare=') && a.length > '--compare='.length) &&
      !(a.startsWith('--only=') && only.every((n) => SCENARIOS.some((s) => s.name === n))),
  );
  if (argv.includes('--help') || argv.includes('-h') || unknown.length > 0) {
    process.stderr.write(`${unknown.length ? `unknown option ${unknown.join(' ')}\n` : ''}${USAGE}\n`);
    return unknown.length ? 64 : 0;
  }
  const json = argv.includes('--json');
  // read before the run: a bad file should not cost ten minutes of measuring
  const earlier = compareWith === undefined ? undefined : readReportRows(compareWith);
  const mode: Mode = argv.includes('--quick') ? 'quick' : 'full';
  const settings = SETTINGS[mode];
  const progress = (line: string) => process.stderr.write(`${line}\n`);
  // Logs go to stderr: stdout carries only the report.
  const log: Logger = pino(
    { level: process.env.LOG_LEVEL ?? 'warn', base: { app: 'cdp-bench' } },
    pino.destination(2),
  );

  const startedAt = new Date();
  const dataDir = mkdtempSync(join(tmpdir(), 'cdp-bench-'));
  let stack: LocalStack | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      killLoadGenerators();
      await stack?.stop().catch(() => {});
      rmSync(dataDir, { recursive: true, force: true });
    })());
  const onSignal = (sig: string) => {
    progress(`\n${sig}: stopping the benchmark...`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));

  try {
    const machine = machineInfo({ externalKafka: Boolean(process.env.KAFKA_BROKERS) });
    progress(
      `cdp bench (${mode}: ${settings.runs} run(s), ${settings.warmupMs / 1000} s warm-up + ${settings.durationMs / 1000} s measured each)` +
        ` on ${machine.cores} cores, ${machine.cpuModel}, node ${machine.node}, load ${machine.loadAvgAtStart}`,
    );
    progress('starting the local stack (Kafka, Redis)...');
    const t0 = Date.now();
    stack = await startLocalStack({ dataDir, env: process.env });
    progress(
      `  kafka ${stack.kafkaBrokers}, redis ${stack.redisUrl} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );

    const ctx = {
      settings,
      kafkaBrokers: stack.kafkaBrokers,
      redisUrl: stack.redisUrl,
      dataDir,
      nonce: randomBytes(4).toString('hex'),
      log,
      progress,
      stackPids: stack.pids,
      ...(stack.kafkaLogDir ? { kafkaLogDir: stack.kafkaLogDir } : {}),
      ...(cpuProfDir ? { cpuProfDir } : {}),
    };
    if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
    const rows: ResultRow[] = [];
    const measurements: Measurement[] = [];
    const notes: string[] = [];
    for (const s of SCENARIOS) {
      if (only.length > 0 && !only.includes(s.name)) continue;
      const r = await s.run(ctx);
      rows.push(...r.rows);
      measurements.push(...r.measurements);
      notes.push(...r.notes);
    }

    const band = noiseBand(rows);
    const busy = measurements.map((m) => m.machineBusyPct).filter((v): v is number => v !== null);
    const errors = measurements.reduce((n, m) => n + m.errors, 0);
    const speedShort = rows.some((r) => r.pass === false && r.unit !== 'count');
    const report: BenchReport = {
      machine,
      mode,
      settings,
      startedAt: startedAt.toISOString(),
      durationSec: Math.round((Date.now() - startedAt.getTime()) / 1000),
      noise: { ...band, summary: describeNoise(band, settings.runs) },
      machineBusyPct: {
        median: busy.length ? median(busy) : null,
        min: busy.length ? Math.min(...busy) : null,
        max: busy.length ? Math.max(...busy) : null,
      },
      allTargetsMet: !rows.some((r) => r.pass === false),
      errors,
      notes,
      results: rows,
      measurements,
    };
    if (earlier && compareWith)
      report.comparison = { ...compareReports(earlier, rows), against: compareWith };

    if (json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else process.stdout.write(humanReport(report));

    if (errors > 0 || measurements.some((m) => m.opsPerSec === 0)) {
      progress('bench: a target answered errors or took nothing (see above)');
      return 1;
    }
    if (speedShort && mode === 'full') {
      progress('bench: some targets were missed (SHORT above)');
      return 3;
    }
    return 0;
  } finally {
    progress('stopping the local stack...');
    await cleanup();
  }
}

function humanReport(r: BenchReport): string {
  const m = r.machine;
  const busy = r.machineBusyPct;
  const pct = (v: number | null) => (v === null ? '?' : `${v.toFixed(0)}%`);
  return [
    '',
    `cdp benchmark — ${r.mode} mode, ${r.settings.runs} run(s) × ${r.settings.durationMs / 1000} s, ${r.startedAt}`,
    `machine: ${m.cores} cores, ${m.memoryGb} GB, ${m.cpuModel}; node ${m.node}; kafka ${m.kafka};` +
      ` kafkajs ${m.drivers.kafkajs}, node-rdkafka ${m.drivers.nodeRdkafka} (librdkafka ${m.drivers.librdkafka})`,
    ...r.notes,
    'value = median of the runs; spread = min–max across runs (±half range), or the variation inside a single run',
    '',
    renderTable(r.results),
    r.noise.summary,
    `machine CPU busy while measuring: median ${pct(busy.median)} (${pct(busy.min)}–${pct(busy.max)}),` +
      ` load average at start ${m.loadAvgAtStart}; CPU = process under test (ingest rows), producer process,` +
      ' or the benchmark process running the processor (processor rows), % of one core',
    r.allTargetsMet
      ? 'targets: all met'
      : `targets: some missed${r.mode === 'quick' ? ' (quick mode does not fail on speed)' : ''}`,
    ...(r.comparison
      ? ['', `against ${r.comparison.against} (before) — this run (after):`, renderComparison(r.comparison)]
      : []),
    '',
  ].join('\n');
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
