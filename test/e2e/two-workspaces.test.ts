// Two workspaces side by side on the whole stack (`cdp start` services: ingest, processor,
// history, query with the BI endpoint; real Kafka, Redis, chDB): the same user id, anonymous id,
// event names and even message ids in both, each workspace acting with its own owner's token
// and write key. Identity, profiles (lookups, timelines, access exports, consent), segments,
// campaigns (a webhook per workspace), history, analytics (funnel, retention, attribution,
// trends with breakdowns), data exports, bulk imports, the BI endpoint (hostile SQL included)
// and erasure each see or change only their own workspace; erasing in A leaves B whole;
// archiving B stops B's write key at ingest, B's people and B's BI credential, and leaves A
// running.
import { readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
// hyparquet: the reader half of hyparquet-writer, which the warehouse exporter writes with
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { directoryOf, warehouseOptions } from '../../schemas/warehouse.ts';
import type { RunningWarehouse } from '../../warehouse/main.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let biUrl: string;

interface Side {
  ws: string;
  token: string;
  writeKey: string;
  segmentId: string;
  bi: { user: string; password: string };
  hooks: Awaited<ReturnType<typeof startWebhookReceiver>>;
}
const side: { A: Side; B: Side } = {} as { A: Side; B: Side };

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

async function call(key: string, method: string, path: string, body?: unknown, workspace?: string) {
  const headers: Record<string, string> = {
    authorization: `Bearer ${key}`,
    'content-type': 'application/json',
  };
  if (workspace) headers['x-workspace'] = workspace;
  const res = await fetch(`${running.urls.query}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, any> };
}

const ingest = (writeKey: string, path: string, body: unknown) =>
  fetch(`${running.urls.ingest}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });

const bi = async (s: Side, query: string) => {
  const res = await fetch(`${biUrl}/?default_format=JSONEachRow`, {
    method: 'POST',
    headers: { 'X-ClickHouse-User': s.bi.user, 'X-ClickHouse-Key': s.bi.password },
    body: query,
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`BI ${res.status}: ${text}`);
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
};

/** A BI query whatever its answer: hostile statements are expected to be refused. */
const biRaw = async (s: Side, query: string, params = '') => {
  const res = await fetch(`${biUrl}/?default_format=JSONEachRow${params}`, {
    method: 'POST',
    headers: { 'X-ClickHouse-User': s.bi.user, 'X-ClickHouse-Key': s.bi.password },
    body: query,
  });
  return { status: res.status, text: await res.text() };
};

/** Raw body to the query API (imports take files, exports give them). */
async function send(key: string, method: string, path: string, body?: string, type?: string) {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (type) headers['content-type'] = type;
  const res = await fetch(`${running.urls.query}${path}`, { method, headers, body });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') ?? '' };
}

/** Every row of the Parquet files under a directory (the warehouse export's), as written. */
async function parquetRows(dir: string) {
  const out: Array<{ workspace_id: string; message_id: string; context: string; traits: string }> = [];
  let names: string[];
  try {
    names = readdirSync(dir, { recursive: true }) as string[];
  } catch {
    return out;
  }
  for (const n of names.filter((x) => x.endsWith('.parquet')).sort()) {
    const file = await asyncBufferFromFile(join(dir, n));
    out.push(
      ...((await parquetReadObjects({
        file,
        columns: ['workspace_id', 'message_id', 'context', 'traits'],
      })) as typeof out),
    );
  }
  return out;
}

const USER = 'same-user';
const ANON = 'same-anon';
const EVENT = uniqueId('Bought ');

beforeAll(async () => {
  cfg = testConfig({
    CDP_WEBHOOK_ALLOW_LOOPBACK: 'true',
    CDP_BI_SQL: 'true',
    CDP_BI_HOST: '127.0.0.1',
    CDP_BI_PORT: String(await freePort()),
  });
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  biUrl = `http://127.0.0.1:${cfg.bi!.port}`;
  const root = cfg.keys.adminKey;
  const b = await call(root, 'POST', '/v1/workspaces', { name: uniqueId('Workspace B ') });
  expect(b.status).toBe(201);
  for (const [name, ws] of [
    ['A', cfg.keys.workspace],
    ['B', b.body.id as string],
  ] as const) {
    const p = await call(
      root,
      'POST',
      '/v1/people',
      { email: `owner-${name}-${uniqueId('')}@example.com`, role: 'owner' },
      ws,
    );
    expect(p.status).toBe(201);
    const t = await call(root, 'POST', `/v1/people/${p.body.id}/tokens`, undefined, ws);
    const token = t.body.token as string;
    // everything below with the workspace's own owner token, no X-Workspace
    const wk = await call(token, 'POST', '/v1/write-keys', { name: 'server' });
    expect(wk.status).toBe(201);
    const seg = await call(token, 'POST', '/v1/segments', {
      name: `Pro ${name}`,
      rule: { '==': [{ var: 'traits.plan' }, 'pro'] },
    });
    expect(seg.status).toBe(201);
    // a campaign on the segment: a webhook to this workspace's own receiver
    const hooks = await startWebhookReceiver();
    const campaign = await call(token, 'POST', '/v1/campaigns', {
      name: `Welcome ${name}`,
      segmentId: seg.body.id,
      on: 'enter',
      channel: 'webhook',
      webhook: { url: hooks.url },
    });
    expect(campaign.status, JSON.stringify(campaign.body)).toBe(201);
    const cred = await call(token, 'POST', '/v1/bi-credentials', { name: `bi ${name}` });
    expect(cred.status).toBe(201);
    side[name] = {
      ws,
      token,
      writeKey: wk.body.key,
      segmentId: seg.body.id,
      bi: { user: cred.body.user, password: cred.body.password },
      hooks,
    };
  }
}, 180_000);

afterAll(async () => {
  await running?.stop();
  await side.A?.hooks.close();
  await side.B?.hooks.close();
});

describe('two workspaces side by side', () => {
  it('the same ids in both make two people, each seen only in their workspace', async () => {
    // write keys reach ingest within its refresh interval
    for (const s of [side.A, side.B])
      await eventually(
        'write key accepted',
        async () => {
          const r = await ingest(s.writeKey, '/v1/identify', {
            userId: USER,
            anonymousId: ANON,
            traits: { plan: s === side.A ? 'pro' : 'free', email: s === side.A ? 'a@a.test' : 'b@b.test' },
          });
          return r.status === 200;
        },
        30_000,
      );
    // A: three events; B: one, then B becomes pro
    for (let i = 0; i < 3; i++)
      expect((await ingest(side.A.writeKey, '/v1/track', { userId: USER, event: EVENT })).status).toBe(200);
    expect((await ingest(side.B.writeKey, '/v1/track', { anonymousId: ANON, event: EVENT })).status).toBe(
      200,
    );
    expect(
      (await ingest(side.B.writeKey, '/v1/identify', { userId: USER, traits: { plan: 'pro' } })).status,
    ).toBe(200);

    const profile = async (s: Side) => {
      const r = await call(s.token, 'GET', `/v1/profiles?userId=${USER}`);
      return r.status === 200 ? r.body : undefined;
    };
    const pa = await eventually(
      'A profile in A segment',
      async () => {
        const p = await profile(side.A);
        return p?.segments?.includes(side.A.segmentId) ? p : undefined;
      },
      60_000,
    );
    const pb = await eventually(
      'B profile pro in B segment',
      async () => {
        const p = await profile(side.B);
        return p?.segments?.includes(side.B.segmentId) ? p : undefined;
      },
      60_000,
    );
    expect(pa.id).not.toBe(pb.id);
    expect(pa.traits.email).toBe('a@a.test');
    expect(pb.traits.email).toBe('b@b.test');
    // no segment of the other workspace on either
    expect(pa.segments).not.toContain(side.B.segmentId);
    expect(pb.segments).not.toContain(side.A.segmentId);
    // the other workspace's profile id is not found, its segment neither
    expect((await call(side.A.token, 'GET', `/v1/profiles/${pb.id}`)).status).toBe(404);
    expect((await call(side.B.token, 'GET', `/v1/segments/${side.A.segmentId}`)).status).toBe(404);
    // the anonymous id B sent before identifying is B's person, not A's
    const anonB = await call(side.B.token, 'GET', `/v1/profiles?anonymousId=${ANON}`);
    expect(anonB.status).toBe(200);
    expect(anonB.body.id).toBe(pb.id);
    expect((await call(side.A.token, 'GET', `/v1/profiles?anonymousId=${ANON}`)).body.id).toBe(pa.id);

    // campaigns: each workspace's webhook gets its own person only
    await eventually(
      'A campaign sent',
      async () => side.A.hooks.deliveries.some((d) => d.body.includes(pa.id)),
      60_000,
    );
    await eventually(
      'B campaign sent',
      async () => side.B.hooks.deliveries.some((d) => d.body.includes(pb.id)),
      60_000,
    );
    expect(side.A.hooks.deliveries.filter((d) => d.body.includes(pb.id))).toEqual([]);
    expect(side.B.hooks.deliveries.filter((d) => d.body.includes(pa.id))).toEqual([]);
    for (const d of [...side.A.hooks.deliveries, ...side.B.hooks.deliveries])
      expect(d.headers['content-type']).toMatch(/^application\/json/);

    // history and analytics: A counts 3 of the event, B 1
    const today = new Date();
    const day = (d: number) => new Date(today.getTime() + d * 86_400_000).toISOString().slice(0, 10);
    const trend = async (s: Side) => {
      const r = await call(s.token, 'POST', '/v1/analytics/trends', {
        event: EVENT,
        interval: 'day',
        from: day(-1),
        to: day(1),
      });
      return (r.body.series?.[0]?.points ?? []).reduce((a: number, p: { count: number }) => a + p.count, 0);
    };
    await eventually('A trends 3', async () => (await trend(side.A)) === 3, 60_000);
    await eventually('B trends 1', async () => (await trend(side.B)) === 1, 60_000);

    // the BI endpoint: each credential sees its own workspace's rows only
    const count = async (s: Side) =>
      Number(
        (await bi(s, `SELECT count() AS n FROM bi_events WHERE event = '${EVENT.replace(/'/g, "''")}'`))[0]
          ?.n,
      );
    await eventually('BI A', async () => (await count(side.A)) === 3, 60_000);
    expect(await count(side.B)).toBe(1);
  });

  it('analytics, profile lookups, timelines, exports, imports and BI SQL of A never show or touch B', async () => {
    const pa = (await call(side.A.token, 'GET', `/v1/profiles?userId=${USER}`)).body;
    const pb = (await call(side.B.token, 'GET', `/v1/profiles?userId=${USER}`)).body;
    expect(pa.id && pb.id).toBeTruthy();
    // the same event names and the same message ids in both workspaces, told apart by their
    // campaign (camp A / camp B) and revenue; A has a second person who signs up only
    const SIGNUP = uniqueId('Signed Up ');
    const ORDER = uniqueId('Ordered ');
    const mark = uniqueId('');
    const camp = { A: `camp-A-${mark}`, B: `camp-B-${mark}` };
    for (const name of ['A', 'B'] as const) {
      const s = side[name];
      const signup = {
        userId: USER,
        event: SIGNUP,
        messageId: `m-signup-${mark}`,
        context: { campaign: { name: camp[name], source: `src-${name}` } },
      };
      expect((await ingest(s.writeKey, '/v1/track', signup)).status).toBe(200);
      const order = {
        userId: USER,
        event: ORDER,
        messageId: `m-order-${mark}`,
        properties: { revenue: name === 'A' ? 100 : 7 },
      };
      expect((await ingest(s.writeKey, '/v1/track', order)).status).toBe(200);
    }
    expect(
      (
        await ingest(side.A.writeKey, '/v1/track', {
          userId: `a-only-${mark}`,
          event: SIGNUP,
          messageId: `m-a-only-${mark}`,
          context: { campaign: { name: camp.A, source: 'src-A' } },
        })
      ).status,
    ).toBe(200);

    const today = new Date();
    const day = (d: number) => new Date(today.getTime() + d * 86_400_000).toISOString().slice(0, 10);
    const range = { from: day(-1), to: day(1) };
    const analytics = async (s: Side, kind: string, body: Record<string, unknown>) => {
      const r = await call(s.token, 'POST', `/v1/analytics/${kind}`, { ...body, ...range });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body;
    };
    // funnel: A two sign-ups, one order; B one and one (the same message ids in B hide none of A's)
    const funnel = (s: Side) =>
      analytics(s, 'funnel', { steps: [{ event: SIGNUP }, { event: ORDER }], window: '1d' });
    const counts = (f: Record<string, unknown>) => (f.steps as Array<{ count: number }>).map((x) => x.count);
    await eventually('A funnel 2 → 1', async () => counts(await funnel(side.A)).join() === '2,1', 60_000);
    await eventually('B funnel 1 → 1', async () => counts(await funnel(side.B)).join() === '1,1', 60_000);
    // breakdown by source: each workspace's own only
    const byA = await analytics(side.A, 'funnel', {
      steps: [{ event: SIGNUP }, { event: ORDER }],
      window: '1d',
      breakdown: 'context.campaign.source',
    });
    expect(byA.breakdown.map((b: { key: string }) => b.key)).toEqual(['src-A']);

    // retention: A's cohort is two people, one came back; B's one and one
    for (const [s, size, back] of [
      [side.A, 2, 1],
      [side.B, 1, 1],
    ] as const) {
      const r = await analytics(s, 'retention', {
        cohortEvent: SIGNUP,
        returnEvent: ORDER,
        period: 'day',
        periods: 1,
      });
      const cohorts = r.cohorts as Array<{ size: number; returned: number[] }>;
      expect(cohorts.reduce((a, c) => a + c.size, 0)).toBe(size);
      expect(cohorts.reduce((a, c) => a + (c.returned[0] ?? 0), 0)).toBe(back);
    }

    // attribution: each order to its own workspace's campaign, with its own revenue
    for (const [name, value] of [
      ['A', 100],
      ['B', 7],
    ] as const) {
      const r = await analytics(side[name], 'attribution', {
        conversionEvent: ORDER,
        touchpoint: 'context.campaign.name',
        models: ['last_touch', 'linear'],
        value: 'properties.revenue',
        lookback: '30d',
      });
      expect(r.unattributed).toBe(0);
      const rows = r.rows as Array<{ touchpoint: string; model: string; conversions: number; value: number }>;
      expect(rows.map((x) => x.touchpoint)).toEqual([camp[name], camp[name]]);
      for (const row of rows) expect([row.conversions, row.value]).toEqual([1, value]);
    }

    // trends with a breakdown: own campaign only; as persons too
    for (const [name, n] of [
      ['A', 2],
      ['B', 1],
    ] as const) {
      const r = await analytics(side[name], 'trends', {
        event: SIGNUP,
        interval: 'day',
        breakdown: 'context.campaign.name',
        measure: 'persons',
      });
      const series = r.series as Array<{ key: string; points: Array<{ count: number }> }>;
      expect(series.map((x) => x.key)).toEqual([camp[name]]);
      expect(series[0]!.points.reduce((a, p) => a + p.count, 0)).toBe(n);
    }

    // profile lookups: the other workspace's email, anonymous id or profile id find nothing
    expect((await call(side.A.token, 'GET', '/v1/profiles?email=b%40b.test')).status).toBe(404);
    expect((await call(side.B.token, 'GET', '/v1/profiles?email=a%40a.test')).status).toBe(404);
    expect((await call(side.B.token, 'GET', '/v1/profiles?email=b%40b.test')).body.id).toBe(pb.id);
    for (const path of ['timeline', 'events', 'export'])
      expect((await call(side.B.token, 'GET', `/v1/profiles/${pa.id}/${path}`)).status, path).toBe(404);
    // consent of A's person: B's token neither reads it (now, history) nor writes it (404, as
    // above); A reads and writes it
    const revoke = { channel: 'sms', purpose: 'news', subscribed: false };
    for (const path of ['consent', 'consent/history'])
      expect((await call(side.B.token, 'GET', `/v1/profiles/${pa.id}/${path}`)).status, path).toBe(404);
    expect((await call(side.B.token, 'PUT', `/v1/profiles/${pa.id}/consent`, revoke)).status).toBe(404);
    expect((await call(side.A.token, 'PUT', `/v1/profiles/${pa.id}/consent`, revoke)).status).toBe(200);
    expect((await call(side.A.token, 'GET', `/v1/profiles/${pa.id}/consent`)).body).toMatchObject({
      profileId: pa.id,
      consents: [revoke],
    });
    expect(
      (await call(side.A.token, 'GET', `/v1/profiles/${pa.id}/consent/history`)).body.history,
    ).toMatchObject([{ profileId: pa.id, ...revoke, status: 'revoked' }]);
    expect((await call(side.B.token, 'GET', `/v1/profiles/${pb.id}/consent`)).body).toEqual({
      profileId: pb.id,
      consents: [],
    });
    // timelines and the person's export (access request): each workspace's own events only
    for (const [name, own, other] of [
      ['A', pa, pb],
      ['B', pb, pa],
    ] as const) {
      const s = side[name];
      const otherName = name === 'A' ? 'B' : 'A';
      const timeline = await eventually(
        `${name} timeline has the order`,
        async () => {
          const r = await call(s.token, 'GET', `/v1/profiles/${own.id}/timeline?limit=500`);
          return JSON.stringify(r.body).includes(ORDER) ? JSON.stringify(r.body) : undefined;
        },
        60_000,
      );
      // the same message ids in both: told apart by the order's revenue (A 100, B 7)
      const revenue = { A: '"revenue":100', B: '"revenue":7' };
      expect(timeline).toContain(revenue[name]);
      expect(timeline).not.toContain(revenue[otherName]);
      expect(timeline).not.toContain(other.id);
      const exported = await send(s.token, 'GET', `/v1/profiles/${own.id}/export`);
      expect(exported.status).toBe(200);
      expect(exported.text).toContain(camp[name]);
      expect(exported.text).toContain(`${name.toLowerCase()}@${name.toLowerCase()}.test`);
      expect(exported.text).not.toContain(camp[otherName]);
      expect(exported.text).not.toContain(`${otherName.toLowerCase()}@${otherName.toLowerCase()}.test`);
      expect(exported.text).not.toContain(other.id);
    }

    // exports (a data team's CSV of events and of a BI view): A's rows only; B cannot read A's job
    const exportJob = async (s: Side, source: Record<string, unknown>) => {
      const r = await call(s.token, 'POST', '/v1/exports', { format: 'csv', ...source });
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      const id = r.body.id as string;
      await eventually(
        `export ${id} done`,
        async () => {
          const j = await call(s.token, 'GET', `/v1/exports/${id}`);
          if (j.body.status === 'failed') throw new Error(`export failed: ${JSON.stringify(j.body)}`);
          return j.body.status === 'done';
        },
        90_000,
      );
      const file = await send(s.token, 'GET', `/v1/exports/${id}/file`);
      expect(file.status).toBe(200);
      return { id, text: file.text };
    };
    const events = await exportJob(side.A, { events: { ...range, events: [SIGNUP, ORDER] } });
    const lines = events.text.trim().split(/\r?\n/);
    expect(lines.length - 1).toBe(3); // A's two sign-ups and its order, under a header
    expect(events.text).toContain(camp.A);
    expect(events.text).not.toContain(camp.B);
    expect(events.text).not.toContain(side.B.ws);
    const view = await exportJob(side.A, { table: { name: 'bi_touchpoints' } });
    expect(view.text).toContain(camp.A);
    expect(view.text).not.toContain(camp.B);
    expect(view.text).not.toContain(side.B.ws);
    expect((await call(side.B.token, 'GET', `/v1/exports/${events.id}`)).status).toBe(404);
    expect((await send(side.B.token, 'GET', `/v1/exports/${events.id}/file`)).status).toBe(404);
    expect((await call(side.B.token, 'DELETE', `/v1/exports/${events.id}`)).status).toBe(404);
    expect((await call(side.A.token, 'GET', `/v1/exports/${events.id}`)).body.status).toBe('done');

    // imports into A: the same user id and B's email, in A; B's people are untouched
    const csv = `userId,email,tier\r\n${USER},,gold-${mark}\r\n,b@b.test,hijack-${mark}\r\n`;
    const imp = await send(side.A.token, 'POST', '/v1/imports?kind=traits', csv, 'text/csv');
    expect(imp.status, imp.text).toBe(202);
    const importId = JSON.parse(imp.text).id as string;
    const job = await eventually(
      'A import done',
      async () => {
        const j = await call(side.A.token, 'GET', `/v1/imports/${importId}`);
        return j.body.status === 'done' ? j.body : undefined;
      },
      90_000,
    );
    expect([job.rowsAccepted, job.rowsRejected]).toEqual([2, 0]);
    expect((await call(side.B.token, 'GET', `/v1/imports/${importId}`)).status).toBe(404);
    expect((await call(side.B.token, 'GET', `/v1/imports/${importId}/errors`)).status).toBe(404);
    expect(
      ((await call(side.B.token, 'GET', '/v1/imports')).body.items ?? []).map((i: { id: string }) => i.id),
    ).not.toContain(importId);
    await eventually(
      'A person has the imported tier',
      async () =>
        (await call(side.A.token, 'GET', `/v1/profiles/${pa.id}`)).body.traits?.tier === `gold-${mark}`,
      60_000,
    );
    // b@b.test in A's file is a new person of A, never B's person
    const hijack = await eventually(
      "A's own b@b.test",
      async () => {
        const r = await call(side.A.token, 'GET', '/v1/profiles?email=b%40b.test');
        return r.status === 200 ? r.body : undefined;
      },
      60_000,
    );
    expect(hijack.id).not.toBe(pb.id);
    expect(hijack.traits.tier).toBe(`hijack-${mark}`);
    const bNow = (await call(side.B.token, 'GET', `/v1/profiles/${pb.id}`)).body;
    expect(bNow.traits.tier).toBeUndefined();
    expect(bNow.traits.email).toBe('b@b.test');
    expect(bNow.traits.plan).toBe('pro');

    // BI SQL: A's credential sees only A, whatever it tries
    await eventually(
      'BI A has the touchpoints',
      async () =>
        Number(
          (await bi(side.A, `SELECT count() AS n FROM bi_touchpoints WHERE event = '${SIGNUP}'`))[0]?.n,
        ) === 2,
      60_000,
    );
    const onlyA = [
      'SELECT DISTINCT workspace_id AS w FROM bi_events',
      'SELECT DISTINCT workspace_id AS w FROM default.bi_touchpoints',
      'SELECT workspace_id AS w FROM bi_events UNION DISTINCT SELECT workspace_id FROM bi_identities',
      `SELECT DISTINCT e.workspace_id AS w FROM bi_events AS e JOIN bi_conversions AS c ON c.message_id = e.message_id`,
      `SELECT DISTINCT workspace_id AS w FROM bi_events WHERE message_id IN (SELECT message_id FROM bi_events WHERE workspace_id = '${side.B.ws}') OR 1`,
      'SELECT DISTINCT workspace_id AS w FROM (SELECT * FROM bi_segment_membership) UNION DISTINCT SELECT workspace_id FROM bi_sends UNION DISTINCT SELECT workspace_id FROM bi_audit',
    ];
    for (const q of onlyA) {
      const rows = await bi(side.A, q);
      expect(rows.length, q).toBeGreaterThan(0);
      for (const r of rows) expect(r.w, q).toBe(side.A.ws);
    }
    // naming B's id finds nothing, as a literal or a bound parameter
    expect(
      await bi(side.A, `SELECT count() AS n FROM bi_events WHERE workspace_id = '${side.B.ws}'`),
    ).toEqual([{ n: 0 }]);
    const bound = await biRaw(
      side.A,
      'SELECT count() AS n FROM bi_events WHERE workspace_id = {w:String}',
      `&param_w=${side.B.ws}`,
    );
    expect(bound.status, bound.text).toBe(200);
    expect(Number(JSON.parse(bound.text).n)).toBe(0);
    // B's attributed revenue of 7 is nowhere in A's conversions
    expect(
      await bi(side.A, `SELECT count() AS n FROM bi_conversions WHERE event = '${ORDER}' AND revenue = 7`),
    ).toEqual([{ n: 0 }]);
    // the raw tables, system tables beyond metadata, table functions and settings are refused
    const hostile = [
      'SELECT * FROM events',
      'SELECT * FROM default.events',
      `SELECT * FROM events WHERE workspace_id = '${side.B.ws}'`,
      'SELECT * FROM system.parts',
      'SELECT query FROM system.query_log',
      'SELECT * FROM system.processes',
      "SELECT * FROM merge(currentDatabase(), '^events$')",
      "SELECT * FROM merge('^bi_events$')",
      "SELECT * FROM remote('127.0.0.1', default.events)",
      "SELECT * FROM clusterAllReplicas('default', default.events)",
      'SELECT * FROM view(SELECT * FROM events)',
      "SELECT * FROM file('*.bin')",
      `SELECT * FROM url('http://127.0.0.1:${cfg.bi!.port}/?query=SELECT+1', CSV)`,
      "SELECT count() FROM bi_events SETTINGS additional_table_filters = {'bi_events': '1'}",
      'SELECT count() FROM bi_events; SELECT count() FROM events',
      'INSERT INTO events SELECT * FROM events',
      'ALTER TABLE events DELETE WHERE 1',
      "SELECT dictGet('x', 'y', 1)",
      "SELECT joinGet('events', 'event', 'x')",
    ];
    for (const q of hostile) {
      const r = await biRaw(side.A, q);
      // refused as ClickHouse refuses (4xx with its error code), never run and never a 500
      expect(r.status, `${q}: ${r.text}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `${q}: ${r.text}`).toBeLessThan(500);
      expect(r.text, q).toMatch(/^Code: \d+\. DB::Exception/);
      expect(r.text).not.toContain(camp.B);
      expect(r.text).not.toContain('b@b.test');
    }
    // metadata lists the BI views only
    const tables = (await bi(side.A, 'SELECT name FROM system.tables')).map((r) => String(r.name));
    expect(tables.length).toBeGreaterThan(0);
    for (const t of tables) expect(t).toMatch(/^bi_/);
    // and B's credential, the same statements, B's rows only
    for (const r of await bi(side.B, onlyA[0]!)) expect(r.w).toBe(side.B.ws);
    expect(
      await bi(side.B, `SELECT campaign_name AS t FROM bi_touchpoints WHERE event = '${SIGNUP}'`),
    ).toEqual([{ t: camp.B }]);
  });

  it('erasure in A leaves B whole; archiving B stops its key, people, BI, imports and warehouse export, A runs on; un-archiving brings B back', async () => {
    const pa = (await call(side.A.token, 'GET', `/v1/profiles?userId=${USER}`)).body;
    const pb = (await call(side.B.token, 'GET', `/v1/profiles?userId=${USER}`)).body;
    expect(pa.id && pb.id).toBeTruthy();
    // B cannot erase A's person by id
    expect((await call(side.B.token, 'DELETE', `/v1/profiles/${pa.id}`)).status).toBe(404);
    const erased = await call(side.A.token, 'DELETE', `/v1/profiles/${pa.id}`);
    expect(erased.status, JSON.stringify(erased.body)).toBeLessThan(300);
    await eventually(
      'A profile gone',
      async () => (await call(side.A.token, 'GET', `/v1/profiles?userId=${USER}`)).status === 404,
      60_000,
    );
    await eventually(
      'A BI rows gone',
      async () =>
        Number((await bi(side.A, `SELECT count() AS n FROM bi_events WHERE user_id = '${USER}'`))[0]?.n) ===
        0,
      90_000,
    );
    // B's person, segment and history are untouched
    const still = await call(side.B.token, 'GET', `/v1/profiles?userId=${USER}`);
    expect(still.status).toBe(200);
    expect(still.body.id).toBe(pb.id);
    expect(still.body.segments).toContain(side.B.segmentId);
    expect(
      Number(
        (
          await bi(
            side.B,
            `SELECT count() AS n FROM bi_events WHERE user_id = '${USER}' OR anonymous_id = '${ANON}'`,
          )
        )[0]?.n,
      ),
    ).toBeGreaterThan(0);
    // the audit logs: A's erasure is in A's only, named by A's owner
    const auditA = await eventually(
      'A erase audited',
      async () => {
        const r = await call(side.A.token, 'GET', `/v1/audit?action=erase`);
        return r.body.items?.length ? r.body.items : undefined;
      },
      30_000,
    );
    expect(auditA[0].actor).toMatch(/^person:p_[0-9a-f]+ owner-a-/);
    expect((await call(side.B.token, 'GET', '/v1/audit?action=erase')).body.items).toEqual([]);

    // B runs a warehouse export, and a large import is under way when B is archived
    const warehouse = running.services.find((x) => x.name === 'warehouse') as RunningWarehouse;
    const lake = await call(side.B.token, 'POST', '/v1/warehouse-exports', {
      name: 'lake',
      datasets: ['events'],
      target: { kind: 'directory', path: 'lake' },
      flushMs: 500,
    });
    expect(lake.status, JSON.stringify(lake.body)).toBe(201);
    const lakeA = await call(side.A.token, 'POST', '/v1/warehouse-exports', {
      name: 'lake',
      datasets: ['events'],
      target: { kind: 'directory', path: 'lake' },
      flushMs: 500,
    });
    expect(lakeA.status, JSON.stringify(lakeA.body)).toBe(201);
    await eventually('B warehouse export running', async () => !!warehouse.exporter(lake.body.id), 30_000);
    await eventually('A warehouse export running', async () => !!warehouse.exporter(lakeA.body.id), 30_000);
    // each export reads the topics from the start: its Parquet files hold its own workspace's
    // events only (A's erased person's are dropped; A's second person's sign-up is there), told
    // apart by their campaign (camp-A / camp-B); the message ids were the same in both
    const root = warehouseOptions(cfg.dataDir).root;
    for (const [name, own, other] of [
      ['A', 'camp-A-', 'camp-B-'],
      ['B', 'camp-B-', 'camp-A-'],
    ] as const) {
      const rows = await eventually(
        `${name} warehouse files have the sign-up`,
        async () => {
          const r = await parquetRows(directoryOf(root, side[name].ws, 'lake'));
          return r.some((x) => x.context.includes(own)) ? r : undefined;
        },
        60_000,
      );
      expect(new Set(rows.map((x) => x.workspace_id))).toEqual(new Set([side[name].ws]));
      expect(rows.filter((x) => x.context.includes(other))).toEqual([]);
      // B's identify (plan free) is not in A's files, A's email not in B's (A's own import of
      // b@b.test is A's row)
      expect(rows.filter((x) => x.traits.includes(name === 'A' ? '"plan":"free"' : 'a@a.test'))).toEqual([]);
    }
    const ROWS = 60_000;
    let big = 'userId,tier\n';
    for (let i = 0; i < ROWS; i++) big += `bulk-${i},t${i}\n`;
    const bulk = await send(side.B.token, 'POST', '/v1/imports?kind=traits', big, 'text/csv');
    expect(bulk.status, bulk.text).toBe(202);
    const bulkId = JSON.parse(bulk.text).id as string;

    // archive B: its write key is refused at ingest, its owner's token too; A keeps working
    expect((await call(side.B.token, 'POST', `/v1/workspaces/${side.B.ws}/archive`)).status).toBe(200);
    const admin = cfg.keys.adminKey;
    // the import under way stops before its next batch, saying why
    const stopped = await eventually(
      'B import stopped',
      async () => {
        const j = await call(admin, 'GET', `/v1/imports/${bulkId}`, undefined, side.B.ws);
        return j.body.status === 'processing' ? undefined : j.body;
      },
      60_000,
    );
    expect(stopped.status).toBe('failed');
    expect(stopped.error).toContain(`workspace ${side.B.ws} was archived`);
    expect(stopped.rowsRead).toBeLessThan(ROWS);
    // no new import, even with the admin key (which still reads the archived data)
    const late = await fetch(`${running.urls.query}/v1/imports?kind=traits`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'x-workspace': side.B.ws, 'content-type': 'text/csv' },
      body: 'userId,tier\nlate,x\n',
    });
    expect(late.status).toBe(409);
    expect(((await late.json()) as { error: string }).error).toContain('is archived: it takes no imports');
    // B's warehouse export stops; A's runs on
    await eventually('B warehouse export stopped', async () => !warehouse.exporter(lake.body.id), 30_000);
    expect(warehouse.exporter(lakeA.body.id)).toBeDefined();
    await eventually(
      'B write key refused',
      async () => (await ingest(side.B.writeKey, '/v1/track', { userId: USER, event: EVENT })).status === 401,
      30_000,
    );
    expect((await call(side.B.token, 'GET', '/v1/segments')).status).toBe(403);
    // B's BI credential is refused, saying why; A's reads on
    const refused = await biRaw(side.B, 'SELECT count() AS n FROM bi_events');
    expect(refused.status).toBe(403);
    expect(refused.text).toContain(`workspace ${side.B.ws} is archived`);
    expect(refused.text).not.toContain('b@b.test');
    expect((await bi(side.A, 'SELECT count() AS n FROM bi_events')).length).toBe(1);
    expect((await ingest(side.A.writeKey, '/v1/track', { userId: 'after', event: EVENT })).status).toBe(200);
    expect((await call(side.A.token, 'GET', '/v1/segments')).status).toBe(200);

    // un-archived by the admin key: B's key, token, BI credential and warehouse export work again
    expect((await call(side.B.token, 'POST', `/v1/workspaces/${side.B.ws}/unarchive`)).status).toBe(403);
    const back = await call(admin, 'POST', `/v1/workspaces/${side.B.ws}/unarchive`);
    expect(back.status, JSON.stringify(back.body)).toBe(200);
    expect(back.body.archivedAt).toBeNull();
    await eventually(
      'B write key accepted again',
      async () => (await ingest(side.B.writeKey, '/v1/track', { userId: USER, event: EVENT })).status === 200,
      30_000,
    );
    expect((await call(side.B.token, 'GET', '/v1/segments')).status).toBe(200);
    expect((await bi(side.B, 'SELECT count() AS n FROM bi_events')).length).toBe(1);
    await eventually(
      'B warehouse export running again',
      async () => !!warehouse.exporter(lake.body.id),
      30_000,
    );
  });
});
