// Warehouse export to S3-compatible buckets: moto's server (PyPI). One moto with
// authentication on checks our SigV4 signing (the right key stores an object, a wrong one is
// refused with SignatureDoesNotMatch); an export whose PUTs are refused records the error,
// retries and loses nothing: moved to a bucket it can write (a second moto, without auth,
// since moto's signature check cannot take keys with `=`: see moto.ts), every event is there
// once, read back by chDB through moto's S3 API. The endpoint guard refuses a name resolving
// to loopback at connect time when loopback is not allowed. Skips only when moto cannot be
// installed.
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { seal } from '../../runtime/secrets-key.ts';
import { topics } from '../../schemas/topics.ts';
import { WarehouseStore, warehouseAad, warehouseKeys } from '../../schemas/warehouse.ts';
import { type RunningWarehouse, startWarehouse } from '../../warehouse/main.ts';
import { s3Target } from '../../warehouse/targets.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { ensureMoto, type Moto, startMoto } from './moto.ts';
import { exportDef, produceEvents, readParquet } from './peers.ts';

const unavailable = ensureMoto();
if (unavailable) console.warn(`test/warehouse/s3.test.ts skipped: ${unavailable}`);

let cfg: Config;
let clients: Clients;
let service: RunningWarehouse | undefined;
let moto: Moto | undefined;
let open: Moto | undefined;
let producer: Producer;

