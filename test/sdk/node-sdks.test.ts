// Real server-side SDKs, unchanged, against the real ingest service: @segment/analytics-node
// and @rudderstack/rudder-sdk-node configured with nothing but our host and the write key
// (plus flush settings so the test is fast). Every call type must arrive in Kafka with the
// fields exactly as the SDK put them on the wire, under the messageId the SDK generated.
//
// How they reach us (read from their sources in node_modules):
// - analytics-node: POST {host}/v1/batch, `Authorization: Basic base64(writeKey:)`,
//   application/json `{ batch, writeKey, sentAt }`; each event carries `timestamp`.
// - rudder-sdk-node: POST {dataPlaneUrl}/v1/batch through axios with `auth.username = writeKey`
//   (Basic), gzip by default (`Content-Encoding: gzip`), `{ batch, timestamp, sentAt }`; each
//   event carries `originalTimestamp`, `sentAt`, `channel`, `_metadata`.
import { gunzipSync } from 'node:zlib';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';
import { Analytics } from '@segment/analytics-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, readTopic, testConfig, testLogger } from '../harness.ts';

type Json = Record<string, unknown>;
interface KafkaEvent {
  key: string;
  value: Json;
}

let cfg: Config;
let running: RunningServices;
let ingestUrl: string;
let reader: { seen: KafkaEvent[]; stop(): Promise<void> };

/** Every message on this suite's events topic, from the beginning. */
const readEvents = (c: Config): Promise<typeof reader> =>
  readTopic<Json>(
    c.kafka.brokers,
    topics(c.kafka.topicPrefix).events,
    `${c.kafka.topicPrefix}-sdk-verify`,
  ) as Promise<typeof reader>;

/** Waits until every sent event is in Kafka; returns them by messageId. */
async function arrived(sent: Json[]): Promise<Map<string, KafkaEvent>> {
  const ids = sent.map((e) => String(e.messageId));
  return eventually(`${ids.length} events in Kafka`, () => {
    const byId = new Map(reader.seen.map((m) => [String(m.value.messageId), m]));
    return ids.every((id) => byId.has(id)) ? byId : undefined;
  });
}

/** The envelope in Kafka carries the wire event's fields unchanged. */
function expectIntact(sent: Json, got: KafkaEvent) {
  const v = got.value;
  expect(got.key).toBe(`${cfg.keys.workspace}:${String(sent.userId ?? sent.anonymousId)}`);
  expect(v.workspaceId).toBe(cfg.keys.workspace);
  expect(v.type).toBe(sent.type);
  expect(v.messageId).toBe(sent.messageId);
  expect(v.userId).toBe(sent.userId ?? null);
  expect(v.anonymousId).toBe(sent.anonymousId ?? null);
  // a page/screen's top-level category is kept in properties (as Segment does), unless set there
  const props = (sent.properties ?? {}) as Json;
  const category =
    (sent.type === 'page' || sent.type === 'screen') &&
    typeof sent.category === 'string' &&
    props.category === undefined
      ? { category: sent.category }
      : {};
  expect(v.properties).toEqual({ ...props, ...category });
  expect(v.traits).toEqual(sent.traits ?? {});
  expect(v.integrations).toEqual(sent.integrations ?? {});
  // ingest adds the client ip; everything the SDK sent stays as it was
  expect(v.context).toEqual({ ...(sent.context as Json), ip: expect.any(String) });
  for (const f of ['event', 'name', 'groupId', 'previousId'] as const) expect(v[f]).toBe(sent[f]);
  if (sent.timestamp) expect(v.timestamp).toBe(new Date(String(sent.timestamp)).toISOString());
  if (sent.originalTimestamp)
    expect(v.originalTimestamp).toBe(new Date(String(sent.originalTimestamp)).toISOString());
}

