// The analytics routes against real chDB, on a seeded history whose answers are computed
// independently in TypeScript (test/analytics-oracle.ts): merged persons (two anonymous ids
// and a userId stitched through identity_links) count once, replayed rows never twice.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHistoryRow } from '../../processor/to-history-row.ts';
import { toIdentityRows } from '../../processor/to-identity-rows.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { createLogger } from '../../runtime/log.ts';
import type { IdentityChange } from '../../schemas/identity-change.ts';
import { migrate } from '../../schemas/migrations.ts';
import { type DatasetSend, generateDataset, generateSends } from '../../test/analytics-dataset.ts';
import {
  attributionOracle,
  type Ev,
  funnelOracle,
  type Model,
  resolvePersons,
  retentionOracle,
  sendTouches,
  trendsOracle,
} from '../../test/analytics-oracle.ts';
import { ledgerRow } from '../../test/fixtures.ts';
import { eventually, uniqueId } from '../../test/harness.ts';
import { createQueryApp } from '../app.ts';
import { withMemoryLimit } from './run-query.ts';

const DAY = 86_400_000;
const START = Date.parse('2026-03-02T00:00:00Z'); // a Monday
const FROM = START + 7 * DAY;
const TO = START + 35 * DAY;
const iso = (t: number) => new Date(t).toISOString();

let ch: ClickHouseClient;
let app: ReturnType<typeof createQueryApp>;
let evs: Ev[];
let sends: DatasetSend[];
let changes: IdentityChange[];
const ws = uniqueId('ws_');

