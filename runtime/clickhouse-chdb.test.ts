// insertFormatted on chDB: payloads for tables without column defaults are staged in a file
// under the data directory and read with file(); tables with defaults take the inline path,
// so their defaults still apply. The data directory's name holds a quote, which the file
// path literal must survive.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../schemas/migrations.ts';
import { type ClickHouseClient, createClickHouse, insertFormatted } from './clickhouse.ts';

const dir = mkdtempSync(join(tmpdir(), "cdp-o'q\\-"));
const staging = join(dir, 'insert-staging');
// a dead process's payload, and one of a live process (this one) that must be left alone
const stale = '4294967-dead-0.JSONEachRow';
const live = `${process.pid}-other-0.JSONEachRow`;
let ch: ClickHouseClient;

const settings = { input_format_json_read_objects_as_strings: 1, input_format_skip_unknown_fields: 1 };
const event = (messageId: string, extra: object = {}) =>
  JSON.stringify({
    workspaceId: 'ws-chdb',
    messageId,
    type: 'track',
    event: 'Viewed',
    anonymousId: 'a-1',
    timestamp: '2026-04-01T10:00:00.123Z',
    receivedAt: '2026-04-01T10:00:01.000Z',
    properties: { url: "https://x.example/it's" },
    traits: {},
    context: { ip: '203.0.113.1' },
    integrations: {},
    ...extra,
  });
const rows = async (sql: string) =>
  (await ch.query({ query: sql, format: 'JSONEachRow' })).json<Record<string, unknown>>();

beforeAll(async () => {
  mkdirSync(staging, { recursive: true });
  writeFileSync(join(staging, stale), '{}\n');
  writeFileSync(join(staging, live), '{}\n');
  ch = await createClickHouse({ kind: 'chdb', path: dir });
  await migrate(ch);
});
afterAll(async () => {
  await ch?.close();
});

describe('insertFormatted on chDB', () => {
  it("deletes a dead process's staging files and keeps a live one's", () => {
    expect(existsSync(join(staging, stale))).toBe(false);
    expect(existsSync(join(staging, live))).toBe(true);
  });

  it('stages a table without defaults in a file and leaves nothing behind', async () => {
    await insertFormatted(
      ch,
      'events_intake',
      Buffer.from(`${event('m1')}\n${event('m2')}\n`),
      'JSONEachRow',
      settings,
    );
    const got = await rows(
      "SELECT message_id, page_url, ip FROM events WHERE workspace_id = 'ws-chdb' ORDER BY message_id",
    );
    expect(got).toEqual([
      { message_id: 'm1', page_url: "https://x.example/it's", ip: '203.0.113.1' },
      { message_id: 'm2', page_url: "https://x.example/it's", ip: '203.0.113.1' },
    ]);
    expect(readdirSync(staging)).toEqual([live]);
  });

  it('writes a payload given in pieces in order, more pieces than one system call takes', async () => {
    // each document split in two mid-line, then a newline: 3 × 1,500 pieces
    const pieces: Buffer[] = [];
    for (let i = 0; i < 1500; i++) {
      const doc = Buffer.from(event(`p${String(i).padStart(4, '0')}`));
      pieces.push(doc.subarray(0, 40), doc.subarray(40), Buffer.from('\n'));
    }
    await insertFormatted(ch, 'events_intake', pieces, 'JSONEachRow', settings);
    const [got] = await rows(
      "SELECT count() AS n, uniqExact(message_id) AS u, min(message_id) AS lo, max(message_id) AS hi FROM events WHERE startsWith(message_id, 'p')",
    );
    expect(got).toEqual({ n: 1500, u: 1500, lo: 'p0000', hi: 'p1499' });
    expect(readdirSync(staging)).toEqual([live]);
  });

  it('passes a refusal on and removes the staged file', async () => {
    await expect(
      insertFormatted(
        ch,
        'events_intake',
        Buffer.from(`${event('m3', { type: 'bogus' })}\n`),
        'JSONEachRow',
        settings,
      ),
    ).rejects.toThrow(/event not storable/);
    await expect(
      insertFormatted(ch, 'events_intake', Buffer.from('{"workspaceId": \n'), 'JSONEachRow', settings),
    ).rejects.toThrow();
    expect(readdirSync(staging)).toEqual([live]);
    expect(await rows("SELECT message_id FROM events WHERE message_id = 'm3'")).toEqual([]);
  });

  it('inserts inline when the payload cannot be staged, and stages again afterwards', async () => {
    rmSync(staging, { recursive: true, force: true });
    await insertFormatted(ch, 'events_intake', Buffer.from(`${event('s1')}\n`), 'JSONEachRow', settings);
    expect(existsSync(staging)).toBe(true);
    await insertFormatted(ch, 'events_intake', Buffer.from(`${event('s2')}\n`), 'JSONEachRow', settings);
    const got = await rows(
      "SELECT message_id FROM events WHERE message_id IN ('s1', 's2') ORDER BY message_id",
    );
    expect(got).toEqual([{ message_id: 's1' }, { message_id: 's2' }]);
    expect(readdirSync(staging)).toEqual([]);
  });

  it("fills a table's column defaults (inline path)", async () => {
    const before = Date.now() - 60_000;
    const row = {
      workspace_id: 'ws-chdb',
      message_id: 'd1',
      type: 'track',
      timestamp: '2026-04-01 10:00:00.000',
      received_at: '2026-04-01 10:00:00.000',
    };
    // in pieces, as the sink hands them over: joined for the inline path
    await insertFormatted(
      ch,
      'events',
      [Buffer.from(JSON.stringify(row)), Buffer.from('\n')],
      'JSONEachRow',
      {},
    );
    const [got] = await rows(
      "SELECT toUnixTimestamp64Milli(inserted_at) AS at FROM events WHERE message_id = 'd1'",
    );
    expect(Number(got?.at)).toBeGreaterThan(before);
  });
});
