// The sink hands ClickHouse the raw event envelopes and the events_intake view derives the
// typed columns (migration 005). processor/to-history-row.ts is the same mapping written in
// TS: both must agree, row for row, on generated and edge-case events. Likewise for
// identity changes: identity_intake (006) and processor/to-identity-rows.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateAll } from '../cli/services.ts';
import { type ClickHouseClient, createClickHouse, insertFormatted } from '../runtime/clickhouse.ts';
import type { Config } from '../runtime/config.ts';
import type { IncomingMessage } from '../runtime/kafka/index.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import type { IdentityChange } from '../schemas/identity-change.ts';
import { generateDataset } from '../test/analytics-dataset.ts';
import { testConfig, testLogger } from '../test/harness.ts';
import { HISTORY_COLUMNS, type HistoryRow, toHistoryRow } from './to-history-row.ts';
import { IDENTITY_LINK_COLUMNS, parseIdentityChange } from './to-identity-rows.ts';

let cfg: Config;
let ch: ClickHouseClient;

beforeAll(async () => {
  cfg = testConfig();
  await migrateAll(cfg, testLogger(cfg));
  ch = await createClickHouse(cfg.clickhouse);
});
afterAll(async () => {
  await ch?.close();
});

const base = (ws: string, messageId: string, extra: Partial<NormalizedEvent>): NormalizedEvent => ({
  workspaceId: ws,
  type: 'track',
  messageId,
  userId: null,
  anonymousId: 'anon-1',
  event: 'Viewed',
  properties: {},
  traits: {},
  context: {},
  integrations: {},
  timestamp: '2026-04-01T10:00:00.123Z',
  receivedAt: '2026-04-01T10:00:01.000Z',
  ...extra,
});

function edgeCases(ws: string): NormalizedEvent[] {
  return [
    // properties win over context.page, as in toHistoryRow
    base(ws, 'e1', {
      properties: { url: 'https://a.example/x', path: '/x', revenue: 12.5, value: '7' },
      context: { page: { url: 'https://b.example', path: '/b', referrer: 'https://ref.example' } },
    }),
    // numeric strings and numbers, nulls falling back to the page
    base(ws, 'e2', {
      properties: { url: null, revenue: '3.25', value: 'not a number' },
      context: { page: { url: 'https://page.example/' }, ip: '203.0.113.9' },
    }),
    // every campaign field, unicode and quotes in values
    base(ws, 'e3', {
      userId: 'user-"ü"-1',
      anonymousId: null,
      context: {
        campaign: {
          name: 'spring "sale" ☀',
          source: 'google',
          medium: 'cpc',
          term: 'shoes',
          content: 'ad-1',
        },
      },
    }),
    // non-track types: the event column takes the type, name kept
    base(ws, 'e4', { type: 'page', event: undefined, name: 'Home', properties: { path: '/home' } }),
    base(ws, 'e5', { type: 'identify', event: undefined, traits: { email: 'a@example.com', plan: 'pro' } }),
    base(ws, 'e6', { type: 'group', event: undefined, groupId: 'acme', traits: { name: 'Acme' } }),
    base(ws, 'e7', { type: 'alias', event: undefined, userId: 'u-7', previousId: 'anon-7' }),
    // optional times present
    base(ws, 'e8', { sentAt: '2026-04-01T10:00:00.900Z', originalTimestamp: '2026-04-01T09:59:59.000Z' }),
    // nested objects and arrays kept whole
    base(ws, 'e9', { properties: { items: [{ sku: 'a', qty: 2 }], nested: { deep: { x: [1, 2, 3] } } } }),
  ];
}

describe('events_intake (ClickHouse) and toHistoryRow (TS) map an event to the same row', () => {
  it('agrees on every column for generated and edge-case events', async () => {
    const ws = `ws-intake-${Date.now()}`;
    const generated = generateDataset({
      seed: 5,
      workspaceId: ws,
      persons: 40,
      startMs: Date.UTC(2026, 3, 1),
      days: 10,
      eventsPerPerson: 10,
    }).events;
    const events = [...edgeCases(ws), ...generated];
    expect(events.length).toBeGreaterThan(200);
    const body = Buffer.from(events.map((e) => JSON.stringify(e)).join('\n'));
    await insertFormatted(ch, 'events_intake', body, 'JSONEachRow', {
      input_format_json_read_objects_as_strings: 1,
    });

    const rs = await ch.query({
      query: `SELECT * EXCEPT (inserted_at, timestamp, received_at, sent_at, original_timestamp),
                toUnixTimestamp64Milli(timestamp) AS timestamp, toUnixTimestamp64Milli(received_at) AS received_at,
                toUnixTimestamp64Milli(sent_at) AS sent_at, toUnixTimestamp64Milli(original_timestamp) AS original_timestamp
              FROM events WHERE workspace_id = {ws:String}`,
      query_params: { ws },
      format: 'JSONEachRow',
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    });
    const stored = new Map((await rs.json<HistoryRow>()).map((r) => [r.message_id, r]));
    expect(stored.size).toBe(events.length);
    for (const e of events) {
      const want = toHistoryRow(e);
      const got = stored.get(e.messageId)!;
      for (const c of HISTORY_COLUMNS) expect({ [c]: got[c] }, e.messageId).toEqual({ [c]: want[c] });
    }
  });

  it('refuses a whole insert holding an event the sink must not store', async () => {
    const ws = `ws-intake-bad-${Date.now()}`;
    const good = JSON.stringify(base(ws, 'g1', {}));
    for (const bad of [
      base(ws, '', {}), // no messageId
      base(ws, 'b2', { userId: null, anonymousId: null }), // nobody
      base(ws, 'b3', { timestamp: '2400-01-01T00:00:00Z' }), // outside DateTime64's range
      { ...base(ws, 'b4', {}), type: 'nonsense' },
      { ...base(ws, 'b5', {}), properties: 'a string' },
    ]) {
      await expect(
        insertFormatted(ch, 'events_intake', Buffer.from(`${good}\n${JSON.stringify(bad)}`), 'JSONEachRow', {
          input_format_json_read_objects_as_strings: 1,
        }),
        JSON.stringify(bad).slice(0, 80),
      ).rejects.toThrow();
    }
    const rs = await ch.query({
      query: 'SELECT count() AS n FROM events WHERE workspace_id = {ws:String}',
      query_params: { ws },
      format: 'JSONEachRow',
    });
    expect(Number((await rs.json<{ n: string }>())[0]!.n)).toBe(0);
  });
});

