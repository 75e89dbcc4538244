// `cdp dev` runs the services as child processes of its own (`cdp start <services>`), so
// the one-box default uses more than one core: one Node event loop tops out near 0.7 of a
// core with every service on it while the machine's other cores idle. chDB allows one
// process per data directory, so every service that reads or writes ClickHouse shares the
// "core" process; ingest and the activation workers (Kafka and Redis only) run apart.
//
// One log stream: the children write to this process's stdout/stderr, each log line's
// `app` says which process it came from (cdp:ingest, cdp:activation, cdp:core).
// Stopping: ingest first (it stops accepting and flushes what it took into Kafka), then
// the others at once; the caller stops the local stack after. A child that dies while
// running is reported and started again after a second; one that fails while starting,
// or dies more than MAX_RESTARTS times in RESTART_WINDOW_MS, stops everything (exit 1).
// Each child is in its own process group, so a terminal's Ctrl-C reaches only this
// process, which stops them in order; when this process dies (even SIGKILL), each child
// sees its IPC channel close and stops on its own.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../runtime/log.ts';
import { SERVICE_NAMES, type ServiceName } from './services.ts';

/** What a `cdp start` child sends its parent once its services run. */
export interface StartedMessage {
  type: 'cdp:started';
  urls: Partial<Record<ServiceName, string>>;
}

export const isStartedMessage = (m: unknown): m is StartedMessage =>
  typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'cdp:started';

export interface DevProcess {
  /** Goes into each log line's `app` as cdp:<name>. */
  name: string;
  services: ServiceName[];
  /** Stopped in this order, lowest first; equal stages stop together. */
  stage: number;
}

const ACTIVATION_SIDE: readonly ServiceName[] = ['activation', 'journeys', 'destinations'];

/**
 * The processes `cdp dev` runs: ingest, the activation side, and everything else (the
 * services using ClickHouse, and any service not named here) in the process that holds chDB.
 */
export function devProcesses(names: readonly ServiceName[] = SERVICE_NAMES): DevProcess[] {
  const out: DevProcess[] = [
    { name: 'core', services: names.filter((n) => n !== 'ingest' && !ACTIVATION_SIDE.includes(n)), stage: 1 },
    { name: 'activation', services: names.filter((n) => ACTIVATION_SIDE.includes(n)), stage: 1 },
    { name: 'ingest', services: names.filter((n) => n === 'ingest'), stage: 0 },
  ];
  return out.filter((p) => p.services.length > 0);
}

/**
 * A child's environment: the parent's, its log name, and its own metrics port. Every
 * process serves its own /metrics (CDP_METRICS_PORT), so with a fixed port the processes
 * take it and the next ones (core CDP_METRICS_PORT, activation +1, ingest +2, in the
 * order of devProcesses); 0 (any free port) stays 0.
 */
export function processEnv(spec: DevProcess, index: number, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, CDP_PROCESS_NAME: `cdp:${spec.name}` };
  const metrics = env.CDP_METRICS_PORT?.trim();
  if (metrics && /^\d+$/.test(metrics) && Number(metrics) > 0)
    out.CDP_METRICS_PORT = String(Number(metrics) + index);
  return out;
}

const BIN = fileURLToPath(new URL('../bin/cdp.js', import.meta.url));
const RESTART_DELAY_MS = 1000;
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 5 * 60_000;
/** A child's own shutdown deadline is 30 s (cli/main.ts); past this it is killed. */
const STOP_GRACE_MS = 35_000;

export interface DevSupervisor {
  /** Resolves with every service's URL once every child has started; rejects if one fails to. */
  started: Promise<Partial<Record<ServiceName, string>>>;
  /** Child pids by process name, as they are now. */
  pids(): Record<string, number | undefined>;
  stop(): Promise<void>;
}

export function superviseDevProcesses(opts: {
  processes: DevProcess[];
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** Called once when a child cannot be kept running: the caller stops everything. */
  onFatal(reason: string): void;
}): DevSupervisor {
  const { log } = opts;
  let stopping = false;
  const urls: Partial<Record<ServiceName, string>> = {};
  interface Slot {
    spec: DevProcess;
    child?: ChildProcess;
    exited?: Promise<void>;
    restarts: number[];
    everStarted: boolean;
  }
  const slots: Slot[] = opts.processes.map((spec) => ({ spec, restarts: [], everStarted: false }));

  const launch = (slot: Slot): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--max-semi-space-size=64', BIN, 'start', ...slot.spec.services],
        {
          env: processEnv(slot.spec, opts.processes.indexOf(slot.spec), opts.env),
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          detached: true, // own process group: a terminal's Ctrl-C reaches the parent only
        },
      );
      slot.child = child;
      let running = false;
      child.on('message', (m) => {
        if (!isStartedMessage(m) || running) return;
        running = true;
        slot.everStarted = true;
        Object.assign(urls, m.urls);
        log.info(
          { process: slot.spec.name, pid: child.pid, services: slot.spec.services },
          'process_started',
        );
        resolve();
      });
      slot.exited = new Promise<void>((done) => {
        child.once('exit', (code, signal) => {
          done();
          if (stopping) return;
          if (!running) {
            reject(
              new Error(
                `the ${slot.spec.name} process (${slot.spec.services.join(', ')}) exited while starting (code ${code}, signal ${signal})`,
              ),
            );
            if (slot.everStarted) opts.onFatal(`the ${slot.spec.name} process failed to start again`);
            return;
          }
          const now = Date.now();
          slot.restarts = slot.restarts.filter((t) => now - t < RESTART_WINDOW_MS);
          if (slot.restarts.length >= MAX_RESTARTS) {
            log.error(
              { process: slot.spec.name, pid: child.pid, code, signal, restarts: slot.restarts.length },
              'process_exited: restarted too often, stopping everything',
            );
            opts.onFatal(`the ${slot.spec.name} process keeps exiting`);
            return;
          }
          slot.restarts.push(now);
          log.error(
            { process: slot.spec.name, pid: child.pid, code, signal, services: slot.spec.services },
            'process_exited: starting it again',
          );
          setTimeout(() => {
            if (!stopping) launch(slot).catch(() => {});
          }, RESTART_DELAY_MS);
        });
      });
      child.once('error', (err) => reject(err));
    });

  // the core process first: it applies ClickHouse migrations and creates the topics
  // before the others start against them
  const ordered = [...slots].sort((a, b) => Number(b.spec.name === 'core') - Number(a.spec.name === 'core'));
  const started = (async () => {
    const [first, ...rest] = ordered;
    if (first) await launch(first);
    await Promise.all(rest.map((s) => launch(s)));
    return urls;
  })();
  started.catch(() => {});

  const stopSlot = async (slot: Slot) => {
    const child = slot.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), STOP_GRACE_MS).unref());
    if ((await Promise.race([slot.exited, timer])) === 'timeout') {
      log.warn({ process: slot.spec.name, pid: child.pid }, 'process_stop_overran: killing it');
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {}
      await slot.exited;
    }
  };

  return {
    started,
    pids: () => Object.fromEntries(slots.map((s) => [s.spec.name, s.child?.pid])),
    async stop() {
      stopping = true;
      const stages = [...new Set(slots.map((s) => s.spec.stage))].sort((a, b) => a - b);
      for (const stage of stages)
        await Promise.all(slots.filter((s) => s.spec.stage === stage).map(stopSlot));
    },
  };
}
