// The destinations API on the real Redis and chDB: create, read, version, pause, delete,
// audited with the secret redacted; a dry-run maps a sample and sends nothing; hostile
// definitions are 400s naming the field (prototype paths, huge or broken Liquid, internal
// addresses, oversized batches, unknown filter operators), a mapping that blows its
// render limits (a field's, or the one budget all of an event's fields share) is a 422 at dry-run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueryApp } from '../../query/app.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { WriteKeyStore } from '../../runtime/write-keys.ts';
import { migrate } from '../../schemas/migrations.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let clients: Clients;
let ch: ClickHouseClient;
/** Loopback allowed (local development), as the destinations' receivers need. */
let devApp: ReturnType<typeof createQueryApp>;
/** The production default: loopback and private addresses refused. */
let prodApp: ReturnType<typeof createQueryApp>;

const call =
  (which: () => ReturnType<typeof createQueryApp>) =>
  async (method: string, path: string, body?: unknown) => {
    const res = await which().request(path, {
      method,
      headers: { authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, any> };
  };
const api = call(() => devApp);
const prodApi = call(() => prodApp);

const valid = (over: Record<string, unknown> = {}) => ({
  name: 'warehouse',
  type: 'http',
  source: { kind: 'events', filter: { '==': [{ var: 'event' }, 'Order Completed'] } },
  mapping: {
    orderId: 'properties.orderId',
    'customer.id': 'userId',
    'customer.email': 'context.traits.email',
    currency: { const: 'EUR' },
    title: { liquid: '{{ event | upcase }} for {{ properties.total }}' },
  },
  http: { url: 'https://hooks.example.com/cdp', batch: { maxEvents: 50, maxWaitMs: 500 }, timeoutMs: 5000 },
  rateLimit: { perSecond: 20 },
  ...over,
});

beforeAll(async () => {
  cfg = testConfig();
  const log = testLogger(cfg);
  clients = createClients(cfg, log);
  ch = await clients.clickhouse();
  await migrate(ch);
  const deps = {
    redis: clients.redis(),
    clickhouse: ch,
    defs: new DefinitionStore(clients.redis(), cfg.redis.prefix),
    writeKeys: new WriteKeyStore(clients.redis(), cfg.redis.prefix),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k: string) => (k === cfg.keys.adminKey ? cfg.keys.workspace : undefined),
    unsubscribeSecret: cfg.unsubscribe.secret,
    log,
    now: () => new Date(),
  };
  devApp = createQueryApp({
    ...deps,
    destinationAddressPolicy: { allowLoopback: true, allowPrivate: false },
  });
  prodApp = createQueryApp(deps);
}, 60_000);

afterAll(async () => {
  await clients?.close();
});

describe('destinations API', () => {
  it('creates, versions, pauses and deletes a destination, audited with the secret redacted', async () => {
    const created = await api('POST', '/v1/destinations', valid());
    expect(created.status).toBe(201);
    const d = created.body;
    expect(d).toMatchObject({
      id: expect.stringMatching(/^dst_/),
      version: 1,
      status: 'active',
      type: 'http',
    });
    // generated, so shown in this one answer; GET shows only that there is one
    expect(d.http.secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    const { secret: _shown, ...httpShown } = d.http;
    expect((await api('GET', `/v1/destinations/${d.id}`)).body).toEqual({ ...d, http: httpShown });
    expect(httpShown.secretSet).toBe(true);
    expect(
      (await api('GET', '/v1/destinations')).body.destinations.map((x: { id: string }) => x.id),
    ).toContain(d.id);

    // an update is a new version; the secret is kept when not given
    const updated = await api('PUT', `/v1/destinations/${d.id}`, valid({ name: 'warehouse v2' }));
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ version: 2, name: 'warehouse v2', createdAt: d.createdAt });
    expect(updated.body.http.secret).toBeUndefined();
    const stored = await new DefinitionStore(clients.redis(), cfg.redis.prefix).get(
      'destinations',
      cfg.keys.workspace,
      d.id,
    );
    expect(stored?.http.secret).toBe(d.http.secret);
    const paused = await api('POST', `/v1/destinations/${d.id}/pause`);
    expect(paused.body).toMatchObject({ status: 'paused', version: 3 });
    expect((await api('POST', `/v1/destinations/${d.id}/resume`)).body).toMatchObject({
      status: 'active',
      version: 4,
    });

    const audit = await eventually('audit rows', async () => {
      const res = await api('GET', `/v1/audit?entityType=destination&entityId=${d.id}`);
      return res.body.items?.length >= 4 ? (res.body.items as Array<Record<string, string>>) : undefined;
    });
    expect(audit.map((a) => a.action).sort()).toEqual(['create', 'update', 'update', 'update']);
    for (const a of audit) expect(JSON.stringify(a)).not.toContain(d.http.secret);

    expect((await api('DELETE', `/v1/destinations/${d.id}`)).status).toBe(204);
    expect((await api('GET', `/v1/destinations/${d.id}`)).status).toBe(404);
  });

  it('dry-runs a sample through the filter and mapping, sending nothing', async () => {
    const receiver = await startWebhookReceiver();
    try {
      const http = { url: receiver.url, batch: { maxEvents: 50, maxWaitMs: 500 } };
      const d = (await api('POST', '/v1/destinations', valid({ http }))).body;
      const event = {
        type: 'track',
        event: 'Order Completed',
        messageId: 'm-1',
        userId: 'u-1',
        timestamp: '2026-12-01T10:00:00.000Z',
        properties: { orderId: 'o-9', total: 42.5 },
        context: { traits: { email: 'ann@example.com' } },
      };
      const run = await api('POST', `/v1/destinations/${d.id}/dry-run`, { event });
      expect(run.status).toBe(200);
      expect(run.body).toEqual({
        matched: true,
        payload: {
          batch: [
            {
              id: 'm-1',
              type: 'event',
              timestamp: '2026-12-01T10:00:00.000Z',
              data: {
                orderId: 'o-9',
                customer: { id: 'u-1', email: 'ann@example.com' },
                currency: 'EUR',
                title: 'ORDER COMPLETED for 42.5',
              },
            },
          ],
        },
      });
      const other = await api('POST', `/v1/destinations/${d.id}/dry-run`, {
        event: { ...event, event: 'Viewed' },
      });
      expect(other.body.matched).toBe(false);
      // a template that runs past its limits is the mapping's error, not a crash
      await api(
        'PUT',
        `/v1/destinations/${d.id}`,
        valid({
          http,
          mapping: { blob: { liquid: '{% for i in (1..100000000) %}xxxxxxxxxx{% endfor %}' } },
        }),
      );
      const blown = await api('POST', `/v1/destinations/${d.id}/dry-run`, { event });
      expect(blown.status).toBe(422);
      expect(blown.body.error).toMatch(/^mapping\.blob: /);
      expect((await api('POST', `/v1/destinations/${d.id}/dry-run`, { event: 'nope' })).status).toBe(400);
      await new Promise((r) => setTimeout(r, 300));
      expect(receiver.deliveries).toHaveLength(0);
    } finally {
      await receiver.close();
    }
  });

  it('stops a dry-run of 100 slow Liquid fields at one render budget: a 422 naming the field', async () => {
    // a million iterations a field, little memory: each alone would run to its render limit
    const slow =
      '{% for i in (1..1000) %}{% for j in (1..1000) %}{% assign x = j | plus: 1 | times: 2 | minus: 3 %}{% endfor %}{% endfor %}';
    const mapping: Record<string, unknown> = { user: 'userId', greeting: { liquid: 'Hi {{ userId }}' } };
    for (let i = 0; i < 98; i++) mapping[`slow${i}`] = { liquid: slow };
    const created = await api('POST', '/v1/destinations', valid({ mapping }));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const started = performance.now();
    const run = await api('POST', `/v1/destinations/${created.body.id}/dry-run`, {
      event: { type: 'track', event: 'Order Completed', userId: 'u-1' },
    });
    const took = performance.now() - started;
    expect(run.status).toBe(422);
    expect(run.body).toEqual({
      matched: true,
      error: expect.stringMatching(/^mapping\.slow\d+: over the Liquid render time limit \(.*250 ms for all/),
    });
    // 98 render limits would be ~20 s; one budget is 250 ms (slack for a loaded machine)
    expect(took).toBeLessThan(2000);
  });

  it('refuses hostile definitions with a 400 naming the field', async () => {
    const refused = async (body: unknown, pattern: RegExp, which = api) => {
      const res = await which('POST', '/v1/destinations', body);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error).toMatch(pattern);
    };
    // prototype pollution through output names or source paths (also as raw JSON, where
    // "__proto__" is an own key)
    await refused(
      valid({ mapping: { '__proto__.polluted': 'userId' } }),
      /mapping\.__proto__\.polluted: "__proto__"/,
    );
    await refused(
      valid({ mapping: { 'a.constructor.prototype': { const: 1 } } }),
      /"constructor" is not allowed/,
    );
    await refused(valid({ mapping: { x: '__proto__.toString' } }), /mapping\.x: "__proto__" is not allowed/);
    const raw = JSON.stringify(valid()).replace('"orderId":', '"__proto__":');
    await refused(raw, /"__proto__" is not allowed/);
    await refused(
      valid({ source: { kind: 'events', filter: { '==': [{ var: 'constructor.name' }, 'Object'] } } }),
      /source\.filter: "constructor"/,
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // Liquid: too long, broken
    await refused(
      valid({ mapping: { t: { liquid: `{{ event }}${'x'.repeat(10_001)}` } } }),
      /mapping\/t|mapping\.t/,
    );
    await refused(valid({ mapping: { t: { liquid: '{{ event ' } } }), /mapping\.t: invalid Liquid template/);
    // too many fields, conflicting fields, path segments
    const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`f${i}`, 'userId']));
    await refused(valid({ mapping: many }), /mapping: at most 100 fields/);
    await refused(valid({ mapping: { a: 'userId', 'a.b': 'event' } }), /mapping\.a\.b: conflicts with a/);
    await refused(valid({ mapping: { a: 'properties..x' } }), /not a valid path segment/);
    // addresses: cloud metadata and private always, loopback outside local development
    await refused(
      valid({ http: { url: 'http://169.254.169.254/latest/meta-data' } }),
      /destination refused: private/,
    );
    await refused(valid({ http: { url: 'http://[::ffff:169.254.169.254]/' } }), /destination refused/);
    await refused(valid({ http: { url: 'http://10.1.2.3/hook' } }), /destination refused/);
    await refused(
      valid({ http: { url: 'http://127.0.0.1:8080/hook' } }),
      /destination refused: loopback/,
      prodApi,
    );
    expect(
      (await api('POST', '/v1/destinations', valid({ http: { url: 'http://127.0.0.1:8080/hook' } }))).status,
    ).toBe(201);
    await refused(valid({ http: { url: 'file:///etc/passwd' } }), /http\.url: must be http or https/);
    await refused(valid({ http: { url: 'https://user:pw@example.com/' } }), /credentials in the URL/);
    // batches and limits
    await refused(
      valid({ http: { url: 'https://x.example.com', batch: { maxEvents: 10_000 } } }),
      /http\/batch\/maxEvents|http\.batch\.maxEvents/,
    );
    await refused(valid({ http: { url: 'https://x.example.com', timeoutMs: 600_000 } }), /timeoutMs/);
    await refused(valid({ rateLimit: { perSecond: 0 } }), /rateLimit\.perSecond/);
    // filters: only JSON Logic's own operators, bounded depth
    await refused(valid({ source: { kind: 'events', filter: { eval: ['1'] } } }), /unknown operator "eval"/);
    let deep: unknown = { var: 'event' };
    for (let i = 0; i < 30; i++) deep = { '!': [deep] };
    await refused(valid({ source: { kind: 'events', filter: deep } }), /nested deeper than 20/);
    await refused(valid({ type: 'kafka' }), /^type: /);
    await refused('{"name":', /malformed JSON/);
  });
});
