// Two workspaces side by side on the whole stack (`cdp start` services: ingest, processor,
// history, query with the BI endpoint; real Kafka, Redis, chDB): the same user id, anonymous id
// and event name in both, each workspace acting with its own owner's token and write key.
// Identity, profiles, segments, campaigns (a webhook per workspace), history, analytics, the BI
// endpoint and erasure each see only their own workspace; erasing in A leaves B whole; archiving B stops B's write key at ingest
// and B's people, and leaves A running.
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
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

  it('erasure in A leaves B whole; archiving B stops its key and people, A runs on', async () => {
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

    // archive B: its write key is refused at ingest, its owner's token too; A keeps working
    expect((await call(side.B.token, 'POST', `/v1/workspaces/${side.B.ws}/archive`)).status).toBe(200);
    await eventually(
      'B write key refused',
      async () => (await ingest(side.B.writeKey, '/v1/track', { userId: USER, event: EVENT })).status === 401,
      30_000,
    );
    expect((await call(side.B.token, 'GET', '/v1/segments')).status).toBe(403);
    expect((await ingest(side.A.writeKey, '/v1/track', { userId: 'after', event: EVENT })).status).toBe(200);
    expect((await call(side.A.token, 'GET', '/v1/segments')).status).toBe(200);
  });
});