describe.skipIf(unavailable !== undefined)('warehouse export to an S3-compatible bucket (moto)', () => {
  beforeAll(async () => {
    cfg = testConfig({
      CDP_SECRETS_KEY: randomBytes(32).toString('base64'),
      CDP_WEBHOOK_ALLOW_LOOPBACK: 'true',
      CDP_WAREHOUSE_POLL_MS: '200',
    });
    process.env.CDP_WAREHOUSE_POLL_MS = '200';
    clients = createClients(cfg, testLogger(cfg));
    moto = await startMoto(`cdp-${randomBytes(4).toString('hex')}`, { auth: true });
    open = await startMoto(`cdp-${randomBytes(4).toString('hex')}`, { auth: false });
    const kafka = new Kafka({ brokers: inject('kafkaBrokers').split(','), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const t = topics(cfg.kafka.topicPrefix);
    await admin.createTopics({
      topics: [t.events, t.eventsOverflow, t.identity, t.segmentChanges].map((topic) => ({
        topic,
        numPartitions: 4,
      })),
      waitForLeaders: true,
    });
    await admin.disconnect();
    producer = kafka.producer();
    await producer.connect();
  }, 180_000);

  afterAll(async () => {
    await service?.stop();
    await producer?.disconnect();
    await moto?.stop();
    await open?.stop();
    await clients?.close();
  });

  it('signs as S3 checks it: the right key stores an object, a wrong one is refused', async () => {
    const m = moto!;
    const ws = uniqueId('ws_');
    const target = (secret: string) =>
      s3Target(
        exportDef(
          ws,
          {
            kind: 's3',
            endpoint: m.url,
            bucket: m.bucket,
            prefix: 'signed',
            region: 'us-east-1',
            accessKeyId: m.accessKeyId,
            secretAccessKey: seal(cfg.channels.secrets, secret, warehouseAad(ws, 'sig')),
          },
          { id: 'sig' },
        ),
        { secrets: cfg.channels.secrets, policy: { allowLoopback: true, allowPrivate: false } },
      );
    const body = Buffer.from('PAR1 not really parquet PAR1');
    await target(m.secretAccessKey).put('probe/a-1.bin', body);
    await expect(target('wrong-secret').put('probe/a-2.bin', body)).rejects.toThrow(
      /S3 answered 403 SignatureDoesNotMatch/,
    );
    // read back with the AWS SDK in chDB: the object is the bytes we sent
    const [row] = readParquet<{ s: string }>(
      `s3('${m.url}/${m.bucket}/signed/probe/a-1.bin', '${m.accessKeyId}', '${m.secretAccessKey}', 'RawBLOB')`,
      'raw_blob AS s',
    );
    expect(row?.s).toBe(body.toString());
  });

  it('refused PUTs are retried and lose nothing; on a bucket it can write, every event is there once', async () => {
    const m = moto!;
    const o = open!;
    const ws = uniqueId('ws_');
    const redis = clients.redis();
    const store = new WarehouseStore(redis, cfg.redis.prefix);
    const base = exportDef(ws, { kind: 'directory', path: 'unused' }, { datasets: ['events'], flushMs: 400 });
    const s3 = (server: Moto, secret: string) => ({
      kind: 's3' as const,
      endpoint: server.url,
      bucket: server.bucket,
      prefix: 'cdp/exports',
      region: 'us-east-1',
      accessKeyId: server.accessKeyId,
      secretAccessKey: seal(cfg.channels.secrets, secret, warehouseAad(ws, base.id)),
    });
    await store.put({ ...base, target: s3(m, 'not-the-secret') });
    service = await startWarehouse(cfg, clients, testLogger(cfg));
    const t = topics(cfg.kafka.topicPrefix);
    const ids = await produceEvents(
      producer,
      t.events,
      ws,
      Array.from({ length: 80 }, (_, i) => ({ user: `s${i % 11}`, seq: i })),
    );
    const stats = await eventually(
      'the server refusing the signature',
      async () => {
        const s = await redis.hgetall(warehouseKeys(cfg.redis.prefix).stats(base.id));
        return Number(s.errors) >= 2 ? s : false;
      },
      60_000,
      200,
    );
    expect(stats.lastError).toMatch(/S3 answered 403 SignatureDoesNotMatch/);
    expect(stats.lastError).not.toContain('not-the-secret');
    expect(Number(stats.files ?? 0)).toBe(0);

    await store.put({ ...base, target: s3(o, o.secretAccessKey), version: 2 });
    const source = `s3('${o.url}/${o.bucket}/cdp/exports/events/**/*.parquet', '${o.accessKeyId}', '${o.secretAccessKey}', 'Parquet')`;
    const rows = await eventually(
      'every event in the bucket',
      () => {
        // throws while the glob matches no object yet; eventually keeps the last error
        const r = readParquet<{ message_id: string; workspace_id: string; _path: string }>(
          source,
          'message_id, workspace_id, _path',
        );
        return r.length >= ids.length ? r : false;
      },
      60_000,
      500,
    ).catch(async (err) => {
      const s = await redis.hgetall(warehouseKeys(cfg.redis.prefix).stats(base.id));
      throw new Error(`${(err as Error).message}; export stats ${JSON.stringify(s)}`);
    });
    expect(rows.map((r) => r.message_id).sort()).toEqual([...ids].sort());
    expect(new Set(rows.map((r) => r.workspace_id))).toEqual(new Set([ws]));
    const day = new Date().toISOString().slice(0, 10);
    for (const r of rows)
      expect(r._path).toMatch(
        new RegExp(`^${o.bucket}/cdp/exports/events/dt=${day}/p\\d-\\d{12}-\\d{12}\\.parquet$`),
      );
  }, 180_000);

  it('an endpoint name resolving to loopback is refused at connect time when loopback is not allowed', async () => {
    const m = moto!;
    const ws = uniqueId('ws_');
    const def = exportDef(ws, {
      kind: 's3',
      endpoint: m.url.replace('127.0.0.1', 'localhost'),
      bucket: m.bucket,
      prefix: '',
      region: 'us-east-1',
      accessKeyId: m.accessKeyId,
      secretAccessKey: seal(cfg.channels.secrets, m.secretAccessKey, warehouseAad(ws, 'x')),
    });
    def.id = 'x';
    const target = s3Target(def, {
      secrets: cfg.channels.secrets,
      policy: { allowLoopback: false, allowPrivate: false },
    });
    await expect(target.put('probe/a.parquet', Buffer.from('PAR1'))).rejects.toThrow(/refused/);
    // a literal loopback address is refused before any connection
    expect(() =>
      s3Target(
        {
          ...def,
          target: { ...(def.target as Extract<typeof def.target, { kind: 's3' }>), endpoint: m.url },
        },
        { secrets: cfg.channels.secrets, policy: { allowLoopback: false, allowPrivate: false } },
      ),
    ).toThrow(/refused: loopback/);
  });
});
