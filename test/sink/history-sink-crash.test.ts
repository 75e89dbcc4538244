// The history sink under a real backlog: N events produced straight to Kafka in big
// batches, the sink process killed (SIGKILL: nothing flushed, nothing committed) part-way,
// then restarted on the same chDB directory and consumer group. Every event must be in
// ClickHouse exactly once as analytics count it (distinct message ids and the deduplicated
// count both N), and inserts must have stayed batched.
//   CDP_SINK_TEST_EVENTS  events to push (default 100,000; 1,000,000 for the full check)
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topicSpecs } from '../../processor/main.ts';
import type { Config } from '../../runtime/config.ts';
import { createKafka, type OutgoingMessage } from '../../runtime/kafka/index.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

const N = Number(process.env.CDP_SINK_TEST_EVENTS ?? 100_000);
const CHILD = new URL('./sink-child.ts', import.meta.url).pathname;

interface Stats {
  stats: { inserts: { events: number }; rows: { events: number } };
  uptimeMs: number;
}
interface Counts {
  rows: number;
  distinct: number;
  deduped: number;
}

class SinkProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<Counts>;
  #next = 0;
  #waiting = new Map<number, (v: unknown) => void>();
  lastStats: Stats | undefined;

  readonly exited: Promise<void>;

  constructor(env: Record<string, string>) {
    this.child = fork(CHILD, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`sink exited with ${code}`)));
      this.child.on('message', (m: { id?: number; ready?: boolean; initial?: Counts }) => {
        if (m.ready) resolve(m.initial!);
        if (m.id !== undefined) this.#waiting.get(m.id)?.(m);
      });
    });
    this.ready.catch(() => {});
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    // a send racing the child's own SIGKILL fails with EPIPE on the channel: that is the
    // expected crash, not an error of the test (ask() reports it through its callback)
    this.child.on('error', () => {});
  }

  ask<T>(cmd: string, extra: object = {}): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      if (!this.child.connected) return reject(new Error(`sink process gone (${cmd})`));
      this.#waiting.set(id, resolve as (v: unknown) => void);
      this.child.send({ cmd, id, ...extra }, (err) => {
        if (!err) return;
        this.#waiting.delete(id);
        reject(err);
      });
    });
  }

  async stats(): Promise<Stats> {
    this.lastStats = await this.ask<Stats>('stats');
    return this.lastStats;
  }

  kill(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return resolve();
      this.child.once('exit', () => resolve());
      this.child.kill('SIGKILL');
    });
  }
}

let cfg: Config;
let env: Record<string, string>;
const running: SinkProcess[] = [];

beforeAll(async () => {
  const prefix = uniqueId('t');
  env = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    CDP_TOPIC_PREFIX: prefix,
    CDP_TOPIC_PARTITIONS: '4',
    CDP_DEFAULT_WORKSPACE: uniqueId('ws_'),
    CDP_DATA_DIR: mkdtempSync(join(tmpdir(), 'cdp-sink-crash-')),
    CDP_HISTORY_FLUSH_MS: '1000',
  };
  cfg = testConfig(env);
  env.KAFKA_BROKERS = cfg.kafka.brokers.join(',');
  env.REDIS_URL = cfg.redis.url;
});

afterAll(async () => {
  for (const s of running) await s.kill();
});

function event(i: number, ws: string, t0: number): OutgoingMessage {
  const anon = `a-${i % 50_000}`;
  const ts = new Date(t0 + i * 10).toISOString();
  return {
    key: `${ws}:${anon}`,
    value: JSON.stringify({
      workspaceId: ws,
      type: 'track',
      messageId: `m-${i}`,
      userId: null,
      anonymousId: anon,
      event: `Event ${i % 7}`,
      properties: { i, plan: i % 2 ? 'pro' : 'free' },
      traits: {},
      context: i % 10 === 0 ? { campaign: { name: `c${i % 30}`, source: 'google' } } : {},
      integrations: {},
      timestamp: ts,
      receivedAt: ts,
    }),
  };
}

