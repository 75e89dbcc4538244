// The ledger sink against chDB: rows go in as they came from Kafka; an unreadable row is
// left out (and logged) without holding back the rows around it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { type ClickHouseClient, createClickHouse } from '../runtime/clickhouse.ts';
import type { Batch } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import { migrate } from '../schemas/migrations.ts';
import { ledgerRow } from '../test/fixtures.ts';
import { uniqueId } from '../test/harness.ts';
import { createLedgerSink } from './ledger-sink.ts';

let ch: ClickHouseClient;

beforeAll(async () => {
  ch = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-ledger-')) });
  await migrate(ch);
});

const row = (ws: string, i: number) =>
  ledgerRow({
    workspace_id: ws,
    at: 1_790_000_000_000 + i,
    send_key: `key-${i}`,
    campaign_id: 'c1',
    segment_id: 's1',
    segment_version: 2,
    profile_id: `p${i}`,
    provider_ms: 3,
  });

const batch = (values: Array<string | Buffer>): Batch => ({
  topic: 'ledger',
  partition: 0,
  messages: values.map((v, i) => ({
    topic: 'ledger',
    partition: 0,
    offset: String(i),
    key: null,
    value: Buffer.isBuffer(v) ? v : Buffer.from(v),
    headers: {},
    timestamp: 0,
  })),
});

const ctx = { heartbeat: async () => {}, isActive: () => true };

async function stored(ws: string) {
  const rs = await ch.query({
    query:
      'SELECT send_key, profile_id, status_code FROM activation_ledger WHERE workspace_id = {ws:String} ORDER BY send_key',
    query_params: { ws },
    format: 'JSONEachRow',
  });
  return rs.json<{ send_key: string; profile_id: string; status_code: number }>();
}

describe('ledger sink', () => {
  it('stores the rows of concurrent batches in one flush, fields intact', async () => {
    const ws = uniqueId('ws_');
    const sink = createLedgerSink({
      clickhouse: ch,
      log: createLogger({ level: 'silent', name: 't' }),
      flushMs: 20,
    });
    await Promise.all([
      sink.handler(batch([0, 1, 2].map((i) => JSON.stringify(row(ws, i)))), ctx),
      sink.handler(batch([3, 4].map((i) => JSON.stringify(row(ws, i)))), ctx),
    ]);
    const got = await stored(ws);
    expect(got.map((r) => r.send_key)).toEqual(['key-0', 'key-1', 'key-2', 'key-3', 'key-4']);
    expect(got[3]).toEqual({ send_key: 'key-3', profile_id: 'p3', status_code: 200 });
  });

  it('leaves out an unreadable row and keeps the others', async () => {
    const ws = uniqueId('ws_');
    const log = createLogger({ level: 'silent', name: 't' });
    const warn = vi.spyOn(log, 'warn');
    const sink = createLedgerSink({ clickhouse: ch, log, flushMs: 20 });
    await sink.handler(
      batch([
        JSON.stringify(row(ws, 0)),
        '{"workspace_id": "broken',
        Buffer.from([0xff, 0xfe]),
        JSON.stringify(row(ws, 1)),
      ]),
      ctx,
    );
    expect((await stored(ws)).map((r) => r.send_key)).toEqual(['key-0', 'key-1']);
    expect(warn.mock.calls.filter(([, msg]) => msg === 'ledger_row_unreadable')).toHaveLength(2);
  });
});
