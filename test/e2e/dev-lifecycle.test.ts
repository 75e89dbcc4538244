// `cdp dev` (what npm start runs): prints its URLs and keys, answers on both ports, and
// leaves no process behind when stopped with SIGTERM, or even when killed with SIGKILL.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
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

async function startDev(): Promise<{
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
  it('prints URLs and keys, answers, and leaves nothing behind after SIGTERM', async () => {
    const dev = await startDev();
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