const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
  const res = await app.request(`/v1/analytics/${path}`, {
    method: 'POST',
    headers: { authorization: 'Bearer admin-key-1', 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return res;
};
const json = async <T>(path: string, body: unknown): Promise<T> => {
  const res = await post(path, body);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as T;
};

beforeAll(async () => {
  ch = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-analytics-')) });
  await migrate(ch);
  const data = generateDataset({
    seed: 7,
    workspaceId: ws,
    persons: 400,
    startMs: START,
    days: 42,
    eventsPerPerson: 14,
  });
  // another workspace's copy of the same history must not leak into any answer
  const other = generateDataset({
    seed: 7,
    workspaceId: `${ws}-other`,
    persons: 50,
    startMs: START,
    days: 42,
    eventsPerPerson: 14,
  });
  const rows = [...data.events, ...other.events].map(toHistoryRow);
  await ch.insert({ table: 'events', values: rows, format: 'JSONEachRow' });
  // a replay of every fifth event (a sink that crashed before committing): a separate part
  await ch.insert({ table: 'events', values: rows.filter((_, i) => i % 5 === 0), format: 'JSONEachRow' });
  // identity changes arrive in any order; the highest version wins
  const links = [...data.changes, ...other.changes].reverse().flatMap((c) => toIdentityRows(c, START));
  await ch.insert({ table: 'identity_links', values: links, format: 'JSONEachRow' });
  evs = resolvePersons(data.events, data.changes);
  changes = data.changes;
  // the ledger: sends to the same people, and the other workspace's to its own (same ids)
  sends = generateSends(data, { seed: 7, startMs: START, days: 42 });
  const ledger = (workspace_id: string, list: DatasetSend[]) =>
    list.map((x) =>
      ledgerRow({
        workspace_id,
        at: x.t,
        send_key: x.key,
        campaign_id: x.campaign,
        profile_id: x.profile,
        channel: x.channel,
        outcome: x.outcome,
        attempt: x.attempt,
      }),
    );
  const ledgerRows = ledger(ws, sends);
  await ch.insert({
    table: 'activation_ledger',
    // every fourth row written twice (a redelivered batch)
    values: [...ledgerRows, ...ledgerRows.filter((_, i) => i % 4 === 0), ...ledger(`${ws}-other`, sends)],
    format: 'JSONEachRow',
  });
  app = createQueryApp({
    redis: {} as never,
    clickhouse: ch,
    defs: {} as never,
    writeKeys: {} as never,
    redisPrefix: 'unused',
    resolveAdminKey: (k) => (k === 'admin-key-1' ? ws : undefined),
    unsubscribeSecret: 'unused-in-this-suite',
    log: createLogger({ level: 'silent', name: 'test' }),
    analytics: { maxRangeDays: 400, timeoutS: 30, maxRows: 10_000 },
  });
});
afterAll(async () => {
  await ch?.close();
});

describe('the dataset', () => {
  it('has merged persons, replays and events on both sides of the range', async () => {
    const persons = new Set(evs.map((e) => e.person));
    expect([...persons].some((p) => p.startsWith('prof-'))).toBe(true);
    expect([...persons].some((p) => p.startsWith('u:'))).toBe(true);
    expect([...persons].some((p) => p.startsWith('a:'))).toBe(true);
    expect(evs.some((e) => e.t < FROM)).toBe(true);
    expect(evs.some((e) => e.t >= TO)).toBe(true);
    const rs = await ch.query({
      query: 'SELECT count() AS n, uniqExact(message_id) AS u FROM events WHERE workspace_id = {ws:String}',
      query_params: { ws },
      format: 'JSONEachRow',
    });
    const [r] = await rs.json<{ n: string; u: string }>();
    expect(Number(r!.u)).toBe(evs.length);
    expect(Number(r!.n)).toBeGreaterThan(evs.length); // duplicates are really there
  });
});

describe('POST /v1/analytics/funnel', () => {
  it('counts persons through ordered steps within the window, with a where filter', async () => {
    const body = {
      steps: [
        { event: 'Signed Up' },
        { event: 'Added To Cart', where: { '==': [{ var: 'properties.plan' }, 'pro'] } },
        { event: 'Order Completed', where: { '>': [{ var: 'properties.revenue' }, 20] } },
      ],
      window: '10d',
      from: iso(FROM),
      to: iso(TO),
    };
    const got = await json<{ steps: Array<{ event: string; count: number; conversionRate: number }> }>(
      'funnel',
      body,
    );
    const expected = funnelOracle(
      evs,
      [
        (e) => e.event === 'Signed Up',
        (e) => e.event === 'Added To Cart' && e.plan === 'pro',
        (e) => e.event === 'Order Completed' && e.revenue > 20,
      ],
      10 * DAY,
      FROM,
      TO,
    );
    expect(expected[2]).toBeGreaterThan(5);
    expect(expected[1]).toBeLessThan(expected[0]!);
    expect(got.steps.map((s) => s.count)).toEqual(expected);
    expect(got.steps[2]!.conversionRate).toBeCloseTo(expected[2]! / expected[0]!, 12);
    expect(got.steps.map((s) => s.event)).toEqual(['Signed Up', 'Added To Cart', 'Order Completed']);
  });

  it('splits by a breakdown field taken at the first step-1 event', async () => {
    const got = await json<{
      steps: Array<{ count: number }>;
      breakdown: Array<{ key: string; steps: Array<{ count: number }> }>;
    }>('funnel', {
      steps: [{ event: 'Signed Up' }, { event: 'Order Completed' }],
      window: '7d',
      from: iso(FROM),
      to: iso(TO),
      breakdown: 'properties.plan',
    });
    const total = got.breakdown.reduce((n, b) => n + b.steps[0]!.count, 0);
    expect(total).toBe(got.steps[0]!.count);
    expect(got.breakdown.map((b) => b.key).sort()).toEqual(['free', 'pro']);
    const expected = funnelOracle(
      evs,
      [(e) => e.event === 'Signed Up', (e) => e.event === 'Order Completed'],
      7 * DAY,
      FROM,
      TO,
    );
    expect(got.steps.map((s) => s.count)).toEqual(expected);
  });
});

describe('POST /v1/analytics/retention', () => {
  for (const [period, periods] of [
    ['week', 4],
    ['day', 10],
  ] as const)
    it(`builds ${period} cohorts from the first cohort event`, async () => {
      const got = await json<{ cohorts: unknown[] }>('retention', {
        cohortEvent: 'Signed Up',
        returnEvent: 'Page Viewed',
        period,
        periods,
        from: iso(FROM),
        to: iso(TO),
      });
      const expected = retentionOracle(evs, 'Signed Up', 'Page Viewed', period, periods, FROM, TO);
      expect(expected.length).toBeGreaterThan(3);
      expect(got.cohorts).toEqual(expected);
    });
});

describe('POST /v1/analytics/trends', () => {
  it('counts events per day, every day present', async () => {
    const got = await json<{ series: Array<{ key?: string; points: Array<{ t: string; count: number }> }> }>(
      'trends',
      { event: 'Page Viewed', interval: 'day', from: iso(FROM), to: iso(TO) },
    );
    const expected = trendsOracle(evs, 'Page Viewed', FROM, TO, () => '').get('')!;
    expect(got.series).toHaveLength(1);
    expect(got.series[0]!.points).toHaveLength(28);
    for (const p of got.series[0]!.points) expect(p.count, p.t).toBe(expected.get(p.t) ?? 0);
  });

  it('splits by a breakdown, one series per value', async () => {
    const got = await json<{ series: Array<{ key?: string; points: Array<{ t: string; count: number }> }> }>(
      'trends',
      {
        event: 'Page Viewed',
        interval: 'day',
        from: iso(FROM),
        to: iso(TO),
        breakdown: 'context.campaign.source',
      },
    );
    const expected = trendsOracle(evs, 'Page Viewed', FROM, TO, (e) => e.source);
    expect(got.series.map((s) => s.key).sort()).toEqual([...expected.keys()].sort());
    for (const s of got.series)
      for (const p of s.points) expect(p.count, `${s.key} ${p.t}`).toBe(expected.get(s.key!)?.get(p.t) ?? 0);
  });

  it('counts per hour over two days', async () => {
    const from = FROM + 3 * DAY;
    const to = from + 2 * DAY;
    const got = await json<{ series: Array<{ points: Array<{ t: string; count: number }> }> }>('trends', {
      event: 'Page Viewed',
      interval: 'hour',
      from: iso(from),
      to: iso(to),
    });
    expect(got.series[0]!.points).toHaveLength(48);
    const hour = 3_600_000;
    for (const p of got.series[0]!.points) {
      const t = Date.parse(p.t);
      expect(p.count, p.t).toBe(
        evs.filter((e) => e.event === 'Page Viewed' && e.t >= t && e.t < t + hour).length,
      );
    }
    expect(got.series[0]!.points.some((p) => p.count > 0)).toBe(true);
  });

  it('counts distinct persons when asked', async () => {
    const got = await json<{ series: Array<{ points: Array<{ t: string; count: number }> }> }>('trends', {
      event: 'Order Completed',
      interval: 'week',
      measure: 'persons',
      from: iso(FROM),
      to: iso(TO),
    });
    const week = 7 * DAY;
    const expected = [0, 1, 2, 3].map(
      (k) =>
        new Set(
          evs
            .filter(
              (e) => e.event === 'Order Completed' && e.t >= FROM + k * week && e.t < FROM + (k + 1) * week,
            )
            .map((e) => e.person),
        ).size,
    );
    expect(got.series[0]!.points.map((p) => p.count)).toEqual(expected);
  });
});

describe('POST /v1/analytics/attribution', () => {
  const models: Model[] = ['first_touch', 'last_touch', 'linear', 'time_decay', 'position_based'];
  it('credits touches by every model, value shared in proportion, touches before `from` included', async () => {
    const got = await json<{
      rows: Array<{ touchpoint: string; model: Model; conversions: number; value: number }>;
      unattributed: number;
    }>('attribution', {
      conversionEvent: 'Order Completed',
      touchpoint: 'context.campaign.name',
      models,
      lookback: '10d',
      halfLife: '2d',
      value: 'properties.revenue',
      from: iso(FROM),
      to: iso(TO),
    });
    const expected = attributionOracle(evs, {
      conversion: 'Order Completed',
      lookbackMs: 10 * DAY,
      halfLifeMs: 2 * DAY,
      from: FROM,
      to: TO,
    });
    expect(got.unattributed).toBe(expected.unattributed);
    expect(expected.unattributed).toBeGreaterThan(0);
    const seen = new Set<string>();
    for (const r of got.rows) {
      const k = `${r.model}|${r.touchpoint}`;
      seen.add(k);
      const e = expected.credit.get(k);
      expect(e, k).toBeDefined();
      expect(r.conversions, k).toBeCloseTo(e!.conversions, 6);
      expect(r.value, k).toBeCloseTo(e!.value, 4);
    }
    expect([...seen].sort()).toEqual([...expected.credit.keys()].sort());
    // every model hands out exactly one conversion per attributed conversion
    for (const m of models) {
      const total = got.rows.filter((r) => r.model === m).reduce((n, r) => n + r.conversions, 0);
      const conversions = evs.filter((e) => e.event === 'Order Completed' && e.t >= FROM && e.t < TO).length;
      expect(total, m).toBeCloseTo(conversions - expected.unattributed, 6);
    }
  });

  type AttributionAnswer = {
    rows: Array<{ touchpoint: string; model: Model; conversions: number; value: number }>;
    unattributed: number;
  };
  const expectOracle = (got: AttributionAnswer, expected: ReturnType<typeof attributionOracle>) => {
    expect(got.unattributed).toBe(expected.unattributed);
    for (const r of got.rows) {
      const k = `${r.model}|${r.touchpoint}`;
      const e = expected.credit.get(k);
      expect(e, k).toBeDefined();
      expect(r.conversions, k).toBeCloseTo(e!.conversions, 6);
      expect(r.value, k).toBeCloseTo(e!.value, 4);
    }
    expect(got.rows.map((r) => `${r.model}|${r.touchpoint}`).sort()).toEqual(
      [...expected.credit.keys()].sort(),
    );
  };

  it('credits the messages sent (the ledger) as touches: once per send key, to the person the profile is now', async () => {
    const got = await json<AttributionAnswer>('attribution', {
      conversionEvent: 'Order Completed',
      sends: { by: 'campaign' },
      models,
      lookback: '10d',
      halfLife: '2d',
      value: 'properties.revenue',
      from: iso(FROM),
      to: iso(TO),
    });
    const touches = sendTouches(sends, changes, 'campaign');
    const expected = attributionOracle([...evs, ...touches], {
      conversion: 'Order Completed',
      lookbackMs: 10 * DAY,
      halfLifeMs: 2 * DAY,
      from: FROM,
      to: TO,
      touch: (e) => (e.id.startsWith('send:') ? e.campaign : ''),
    });
    expectOracle(got, expected);
    // the data exercise what the rule says: journey steps named apart from campaigns, a
    // merged-away profile's send credited to the survivor, some conversions attributed
    expect(got.rows.some((r) => r.touchpoint === 'journey:jrn_nurture:mail')).toBe(true);
    expect(got.rows.some((r) => r.touchpoint === 'campaign:cmp_welcome')).toBe(true);
    expect(touches.some((t) => sends.some((x) => `send:${x.key}` === t.id && x.profile.endsWith('-b')))).toBe(
      true,
    );
    expect(got.rows.length).toBeGreaterThan(0);
  });

  it('mixes UTM touches and sends of some channels', async () => {
    const got = await json<AttributionAnswer>('attribution', {
      conversionEvent: 'Order Completed',
      touchpoint: 'context.campaign.name',
      sends: { by: 'channel', channels: ['email', 'push'] },
      models,
      lookback: '7d',
      value: 'properties.revenue',
      from: iso(FROM),
      to: iso(TO),
    });
    const touches = sendTouches(
      sends.filter((x) => x.channel !== 'sms'),
      changes,
      'channel',
    );
    const expected = attributionOracle([...evs, ...touches], {
      conversion: 'Order Completed',
      lookbackMs: 7 * DAY,
      halfLifeMs: 7 * DAY,
      from: FROM,
      to: TO,
    });
    expectOracle(got, expected);
    expect(got.rows.some((r) => r.touchpoint === 'channel:push')).toBe(true);
    expect(got.rows.some((r) => r.touchpoint === 'channel:sms')).toBe(false);
    expect(got.rows.some((r) => r.touchpoint === 'spring_sale')).toBe(true);
  });

  it('refuses an attribution without touches, or a send filter that is not one', async () => {
    const base = {
      conversionEvent: 'Order Completed',
      models: ['linear'],
      lookback: '7d',
      from: iso(FROM),
      to: iso(TO),
    };
    for (const body of [
      base,
      { ...base, sends: { by: 'utm' } },
      { ...base, sends: { by: 'campaign', x: 1 } },
    ]) {
      const res = await post('attribution', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/touchpoint|sends/);
    }
  });

  it('answers CSV with RFC 4180 quoting and formula cells defused', async () => {
    const res = await post(
      'attribution',
      {
        conversionEvent: 'Order Completed',
        touchpoint: 'context.campaign.name',
        models: ['last_touch'],
        lookback: '30d',
        from: iso(FROM),
        to: iso(TO),
      },
      { accept: 'text/csv' },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    const text = await res.text();
    const lines = text.split('\r\n');
    expect(lines[0]).toBe('touchpoint,model,conversions,value');
    expect(text).toContain(`"'=SUM(1,2)",last_touch,`);
    expect(text).toContain('"brand ""x""",last_touch,');
    expect(lines.at(-2)).toMatch(/^,unattributed,\d+,0$/);
    expect(lines.at(-1)).toBe('');
  });
});

describe('CSV for every route', () => {
  const csv = async (path: string, body: object) => {
    const res = await post(path, body, { accept: 'text/csv' });
    expect(res.status).toBe(200);
    return (await res.text()).split('\r\n');
  };
  it('funnel: one row per step (and per breakdown value)', async () => {
    const body = {
      steps: [{ event: 'Signed Up' }, { event: 'Order Completed' }],
      window: '7d',
      from: iso(FROM),
      to: iso(TO),
    };
    const plain = await csv('funnel', body);
    expect(plain[0]).toBe('step,event,count,conversionRate');
    expect(plain[1]).toMatch(/^1,Signed Up,\d+,1$/);
    expect(plain).toHaveLength(4);
    const split = await csv('funnel', { ...body, breakdown: 'properties.plan' });
    expect(split[0]).toBe('key,step,event,count,conversionRate');
    expect(split).toHaveLength(1 + 2 * 2 + 1);
  });
  it('retention: a column per period', async () => {
    const lines = await csv('retention', {
      cohortEvent: 'Signed Up',
      returnEvent: 'Page Viewed',
      period: 'week',
      periods: 3,
      from: iso(FROM),
      to: iso(TO),
    });
    expect(lines[0]).toBe('start,size,returned_0,returned_1,returned_2');
    expect(lines[1]).toMatch(/^2026-03-09T00:00:00\.000Z,\d+,\d+,\d+,\d+$/);
  });
  it('trends: key, t, count', async () => {
    const lines = await csv('trends', {
      event: 'Page Viewed',
      interval: 'day',
      from: iso(FROM),
      to: iso(FROM + 2 * DAY),
    });
    expect(lines.slice(0, 2)).toEqual([
      'key,t,count',
      expect.stringMatching(/^,2026-03-09T00:00:00\.000Z,\d+$/),
    ]);
  });
});

describe('hostile and invalid input', () => {
  const range = { from: iso(FROM), to: iso(TO) };
  const funnelOf = (extra: object) => ({ steps: [{ event: 'Signed Up' }], window: '1d', ...range, ...extra });
  const cases: Array<[string, string, unknown, RegExp, number?]> = [
    [
      'funnel',
      'injection in a breakdown path',
      funnelOf({ breakdown: "properties.x') OR 1=1 --" }),
      /^breakdown: /,
    ],
    [
      'funnel',
      'unsupported operator',
      funnelOf({ steps: [{ event: 'a', where: { regex: [{ var: 'event' }, '.*'] } }] }),
      /^steps\[0\]\.where: unsupported operator "regex"/,
    ],
    [
      'funnel',
      'injection in a var path',
      funnelOf({ steps: [{ event: 'a', where: { '==': [{ var: "properties.a'||'" }, 1] } }] }),
      /^steps\[0\]\.where var: /,
    ],
    [
      'funnel',
      'comparing two fields',
      funnelOf({ steps: [{ event: 'a', where: { '==': [{ var: 'event' }, { var: 'name' }] } }] }),
      /^steps\[0\]\.where: /,
    ],
    ['funnel', 'a window in years', funnelOf({ window: '1y' }), /^window: /],
    [
      'funnel',
      'too many steps',
      funnelOf({ steps: Array.from({ length: 11 }, () => ({ event: 'a' })) }),
      /^steps: /,
    ],
    ['funnel', 'an unknown field', funnelOf({ sql: 'DROP TABLE events' }), /^sql: /],
    ['funnel', 'a number for an event name', funnelOf({ steps: [{ event: 42 }] }), /^steps\[0\]\.event: /],
    ['trends', 'a bad date', { event: 'a', interval: 'day', from: 'yesterday', to: iso(TO) }, /^from: /],
    [
      'trends',
      'an impossible date',
      { event: 'a', interval: 'day', from: '2026-02-30', to: iso(TO) },
      /^from: /,
    ],
    [
      'trends',
      'to before from',
      { event: 'a', interval: 'day', from: iso(TO), to: iso(FROM) },
      /^to: must be after from/,
    ],
    [
      'trends',
      'a range over 400 days',
      { event: 'a', interval: 'day', from: '2020-01-01', to: '2026-01-01' },
      /^to: the range is at most 400 days/,
    ],
    ['trends', 'an unknown interval', { event: 'a', interval: 'minute', ...range }, /^interval: /],
    [
      'retention',
      'periods as a string',
      { cohortEvent: 'a', returnEvent: 'b', period: 'day', periods: '5', ...range },
      /^periods: /,
    ],
    [
      'retention',
      'periods 0',
      { cohortEvent: 'a', returnEvent: 'b', period: 'day', periods: 0, ...range },
      /^periods: /,
    ],
    [
      'attribution',
      'an unknown model',
      {
        conversionEvent: 'a',
        touchpoint: 'context.campaign.name',
        models: ['magic'],
        lookback: '7d',
        ...range,
      },
      /^models\[0\]: /,
    ],
    [
      'attribution',
      'a value path into a column name',
      {
        conversionEvent: 'a',
        touchpoint: 'context.campaign.name',
        models: ['linear'],
        lookback: '7d',
        value: 'revenue; DROP',
        ...range,
      },
      /^value: /,
    ],
    [
      'attribution',
      'a touchpoint outside the grammar',
      { conversionEvent: 'a', touchpoint: 'user_id', models: ['linear'], lookback: '7d', ...range },
      /^touchpoint: /,
    ],
    ['trends', 'malformed JSON', '{"event": ', /^malformed JSON/],
    ['trends', 'an array body', '[]', /^body: /],
  ];
  for (const [route, what, body, error, status = 400] of cases)
    it(`${route}: ${what} → ${status} naming the field`, async () => {
      const res = await post(route, body);
      const text = await res.text();
      expect(res.status, text).toBe(status);
      const { error: message } = JSON.parse(text) as { error: string };
      expect(message).toMatch(error);
      expect(message).not.toMatch(/SELECT|FROM events|DB::|Code: \d+/);
    });

  it('binds an event name that looks like SQL: no error, no effect', async () => {
    const got = await json<{ steps: Array<{ count: number }> }>('funnel', {
      steps: [{ event: "x'); DROP TABLE events; --" }],
      window: '1d',
      ...range,
    });
    expect(got.steps[0]!.count).toBe(0);
    const rs = await ch.query({ query: 'SELECT count() AS n FROM events', format: 'JSONEachRow' });
    expect(Number((await rs.json<{ n: string }>())[0]!.n)).toBeGreaterThan(0);
  });

  it('refuses an oversized body with 413', async () => {
    const res = await post('trends', { event: 'a', interval: 'day', ...range, pad: 'x'.repeat(100_000) });
    expect(res.status).toBe(413);
  });

  it('needs the admin key', async () => {
    const res = await app.request('/v1/analytics/trends', { method: 'POST', body: '{}' });
    expect(res.status).toBe(401);
  });
});

describe('engine failures', () => {
  const failing = (message: string) =>
    createQueryApp({
      redis: {} as never,
      clickhouse: { query: async () => Promise.reject(new Error(message)) } as never,
      defs: {} as never,
      writeKeys: {} as never,
      redisPrefix: 'unused',
      resolveAdminKey: () => ws,
      unsubscribeSecret: 'unused-in-this-suite',
      log: createLogger({ level: 'silent', name: 'test' }),
      analytics: { maxRangeDays: 400, timeoutS: 3, maxRows: 10_000 },
    });
  const body = JSON.stringify({ event: 'a', interval: 'day', from: iso(FROM), to: iso(TO) });
  const call = (a: ReturnType<typeof createQueryApp>) =>
    a.request('/v1/analytics/trends', {
      method: 'POST',
      headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
      body,
    });

  it('answers 500 with a generic message, never the engine’s words', async () => {
    const res = await call(failing('Code: 47. DB::Exception: Unknown identifier SELECT secret FROM events'));
    expect(res.status).toBe(500);
    const { error } = (await res.json()) as { error: string };
    expect(error).toMatch(/^the trends query failed \(query id analytics-trends-/);
    expect(error).not.toMatch(/DB::|secret|SELECT/);
  });

  it('answers 504 naming the limit when the query times out', async () => {
    const res = await call(failing('Code: 159. DB::Exception: Timeout exceeded: elapsed 3.1 seconds'));
    expect(res.status).toBe(504);
    expect(((await res.json()) as { error: string }).error).toMatch(
      /longer than 3 s \(CDP_ANALYTICS_TIMEOUT_S\)/,
    );
  });

  it('answers 400 naming the limit when the query needs more memory than allowed', async () => {
    const res = await call(
      failing(
        'Code: 241. DB::Exception: Query memory limit exceeded: would use 5.15 MiB, maximum: 976.56 KiB',
      ),
    );
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: string };
    expect(error).toMatch(/more than 1000000000 bytes of memory \(CDP_ANALYTICS_MAX_MEMORY_BYTES\)/);
    expect(error).not.toMatch(/DB::|MiB/);
  });
});

describe('memory and concurrency limits', () => {
  it('states max_memory_usage in the query’s own SETTINGS, joining one it ends with', () => {
    expect(withMemoryLimit('SELECT 1\n', 5e8)).toBe('SELECT 1\nSETTINGS max_memory_usage = 500000000');
    expect(withMemoryLimit('SELECT a FROM t GROUP BY a\n     SETTINGS group_by_use_nulls = 1', 5e8)).toBe(
      'SELECT a FROM t GROUP BY a\n     SETTINGS group_by_use_nulls = 1\n, max_memory_usage = 500000000',
    );
    // a SETTINGS inside a subquery is not the query's
    expect(withMemoryLimit('SELECT * FROM (SELECT 1 SETTINGS x = 1)', 5e8)).toMatch(
      /\)\nSETTINGS max_memory_usage = 500000000$/,
    );
  });

  it('the memory limit is enforced by the engine and does not stay on later queries', async () => {
    const heavy =
      'SELECT count() AS c FROM (SELECT n, groupArray(n) FROM (SELECT number AS n FROM numbers(3000000)) GROUP BY n)';
    await expect(
      ch.query({ query: withMemoryLimit(heavy, 1_000_000), format: 'JSONEachRow' }).then((r) => r.json()),
    ).rejects.toThrow(/memory limit exceeded/i);
    const rs = await ch.query({ query: "SELECT getSetting('max_memory_usage') AS m", format: 'JSONEachRow' });
    expect(await rs.json()).toEqual([{ m: 0 }]);
  });

  it('runs at most maxConcurrent analytics requests per workspace: one more is a 429 until one ends', async () => {
    const started: string[] = [];
    const gates: Array<() => void> = [];
    // the query runner: each query waits until the test releases it
    const held = {
      query: async (q: { query: string }) => {
        started.push(q.query);
        await new Promise<void>((r) => gates.push(r));
        return { json: async () => [] };
      },
    };
    const a = createQueryApp({
      redis: {} as never,
      clickhouse: held as never,
      defs: {} as never,
      writeKeys: {} as never,
      redisPrefix: 'unused',
      resolveAdminKey: (k) => (k === 'other' ? `${ws}-other` : ws),
      unsubscribeSecret: 'unused-in-this-suite',
      log: createLogger({ level: 'silent', name: 'test' }),
      analytics: {
        maxRangeDays: 400,
        timeoutS: 30,
        maxRows: 10_000,
        maxConcurrent: 2,
        maxMemoryBytes: 123_000_000,
      },
    });
    const call = (key = 'k') =>
      a.request('/v1/analytics/trends', {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ event: 'a', interval: 'day', from: iso(FROM), to: iso(TO) }),
      });
    const first = call();
    const second = call();
    await eventually('two queries running', () => started.length === 2 || undefined);
    expect(started[0]).toMatch(/\nSETTINGS max_memory_usage = 123000000$/);

    const third = await call();
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('5');
    expect(((await third.json()) as { error: string }).error).toMatch(
      /^2 analytics queries of this workspace are already running \(CDP_ANALYTICS_MAX_CONCURRENT\)/,
    );
    expect(started).toHaveLength(2);
    // another workspace has slots of its own
    const other = call('other');
    await eventually('the other workspace’s query running', () => started.length === 3 || undefined);

    gates[0]!();
    expect((await first).status).toBe(200);
    const fourth = call();
    await eventually('a query in the freed slot', () => started.length === 4 || undefined);
    for (const g of gates.slice(1)) g();
    expect((await second).status).toBe(200);
    expect((await other).status).toBe(200);
    expect((await fourth).status).toBe(200);
    // all slots free again
    const fifth = call();
    await eventually('another query', () => started.length === 5 || undefined);
    gates[4]!();
    expect((await fifth).status).toBe(200);
  });
});

