// What the numbers were measured on, and CPU sampling around a measured window.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { kafkaVersion } from '../infra/local/kafka.ts';

export interface MachineInfo {
  cores: number;
  memoryGb: number;
  node: string;
  kafka: string;
  cpuModel: string;
  drivers: { kafkajs: string; nodeRdkafka: string; librdkafka: string };
  platform: string;
  /** 1-minute load average when the benchmark started: other work on the machine. */
  loadAvgAtStart: number;
}

const require = createRequire(import.meta.url);

function pkgVersion(name: string): string {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function machineInfo(opts: { externalKafka: boolean }): MachineInfo {
  let librdkafka = 'unknown';
  try {
    librdkafka = (require('node-rdkafka') as { librdkafkaVersion: string }).librdkafkaVersion;
  } catch {}
  let kafka = 'unknown';
  try {
    kafka = opts.externalKafka
      ? `external (KAFKA_BROKERS; local stack is ${kafkaVersion()})`
      : kafkaVersion();
  } catch {}
  return {
    cores: availableParallelism(),
    memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kafka,
    cpuModel: cpus()[0]?.model?.trim() ?? 'unknown',
    drivers: { kafkajs: pkgVersion('kafkajs'), nodeRdkafka: pkgVersion('node-rdkafka'), librdkafka },
    platform: `${process.platform} ${process.arch}`,
    loadAvgAtStart: Math.round(loadavg()[0]! * 100) / 100,
  };
}

/** Whole-machine CPU counters from /proc/stat (Linux); undefined elsewhere. */
function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal
    const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

export interface CpuWindow {
  /** CPU of this process, % of one core. */
  processPct: number;
  /** Whole machine busy, % of all cores; null when unknown. */
  machineBusyPct: number | null;
}

/** Starts sampling now; `stop()` gives CPU used since. */
export function cpuSampler(): { stop(): CpuWindow } {
  const t0 = performance.now();
  const p0 = process.cpuUsage();
  const m0 = machineTicks();
  return {
    stop() {
      const ms = performance.now() - t0;
      const p = process.cpuUsage(p0);
      const m1 = machineTicks();
      const machineBusyPct =
        m0 && m1 && m1.total > m0.total ? ((m1.busy - m0.busy) / (m1.total - m0.total)) * 100 : null;
      return { processPct: ms > 0 ? (p.user + p.system) / 10 / ms : 0, machineBusyPct };
    },
  };
}
