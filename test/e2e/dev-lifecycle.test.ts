// `cdp dev` (what npm start runs): prints its URLs and keys, answers on both ports, runs
// the services in child processes (ingest, activation, the chDB side) with one log stream,
// carries an event through to a profile, starts a crashed service process again, and
// leaves no process behind when stopped with SIGINT or SIGTERM, or even killed with SIGKILL.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { devProcesses } from '../../cli/dev-processes.ts';
import { eventually } from '../harness.ts';

const ROOT = resolve(import.meta.dirname, '../..');

/** Every process whose parent chain leads to `pid`. */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(d), ppid);
    } catch {}
  }
  const out: number[] = [];
  for (const p of parent.keys()) {
    let cur = parent.get(p);
    while (cur !== undefined && cur > 1) {
      if (cur === pid) {
        out.push(p);
        break;
      }
      cur = parent.get(cur);
    }
  }
  return out;
}

const alive = (pid: number) =>
  existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');

/** The `cdp start` children of `cdp dev`, by the services they run. */
function serviceProcesses(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of descendants(pid)) {
    try {
      const args = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      const i = args.indexOf('start');
      if (i > 0 && args[i - 1]?.endsWith('cdp.js'))
        out.set(
          args
            .slice(i + 1)
            .filter(Boolean)
            .join(','),
          p,
        );
    } catch {}
  }
  return out;
}

async function startDev(extraEnv: Record<string, string> = {}): Promise<{
  child: ChildProcess;
  output: () => string;
  ingest: string;
  query: string;
}> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cdp-dev-'));
  const child = spawn(process.execPath, ['bin/cdp.js', 'dev'], {
    cwd: ROOT,
    env: {
      ...process.env,
      KAFKA_BROKERS: '',
      REDIS_URL: '',
      CDP_DATA_DIR: dataDir,
      CDP_KAFKA_PORT: '0',
      CDP_REDIS_PORT: '0',
      CDP_INGEST_PORT: '0',
      CDP_QUERY_PORT: '0',
      LOG_LEVEL: 'warn',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  await eventually('cdp dev to be running', () => out.includes('cdp is running'), 150_000, 200);
  const ingest = /ingest\s+(http:\/\/\S+)/.exec(out)?.[1];
  const query = /query\s+(http:\/\/\S+)/.exec(out)?.[1];
  if (!ingest || !query) throw new Error(`no URLs in output:\n${out}`);
  return { child, output: () => out, ingest, query };
}

describe('cdp dev', () => {
  it('runs the services in child processes, carries an event to a profile, and stops all on SIGINT', async () => {
    const dev = await startDev({ LOG_LEVEL: 'info' });
    const procs = serviceProcesses(dev.child.pid!);
    expect([...procs.keys()].sort()).toEqual(
      devProcesses()
        .map((p) => p.services.join(','))
        .sort(),
    );
    expect(procs.size).toBe(3);
    // one log stream: every child's lines arrive on the parent's output, each naming its process
    for (const name of ['cdp:core', 'cdp:ingest', 'cdp:activation'])
      expect(dev.output()).toContain(`"app":"${name}"`);
    const basic = `Basic ${Buffer.from('dev-write-key:').toString('base64')}`;
    const userId = `dev-${Date.now()}`;
    const sent = await fetch(`${dev.ingest}/v1/identify`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/json' },
      body: JSON.stringify({ userId, traits: { plan: 'pro' } }),
    });
    expect(sent.status).toBe(200);
    const admin = { authorization: 'Bearer dev-admin-key' };
    const profile = await eventually(
      'the event to reach the profile through Kafka and the processor',
      async () => {
        const r = await fetch(`${dev.query}/v1/profiles?userId=${userId}`, { headers: admin });
        if (r.status !== 200) return undefined;
        const body = (await r.json()) as { traits?: Record<string, unknown> };
        return body.traits?.plan === 'pro' ? body : undefined;
      },
      60_000,
      250,
    );
    expect(profile.traits?.plan).toBe('pro');

    // a crashed service process is reported and started again; ingest answers again
    const ingestPid = procs.get('ingest')!;
    process.kill(ingestPid, 'SIGKILL');
    await eventually('the crash to be reported', () => dev.output().includes('process_exited'), 30_000);
    const again = await eventually(
      'ingest to run again in a new process',
      () => {
        const p = serviceProcesses(dev.child.pid!).get('ingest');
        return p !== undefined && p !== ingestPid && dev.output().split('process_started').length > 4
          ? p
          : undefined;
      },
      90_000,
      250,
    );
    expect(again).not.toBe(ingestPid);

    const children = descendants(dev.child.pid!);
    expect(children.length).toBeGreaterThanOrEqual(5); // JVM, redis-server, three service processes
    const exited = new Promise<number | null>((r) => dev.child.once('exit', (code) => r(code)));
    dev.child.kill('SIGINT');
    expect(await exited).toBe(0);
    // the service processes have exited by the time the parent has (it waits for each)
    expect([...procs.values(), again].filter(alive)).toEqual([]);
    await eventually('every child process to be gone', () => children.every((p) => !alive(p)), 30_000);
    // ingest was stopped before the others
    const out = dev.output();
    expect(out.lastIndexOf('"service":"ingest","ms"')).toBeGreaterThan(-1);
    expect(out.lastIndexOf('"service":"ingest","ms"')).toBeLessThan(
      out.lastIndexOf('"service":"processor","ms"'),
    );
  }, 300_000);

  it('prints URLs and keys, answers, and leaves nothing behind after SIGTERM (CDP_ONE_PROCESS)', async () => {
    const dev = await startDev({ CDP_ONE_PROCESS: '1' });
    expect(serviceProcesses(dev.child.pid!).size).toBe(0);
    expect(dev.output()).toContain('dev-write-key');
    expect(dev.output()).toContain('dev-admin-key');
    expect((await fetch(`${dev.ingest}/healthz`)).status).toBe(200);
    await eventually('ready on both ports', async () => {
      const [a, b] = await Promise.all([fetch(`${dev.ingest}/readyz`), fetch(`${dev.query}/readyz`)]);
      return a.status === 200 && b.status === 200;
    });
    const children = descendants(dev.child.pid!);
    expect(children.length).toBeGreaterThanOrEqual(2); // at least the JVM and redis-server
    const exited = new Promise<number | null>((r) => dev.child.once('exit', (code) => r(code)));
    dev.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await eventually('every child process to be gone', () => children.every((p) => !alive(p)), 30_000);
  }, 240_000);

  it('leaves nothing behind when killed with SIGKILL', async () => {
    const dev = await startDev();
    const children = descendants(dev.child.pid!);
    expect(children.length).toBeGreaterThanOrEqual(2);
    dev.child.kill('SIGKILL');
    await eventually('every child process to be gone', () => children.every((p) => !alive(p)), 30_000);
  }, 240_000);
});