describe('where: every supported operator', () => {
  const ws2 = `${ws}-where`;
  let app2: ReturnType<typeof createQueryApp>;
  beforeAll(async () => {
    const ev = (id: string, props: Record<string, unknown>) =>
      toHistoryRow({
        workspaceId: ws2,
        type: 'track',
        messageId: id,
        userId: 'u',
        anonymousId: null,
        event: 'E',
        properties: props,
        traits: {},
        context: {},
        integrations: {},
        timestamp: '2026-01-01T10:00:00Z',
        receivedAt: '2026-01-01T10:00:00Z',
      });
    await ch.insert({
      table: 'events',
      values: [
        ev('1', { vip: true, n: 3, s: 'a' }),
        ev('2', { vip: false, n: 5, s: 'b' }),
        ev('3', { n: 'x' }),
      ],
      format: 'JSONEachRow',
    });
    app2 = createQueryApp({
      redis: {} as never,
      clickhouse: ch,
      defs: {} as never,
      writeKeys: {} as never,
      redisPrefix: 'unused',
      resolveAdminKey: () => ws2,
      unsubscribeSecret: 'unused-in-this-suite',
      log: createLogger({ level: 'silent', name: 'test' }),
    });
  });
  const n = { var: 'properties.n' };
  const cases: Array<[unknown, number]> = [
    [{ '==': [{ var: 'properties.vip' }, true] }, 1],
    [{ '!=': [{ var: 'properties.vip' }, true] }, 2],
    [{ '==': [{ var: 'properties.s' }, 'a'] }, 1],
    [{ '!=': [{ var: 'properties.s' }, 'a'] }, 2],
    [{ in: [n, [3, 5]] }, 2],
    [{ in: [{ var: 'properties.s' }, ['b', 'c']] }, 1],
    [{ '<': [4, n] }, 1],
    [{ '<=': [n, 3] }, 1],
    [{ '>': [n, 3] }, 1],
    [{ '>=': [n, 3] }, 2],
    [{ '!': { '==': [n, 3] } }, 2],
    [{ and: [{ '>=': [n, 3] }, { or: [{ '==': [{ var: 'userId' }, 'u'] }, { '==': [n, 9] }] }] }, 2],
    [{ or: [{ '==': [n, 3] }, { '==': [{ var: 'event.properties.s' }, 'b'] }] }, 2],
  ];
  for (const [where, count] of cases)
    it(`${JSON.stringify(where)} → ${count}`, async () => {
      const res = await app2.request('/v1/analytics/trends', {
        method: 'POST',
        headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
        body: JSON.stringify({ event: 'E', interval: 'day', from: '2026-01-01', to: '2026-01-02', where }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { series: Array<{ points: Array<{ count: number }> }> };
      expect(body.series[0]!.points[0]!.count).toBe(count);
    });
});
