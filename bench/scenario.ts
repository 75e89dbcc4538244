// What every scenario gets and gives back. A scenario (bench/scenarios/*.ts) starts what
// it measures against the shared local stack, drives load through bench/load.ts, stops
// what it started, and returns result rows plus the raw per-run measurements.
import type { Admin, TopicSpec } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import type { ResultRow } from './report.ts';

export type Mode = 'quick' | 'full';

export interface BenchSettings {
  mode: Mode;
  /** Repetitions of every measurement; rows report the median and the spread. */
  runs: number;
  warmupMs: number;
  durationMs: number;
}

export const SETTINGS: Record<Mode, BenchSettings> = {
  quick: { mode: 'quick', runs: 1, warmupMs: 1000, durationMs: 3000 },
  full: { mode: 'full', runs: 3, warmupMs: 3000, durationMs: 10_000 },
};

export interface ScenarioContext {
  settings: BenchSettings;
  kafkaBrokers: string;
  redisUrl: string;
  /** A temporary directory the scenario may write to (removed at the end). */
  dataDir: string;
  /** Unique per benchmark run: topic prefixes, messageIds. */
  nonce: string;
  log: Logger;
  /** A progress line for humans (stderr). */
  progress(line: string): void;
  /** The local stack's processes (absent for KAFKA_BROKERS / REDIS_URL), for CPU per event. */
  stackPids?: { kafka?: number; redis?: number };
  /** The local broker's log.dirs, for bytes per topic (absent with KAFKA_BROKERS). */
  kafkaLogDir?: string;
  /** --cpu-prof: the directory the services' V8 CPU profiles go to (e2e). */
  cpuProfDir?: string;
}

/** One load run against one target, as measured. */
export interface Measurement {
  scenario: string;
  load: string;
  run: number;
  opsPerSec: number;
  eventsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  errorSamples: string[];
  abandoned: number;
  /** CPU of the process under test during the window, % of one core (null: it is the generator). */
  serverCpuPct: number | null;
  generatorCpuPct: number;
  /** CPU time of the process doing the work (server, or producer) per event, µs. */
  cpuUsPerEvent: number | null;
  machineBusyPct: number | null;
  jitterPct: number | null;
  /** Scenario-specific figures of this run (e.g. the processor's Redis CPU and memory). */
  details?: Record<string, number>;
}

export interface ScenarioResult {
  rows: ResultRow[];
  measurements: Measurement[];
  /** How the scenario loaded its targets, for the report. */
  notes: string[];
}

export type Scenario = (ctx: ScenarioContext) => Promise<ScenarioResult>;

/**
 * Creates the scenario's topics. kafkajs sometimes reports a just-created topic as unknown
 * while waiting for its leaders; creating is idempotent, so ask again (5 times at most).
 */
export async function ensureTopicsWithRetry(admin: Admin, topics: TopicSpec[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.ensureTopics(topics);
      return;
    } catch (err) {
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