/** The values each test passes to the SDK, and what must come out for each call type. */
function expectCalls(byType: Map<string, KafkaEvent>, p: string, library: string) {
  const ev = (t: string) => byType.get(t)!.value;
  expect(ev('identify')).toMatchObject({
    userId: `${p}-user-1`,
    anonymousId: `${p}-anon-1`,
    traits: { plan: 'pro', email: 'ada@example.com', address: { city: 'Berlin' } },
  });
  expect(ev('track')).toMatchObject({
    userId: `${p}-user-1`,
    event: 'Order Completed',
    properties: { revenue: 42.5, currency: 'EUR', products: [{ sku: 'a-1', quantity: 2 }] },
  });
  expect(ev('page')).toMatchObject({
    anonymousId: `${p}-anon-1`,
    userId: null,
    name: 'Pricing',
    properties: { path: '/pricing' },
  });
  expect(ev('screen')).toMatchObject({ userId: `${p}-user-1`, name: 'Home', properties: { variant: 'b' } });
  expect(ev('group')).toMatchObject({
    userId: `${p}-user-1`,
    groupId: `${p}-org-1`,
    traits: { name: 'Acme', employees: 42 },
  });
  expect(ev('alias')).toMatchObject({ userId: `${p}-user-1`, previousId: `${p}-anon-1` });
  for (const [, m] of byType) expect((m.value.context as Json).library).toMatchObject({ name: library });
}

beforeAll(async () => {
  cfg = testConfig();
  running = await startServices(cfg, ['ingest'], testLogger(cfg));
  ingestUrl = running.urls.ingest!;
  reader = await readEvents(cfg);
});

afterAll(async () => {
  await reader?.stop();
  await running?.stop();
});

