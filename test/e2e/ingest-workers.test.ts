// `cdp start ingest` with CDP_INGEST_WORKERS=2, a process of its own against the test
// Kafka and Redis: two workers answer on the one port, a worker that dies is replaced while
// the other goes on answering, SIGTERM stops everything in bounded time, and every event
// that got a 200 is in Kafka, exactly as with one process.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createKafka } from '../../runtime/kafka/index.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, serviceEnv, testConfig, testLogger, uniqueId } from '../harness.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WRITE_KEY = 'workers-test-write-key';
let child: ChildProcess | undefined;

afterAll(() => {
  child?.kill('SIGKILL');
});

/** The processes whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      // workers only: the TypeScript loader may run an esbuild service as a child too
      if (ppid === pid && readFileSync(`/proc/${name}/cmdline`, 'utf8').includes('cdp.js'))
        out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** What a POST got: the status (0: no answer) and, without one, why and after how long. */
interface Sent {
  status: number;
  error?: string;
  ms: number;
}

/** POSTs a batch on its own connection (so the connections spread over the workers). */
function post(port: number, body: string): Promise<Sent> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const done = (status: number, error?: string) => resolve({ status, error, ms: Date.now() - t0 });
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/batch',
        method: 'POST',
        agent: false,
        headers: {
          authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode ?? 0));
        res.on('error', (err) => done(0, `response: ${err.message}`));
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('timed out')));
    req.on('error', (err) => done(0, (err as NodeJS.ErrnoException).code ?? err.message));
    req.end(body);
  });
}

describe('ingest in two worker processes on one port', () => {
  it('answers on one port, replaces a dead worker, drains on SIGTERM, loses nothing', async () => {
    const prefix = uniqueId('t');
    const cfg = testConfig({ CDP_TOPIC_PREFIX: prefix });
    // topics first, as a deployment's migrate step would
    const admin = createKafka(cfg.kafka, testLogger(cfg)).admin();
    await admin.ensureTopics([{ topic: topics(prefix).events, partitions: 4 }]);
    await admin.disconnect();

    child = spawn(process.execPath, ['bin/cdp.js', 'start', 'ingest'], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...serviceEnv(prefix, {
          CDP_TOPIC_PARTITIONS: '4',
          CDP_WRITE_KEY: WRITE_KEY,
          CDP_INGEST_HOST: '127.0.0.1',
          // 0: the workers share a port the system picks (one picked here could be taken
          // by another suite before the workers bind it); they log it when they listen
          CDP_INGEST_PORT: '0',
          LOG_LEVEL: 'info',
          CDP_INGEST_WORKERS: '2',
        }),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const pid = child.pid!;
    let port = 0;
    let out = '';
    /** The workers' warnings and errors, and their starts, for a failure's message. */
    const logged: string[] = [];
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      for (;;) {
        const nl = out.indexOf('\n');
        if (nl < 0) break;
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (/"level":(40|50|60)/.test(line) || /ingest_listening|ingest_worker/.test(line))
          logged.push(line.slice(0, 400));
        const m = /"msg":"ingest_listening"/.test(line) && /"url":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(line);
        if (m && port === 0) port = Number(m[1]);
      }
    });
    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    let last = '';
    await eventually(
      'both workers answering',
      async () => {
        const kids = childrenOf(pid);
        if (port === 0) {
          last = `${kids.length} workers, none listening yet`;
          return false;
        }
        const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
        last = `${kids.length} workers, readyz ${res.status} ${await res.text()}`;
        return kids.length === 2 && res.ok;
      },
      60_000,
      200,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}; last: ${last}`);
    });
    const first = childrenOf(pid);

    let n = 0;
    const accepted: string[] = [];
    /** Sends `requests` batches at once; those answered 200 count as accepted. */
    const sendRound = async (requests: number, connectionErrorsAllowed = false) => {
      const sent = await Promise.all(
        Array.from({ length: requests }, async () => {
          const batch = Array.from({ length: 20 }, () => ({
            type: 'track',
            event: 'Worker Test',
            userId: `u${n % 7}`,
            messageId: `m-${prefix}-${n++}`,
          }));
          const answer = await post(port, JSON.stringify({ batch }));
          return { ...answer, ids: batch.map((e) => e.messageId) };
        }),
      );
      for (const s of sent) {
        // a connection on the worker that was killed breaks (0): the client sends again
        expect(
          connectionErrorsAllowed ? [0, 200] : [200],
          `answered ${s.status}${s.error ? ` (${s.error})` : ''} after ${s.ms} ms; the workers said:\n${logged.slice(-30).join('\n')}`,
        ).toContain(s.status);
        if (s.status === 200) accepted.push(...s.ids);
      }
    };
    await sendRound(40);

    // a worker killed outright: the other goes on, and the primary starts a new one
    process.kill(first[0]!, 'SIGKILL');
    await sendRound(10, true);
    await eventually(
      'a new worker in place of the dead one',
      () => {
        const now = childrenOf(pid);
        return now.length === 2 && !now.includes(first[0]!) && now.includes(first[1]!);
      },
      30_000,
      100,
    );
    await sendRound(40);

    // SIGTERM to the primary: the workers flush and exit, then it does
    const stopAt = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - stopAt).toBeLessThan(20_000);
    expect(childrenOf(pid)).toEqual([]);

    // every event answered 200 is in Kafka
    const seen = new Set<string>();
    const consumer = new Kafka({
      brokers: inject('kafkaBrokers').split(','),
      logLevel: logLevel.NOTHING,
    }).consumer({ groupId: `${prefix}-check` });
    await consumer.connect();
    await consumer.subscribe({ topic: topics(prefix).events, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        seen.add((JSON.parse(String(message.value)) as { messageId: string }).messageId);
      },
    });
    try {
      await eventually('every accepted event in Kafka', () => accepted.every((id) => seen.has(id)), 30_000);
    } finally {
      await consumer.disconnect();
    }
    expect(accepted.length).toBeGreaterThanOrEqual(80 * 20); // the rounds before and after the kill
  }, 120_000);
});