describe(`history sink: ${N.toLocaleString('en-US')} events, killed mid-way and restarted`, () => {
  it('stores every event exactly once as analytics count it, in batched inserts', {
    timeout: 600_000,
  }, async () => {
    const t0 = Date.now();
    const ws = cfg.keys.workspace;
    const kafka = createKafka(cfg.kafka, testLogger(cfg));
    const admin = kafka.admin();
    await admin.ensureTopics(topicSpecs(cfg));
    await admin.disconnect();

    const killAt = Math.floor(N * 0.4);
    const first = new SinkProcess({ ...env, SINK_CRASH_AFTER_ROWS: String(killAt) });
    running.push(first);
    await first.ready;

    // produce the backlog in big batches, a few sends in flight; meanwhile kill the sink
    // once a good part is in: whatever it buffered or had not committed is replayed
    // librdkafka produces a backlog several times faster than kafkajs (its own batching)
    const producer = createKafka({ ...cfg.kafka, driver: 'rdkafka' }, testLogger(cfg)).producer();
    const eventsTopic = topics(cfg.kafka.topicPrefix).events;
    const base = Date.parse('2026-06-01T00:00:00Z');
    const p0 = Date.now();
    const BATCH = 4000;
    let next = 0;
    let produceMs = 0;
    const produce = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < N) {
          const start = next;
          next = Math.min(N, next + BATCH);
          const msgs: OutgoingMessage[] = [];
          for (let i = start; i < next; i++) msgs.push(event(i, ws, base));
          await producer.send(eventsTopic, msgs);
        }
      }),
    ).then(() => {
      produceMs = Date.now() - p0;
    });
    // it kills itself (SIGKILL) right after the insert that passes 40%, before committing
    await eventually(
      `the first sink to crash after ${killAt} rows`,
      async () =>
        first.child.signalCode === 'SIGKILL' ||
        // a live sink answers with its progress, which the timeout message then shows
        ((await Promise.race([
          first.stats().catch(() => undefined),
          new Promise((r) => setTimeout(r, 1000)),
        ])) &&
          false),
      300_000,
      500,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}; last stats ${JSON.stringify(first.lastStats)}`);
    });
    await first.exited;
    await produce;
    await producer.disconnect();

    const second = new SinkProcess(env);
    running.push(second);
    const initial = await second.ready;
    const r0 = Date.now();
    const counts = await eventually(
      `all ${N} events in ClickHouse after the restart`,
      async () => {
        const c = await second.ask<Counts>('counts', { workspaceId: ws });
        return c.distinct >= N ? c : undefined;
      },
      400_000,
      500,
    );
    const after = await second.stats();
    const recoverMs = Date.now() - r0;
    await second.ask('stop');

    const report = {
      events: N,
      produceMs,
      produceRate: Math.round(N / (produceMs / 1000)),
      inClickHouseAtKill: initial.distinct,
      insertedAfterRestart: after.stats.rows.events,
      insertsAfterRestart: after.stats.inserts.events,
      replayedRows: initial.distinct + after.stats.rows.events - N,
      rowsInTable: counts.rows,
      rowsPerInsertAfterRestart: Math.round(after.stats.rows.events / after.stats.inserts.events),
      restartToAllInMs: recoverMs,
      sinkRowsPerSec: Math.round(after.stats.rows.events / (recoverMs / 1000)),
      totalMs: Date.now() - t0,
    };
    process.stderr.write(`sink crash test: ${JSON.stringify(report)}\n`);
    expect(counts.distinct).toBe(N);
    expect(counts.deduped).toBe(N);
    expect(counts.rows).toBeGreaterThanOrEqual(N);
    // it really crashed mid-way, after an insert whose offsets were not committed
    expect(initial.distinct).toBeGreaterThanOrEqual(killAt);
    expect(initial.distinct).toBeLessThan(N);
    expect(report.replayedRows).toBeGreaterThan(0);
    // batched: never one insert per event (at most one per 1,000 rows on average)
    expect(after.stats.rows.events / after.stats.inserts.events).toBeGreaterThanOrEqual(1000);
  });
});