describe('real Node SDKs against the ingest host', () => {
  it('@segment/analytics-node: identify, track, page, screen, group and alias arrive intact', async () => {
    const analytics = new Analytics({
      writeKey: cfg.keys.writeKey,
      host: ingestUrl,
      flushAt: 6,
      flushInterval: 100,
    });
    const wire: Json[] = [];
    const statuses: number[] = [];
    const errors: unknown[] = [];
    const requests: Array<{ url: string; auth: string | undefined }> = [];
    analytics.on('http_request', (r) => {
      requests.push({ url: r.url, auth: r.headers.Authorization });
      wire.push(...(JSON.parse(r.body) as { batch: Json[] }).batch);
    });
    analytics.on('http_response', (r) => statuses.push(r.status));
    analytics.on('error', (err) => errors.push(err));
    const delivered: Array<Promise<unknown>> = [];
    const cb = () => {
      let done!: (err: unknown) => void;
      delivered.push(new Promise((r) => (done = r)));
      return (err: unknown) => done(err);
    };

    analytics.identify(
      {
        userId: 'seg-user-1',
        anonymousId: 'seg-anon-1',
        traits: { plan: 'pro', email: 'ada@example.com', address: { city: 'Berlin' } },
      },
      cb(),
    );
    analytics.track(
      {
        userId: 'seg-user-1',
        event: 'Order Completed',
        properties: { revenue: 42.5, currency: 'EUR', products: [{ sku: 'a-1', quantity: 2 }] },
      },
      cb(),
    );
    analytics.page(
      { anonymousId: 'seg-anon-1', category: 'Docs', name: 'Pricing', properties: { path: '/pricing' } },
      cb(),
    );
    analytics.screen({ userId: 'seg-user-1', name: 'Home', properties: { variant: 'b' } }, cb());
    analytics.group(
      { userId: 'seg-user-1', groupId: 'seg-org-1', traits: { name: 'Acme', employees: 42 } },
      cb(),
    );
    analytics.alias({ userId: 'seg-user-1', previousId: 'seg-anon-1' }, cb());
    await analytics.closeAndFlush({ timeout: 20_000 });

    expect(await Promise.all(delivered)).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    expect(errors).toEqual([]);
    expect(requests.length).toBeGreaterThan(0);
    for (const r of requests) {
      expect(r.url).toBe(`${ingestUrl}/v1/batch`);
      expect(r.auth).toBe(`Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`);
    }
    expect(statuses.length).toBe(requests.length);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(wire.map((e) => e.type).sort()).toEqual(['alias', 'group', 'identify', 'page', 'screen', 'track']);

    const byId = await arrived(wire);
    const byType = new Map<string, KafkaEvent>();
    for (const sent of wire) {
      const got = byId.get(String(sent.messageId))!;
      expectIntact(sent, got);
      byType.set(String(sent.type), got);
    }
    expectCalls(byType, 'seg', '@segment/analytics-node');
    // analytics-node copies the page category into its properties
    expect(byType.get('page')!.value.properties).toMatchObject({ category: 'Docs' });
    // analytics-node sends an explicit event time, which ingest keeps as it is
    for (const sent of wire) expect(typeof sent.timestamp).toBe('string');
  });

  it('@rudderstack/rudder-sdk-node: identify, track, page, screen, group and alias arrive intact', async () => {
    const client = new RudderAnalytics(cfg.keys.writeKey, {
      dataPlaneUrl: ingestUrl,
      flushAt: 6,
      flushInterval: 100,
    });
    // Each call's callback gets its outcome and the request body it was sent in
    // (gzip-compressed by default).
    const bodies: unknown[] = [];
    const outcomes: Array<Error | undefined> = [];
    const cb = () => (err?: Error, data?: unknown) => {
      bodies.push(data);
      outcomes.push(err);
    };

    client.identify(
      {
        userId: 'rs-user-1',
        anonymousId: 'rs-anon-1',
        traits: { plan: 'pro', email: 'ada@example.com', address: { city: 'Berlin' } },
      },
      cb(),
    );
    client.track(
      {
        userId: 'rs-user-1',
        event: 'Order Completed',
        properties: { revenue: 42.5, currency: 'EUR', products: [{ sku: 'a-1', quantity: 2 }] },
      },
      cb(),
    );
    client.page(
      { anonymousId: 'rs-anon-1', name: 'Pricing', category: 'Docs', properties: { path: '/pricing' } },
      cb(),
    );
    client.screen({ userId: 'rs-user-1', name: 'Home', properties: { variant: 'b' } }, cb());
    client.group({ userId: 'rs-user-1', groupId: 'rs-org-1', traits: { name: 'Acme', employees: 42 } }, cb());
    client.alias({ userId: 'rs-user-1', previousId: 'rs-anon-1' }, cb());
    // A failed request rejects here and reaches its calls' callbacks; the SDK then keeps
    // the later calls queued, so stop at the first failure instead of waiting for them.
    await client.flush().catch(() => {});
    await eventually(
      'every call answered, or one failed',
      () => outcomes.length === 6 || outcomes.some((e) => e !== undefined),
    );
    expect(outcomes.map((e) => e?.message)).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    // one entry per event; the same request body appears once per event it carried
    const wire = new Map<string, Json>();
    for (const body of bodies) {
      const text = Buffer.isBuffer(body) ? gunzipSync(body).toString('utf8') : JSON.stringify(body);
      for (const e of (JSON.parse(text) as { batch: Json[] }).batch) wire.set(String(e.messageId), e);
    }
    const sent = [...wire.values()];
    expect(sent.map((e) => e.type).sort()).toEqual(['alias', 'group', 'identify', 'page', 'screen', 'track']);

    const byId = await arrived(sent);
    const byType = new Map<string, KafkaEvent>();
    for (const e of sent) {
      const got = byId.get(String(e.messageId))!;
      expectIntact(e, got);
      byType.set(String(e.type), got);
    }
    expectCalls(byType, 'rs', 'analytics-node');
    // rudder copies identify traits into context.traits; both arrive
    expect((byType.get('identify')!.value.context as Json).traits).toMatchObject({ plan: 'pro' });
  });
});
