// The warehouse service killed (SIGKILL) mid-stream, in its own process, twice, and started
// again each time: read back with chDB, the files hold every event of the stream exactly once
// (no gap, no row in two files), and no two files cover overlapping offset ranges of a
// partition, so what was rewritten after a kill replaced a file instead of adding one.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { topics } from '../../schemas/topics.ts';
import { directoryOf, WarehouseStore, warehouseKeys } from '../../schemas/warehouse.ts';
import { eventually, serviceEnv, uniqueId } from '../harness.ts';
import { exportDef, fileSource, listFiles, overlappingRanges, produceEvents, readParquet } from './peers.ts';

const REPO = new URL('../..', import.meta.url).pathname;
const ROOT = mkdtempSync(join(tmpdir(), 'cdp-warehouse-crash-'));
const WS = uniqueId('ws_');
let redis: Redis;
let kafka: Kafka;
const children = new Set<ChildProcess>();

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  kafka = new Kafka({ brokers: inject('kafkaBrokers').split(','), logLevel: logLevel.NOTHING });
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  redis?.disconnect();
  rmSync(ROOT, { recursive: true, force: true });
});

function startService(env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['bin/cdp.js', 'start', 'warehouse'], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

describe('warehouse service crash', () => {
  it('killed mid-stream and restarted, exports every event exactly once', async () => {
    const prefix = uniqueId('t');
    const t = topics(prefix);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [t.events, t.eventsOverflow, t.identity, t.segmentChanges].map((topic) => ({
        topic,
        numPartitions: 4,
      })),
      waitForLeaders: true,
    });
    await admin.disconnect();
    const def = exportDef(
      WS,
      { kind: 'directory', path: 'crash' },
      { datasets: ['events'], flushRows: 25, flushMs: 400 },
    );
    await new WarehouseStore(redis, prefix).put(def);
    const dir = directoryOf(ROOT, WS, 'crash');
    const env = serviceEnv(prefix, {
      CDP_TOPIC_PARTITIONS: '4',
      CDP_DEFAULT_WORKSPACE: WS,
      CDP_WAREHOUSE_DIR: ROOT,
      CDP_WAREHOUSE_POLL_MS: '200',
    });
    const producer = kafka.producer();
    await producer.connect();
    try {
      let service = startService(env);
      const ids: string[] = [];
      ids.push(...(await produceEvents(producer, t.events, WS, [{ user: 'warm', seq: -1 }])));
      await eventually('the service writing files', () => listFiles(dir).parquet.length > 0, 90_000, 500);
      const ROUNDS = 60;
      let round = 0;
      const flow = (async () => {
        for (; round < ROUNDS; round++) {
          ids.push(
            ...(await produceEvents(
              producer,
              t.events,
              WS,
              Array.from({ length: 10 }, (_, u) => ({ user: `c${u}`, seq: round })),
            )),
          );
          await new Promise((res) => setTimeout(res, 80));
        }
      })();
      // two kills while events flow and files are being cut
      for (const at of [15, 35]) {
        await eventually(`round ${at}`, () => round >= at, 60_000, 20);
        await kill(service);
        service = startService(env);
      }
      await flow;
      const rows = await eventually(
        'every event in files after the restarts',
        () => {
          const r = readParquet<{ message_id: string }>(
            fileSource(`${dir}/events/**/*.parquet`),
            'message_id',
          );
          return r.length >= ids.length ? r : false;
        },
        120_000,
        500,
      );
      const got = rows.map((r) => r.message_id);
      expect(got.length).toBe(ids.length);
      expect(new Set(got).size).toBe(got.length);
      expect([...got].sort()).toEqual([...ids].sort());
      const files = listFiles(dir);
      expect(overlappingRanges(files.parquet)).toEqual([]);
      // nothing pending once caught up: every lane's last range is done
      await eventually('no range pending', async () => {
        const p = await redis.hgetall(warehouseKeys(prefix).progress(def.id));
        return Object.values(p).every((v) => JSON.parse(v).pending === null);
      });
      await kill(service);
    } finally {
      await producer.disconnect();
    }
  }, 300_000);
});