const IDENTITY_INTAKE = { input_format_json_read_numbers_as_strings: 0, input_format_skip_unknown_fields: 1 };

describe('identity_intake (ClickHouse) and toIdentityRows (TS) make the same identity_links rows', () => {
  const change = (ws: string, extra: Partial<IdentityChange>): IdentityChange => ({
    workspaceId: ws,
    profileId: 'p-1',
    identifiers: ['user:u-1', 'anon:a-1'],
    mergedProfileIds: [],
    version: 1,
    messageId: 'm-1',
    occurredAt: '2026-04-01T10:00:00.123Z',
    ...extra,
  });
  const linksOf = async (ws: string) => {
    const rs = await ch.query({
      query: `SELECT workspace_id, id_type, id_value, profile_id, version, toUnixTimestamp64Milli(at) AS at
              FROM identity_links WHERE workspace_id = {ws:String}`,
      query_params: { ws },
      format: 'JSONEachRow',
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    });
    return rs.json<Record<string, unknown>>();
  };
  /** A cdp.identity message as the sink's consumer hands it over. */
  const message = (value: string, offset = 0): IncomingMessage => ({
    topic: 't',
    partition: 0,
    offset: String(offset),
    key: null,
    value: Buffer.from(value),
    headers: {},
    timestamp: 0,
  });
  const key = (r: Record<string, unknown>) => IDENTITY_LINK_COLUMNS.map((c) => String(r[c])).join('|');

  it('agrees on every row for generated and edge-case changes', async () => {
    const ws = `ws-id-intake-${Date.now()}`;
    const generated = generateDataset({
      seed: 6,
      workspaceId: ws,
      persons: 80,
      startMs: Date.UTC(2026, 3, 1),
      days: 10,
      eventsPerPerson: 4,
    }).changes;
    const changes = [
      ...generated,
      // a value holding ':', an unknown kind (skipped), an empty value (skipped), no kind
      change(ws, {
        profileId: 'p-2',
        identifiers: ['anon:a:b:c', 'crm:9', 'email:', 'bare', 'email:x@example.com'],
      }),
      // merged ids: itself and empty ones skipped, unicode kept
      change(ws, { profileId: 'p-3', mergedProfileIds: ['p-3', '', 'p-ü"1'], version: 7 }),
      // unknown fields ignored
      { ...change(ws, { profileId: 'p-4', identifiers: [] }), extra: { nested: [1] } } as IdentityChange,
    ];
    expect(generated.length).toBeGreaterThan(20);
    await insertFormatted(
      ch,
      'identity_intake',
      Buffer.from(changes.map((c) => JSON.stringify(c)).join('\n')),
      'JSONEachRow',
      IDENTITY_INTAKE,
    );
    const want = changes.flatMap((c, i) => {
      const p = parseIdentityChange(message(JSON.stringify(c), i));
      if (!p.ok) throw new Error(p.reason);
      return p.rows.map((r) => key(r as unknown as Record<string, unknown>));
    });
    // the table keeps the latest version per identifier (an insert may already collapse)
    const latest = (rows: string[]) => {
      const by = new Map<string, string>();
      for (const r of rows) {
        const [w, type, value, , version] = r.split('|');
        const k = `${w}|${type}|${value}`;
        const had = by.get(k);
        if (!had || Number(had.split('|')[4]) < Number(version)) by.set(k, r);
      }
      return [...by.values()].sort();
    };
    const got = (await linksOf(ws)).map(key);
    expect(latest(got)).toEqual(latest(want));
    expect(latest(want).length).toBeGreaterThan(100);
    expect(got).toContain(`${ws}|anon|a:b:c|p-2|1|${Date.parse('2026-04-01T10:00:00.123Z')}`);
  });

  it('refuses a whole insert holding a change the TS check refuses too', async () => {
    const ws = `ws-id-intake-bad-${Date.now()}`;
    const good = JSON.stringify(change(ws, {}));
    const { identifiers: _i, ...noIdentifiers } = change(ws, {});
    const { profileId: _p, ...noProfile } = change(ws, {});
    for (const bad of [
      noIdentifiers,
      noProfile,
      change(ws, { workspaceId: '' }),
      change(ws, { version: 0 }),
      change(ws, { occurredAt: 'not a date' }),
      { ...change(ws, {}), identifiers: [1, 2] },
      { ...change(ws, {}), mergedProfileIds: 'p-0' },
      { ...change(ws, {}), workspaceId: 42 },
      { ...change(ws, {}), version: 1.5 },
    ]) {
      const text = JSON.stringify(bad);
      const ts = parseIdentityChange(message(text));
      expect(ts.ok, text).toBe(false);
      await expect(
        insertFormatted(
          ch,
          'identity_intake',
          Buffer.from(`${good}\n${text}`),
          'JSONEachRow',
          IDENTITY_INTAKE,
        ),
        text,
      ).rejects.toThrow();
    }
    expect(await linksOf(ws)).toEqual([]);
  });
});
