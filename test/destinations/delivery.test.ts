// How a destination delivers, on the real Kafka and Redis: batches (size, linger, the body
// bound), its rate limit, segment changes as a source, a mapping that fails on one event
// (that one dead-lettered, the others delivered), a receiver's 4xx (dead-lettered at once,
// never retried; a batch refused whole split until only the refused items are), the
// ledger rows on cdp.activation-ledger, and an archived workspace's destination stopped
// until it is un-archived.
import { Kafka, type Producer as KafkaProducer, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDestinations, startDestinations } from '../../destinations/main.ts';
import { DESTINATION_HEADER, webhookIdOf } from '../../destinations/worker.ts';
import { createQueryApp } from '../../query/app.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { Logger } from '../../runtime/log.ts';
import { WriteKeyStore } from '../../runtime/write-keys.ts';
import { destinationGroup, MAX_BODY_BYTES } from '../../schemas/destination.ts';
import { migrate } from '../../schemas/migrations.ts';
import { DLQ_HEADERS, topics } from '../../schemas/topics.ts';
import { change } from '../activation-peers.ts';
import { eventually, readTopic, testConfig, testLogger, uniqueId } from '../harness.ts';
import { produceEvents, receiver } from './peers.ts';

let cfg: Config;
let clients: Clients;
let log: Logger;
let app: ReturnType<typeof createQueryApp>;
let service: RunningDestinations;
let producer: KafkaProducer;
const closers: Array<() => Promise<unknown>> = [];

interface LedgerMsg {
  campaign_id: string;
  send_key: string;
  outcome: string;
  reason: string;
  channel: string;
  segment_id: string;
  profile_id: string;
  epoch: number;
  attempt: number;
  status_code: number;
  provider_id: string;
}
let ledger: Awaited<ReturnType<typeof readTopic<LedgerMsg>>>;
let dlq: Array<{ headers: Record<string, string>; value: string }>;

const api = async (method: string, path: string, body?: unknown) => {
  const res = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
  return { status: res.status, body: (await res.json()) as Record<string, any> };
};

async function create(def: Record<string, unknown>): Promise<string> {
  const res = await api('POST', '/v1/destinations', { name: 'd', type: 'http', ...def });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const id = res.body.id as string;
  await eventually('consuming', () => service.worker(id)?.started.then(() => true), 60_000);
  return id;
}

const produce = (
  event: string,
  users: string[],
  properties: (u: string, i: number) => Record<string, unknown>,
) =>
  produceEvents(
    producer,
    topics(cfg.kafka.topicPrefix).events,
    cfg.keys.workspace,
    users.map((user, i) => ({ user, event, properties: properties(user, i) })),
  );

beforeAll(async () => {
  cfg = testConfig({ CDP_WEBHOOK_ALLOW_LOOPBACK: 'true' });
  log = testLogger(cfg);
  clients = createClients(cfg, log);
  const ch = await clients.clickhouse();
  await migrate(ch);
  const t = topics(cfg.kafka.topicPrefix);
  const admin = clients.kafka().admin();
  await admin.ensureTopics([
    { topic: t.events, partitions: 4 },
    { topic: t.eventsOverflow, partitions: 4 },
    { topic: t.segmentChanges, partitions: 4 },
    { topic: t.activationLedger, partitions: 4 },
    { topic: t.deadLetter, partitions: 1 },
  ]);
  await admin.disconnect();
  app = createQueryApp({
    redis: clients.redis(),
    clickhouse: ch,
    defs: new DefinitionStore(clients.redis(), cfg.redis.prefix),
    writeKeys: new WriteKeyStore(clients.redis(), cfg.redis.prefix),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k) => (k === cfg.keys.adminKey ? cfg.keys.workspace : undefined),
    unsubscribeSecret: cfg.unsubscribe.secret,
    destinationAddressPolicy: { allowLoopback: true, allowPrivate: false },
    log,
    now: () => new Date(),
  });
  service = await startDestinations(cfg, clients, log, { options: { retryPollMs: 100 } });
  producer = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  ledger = await readTopic<LedgerMsg>(cfg.kafka.brokers, t.activationLedger, uniqueId('ledger-read-'));
  dlq = [];
  const consumer = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING }).consumer({
    groupId: uniqueId('dlq-read-'),
  });
  await consumer.connect();
  await consumer.subscribe({ topic: t.deadLetter, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
      dlq.push({ headers, value: message.value?.toString() ?? '' });
    },
  });
  closers.push(() => consumer.disconnect());
}, 120_000);

afterAll(async () => {
  await ledger?.stop();
  for (const c of closers) await c();
  await producer?.disconnect();
  await service?.stop();
  await clients?.close();
});

describe('destination delivery', () => {
  it('batches up to maxEvents, lingers for maxWaitMs, keeps each body under the bound and each person in order', async () => {
    const r = await receiver(200);
    closers.push(r.close);
    const id = await create({
      source: { kind: 'events', filter: { '==': [{ var: 'event' }, 'Batch'] } },
      mapping: { user: 'userId', seq: 'properties.seq', pad: 'properties.pad' },
      http: { url: r.url, batch: { maxEvents: 10, maxWaitMs: 300 } },
    });
    const users = ['b1', 'b2', 'b3'];
    const ids: string[] = [];
    for (let seq = 0; seq < 15; seq++) ids.push(...(await produce('Batch', users, () => ({ seq }))));
    // large items: a batch is cut before its body passes MAX_BODY_BYTES
    const pad = 'p'.repeat(200 * 1024);
    for (let seq = 15; seq < 21; seq++) ids.push(...(await produce('Batch', ['b1'], () => ({ seq, pad }))));
    type Item = { id: string; data: { user: string; seq: number } };
    const items = () => r.arrivals.flatMap((a) => (JSON.parse(a.body) as { batch: Item[] }).batch);
    await eventually(
      'every event delivered',
      () => new Set(items().map((i) => i.id)).size === ids.length,
      30_000,
    );
    expect(new Set(items().map((i) => i.id))).toEqual(new Set(ids));
    for (const a of r.arrivals) {
      const batch = (JSON.parse(a.body) as { batch: Item[] }).batch;
      expect(batch.length).toBeLessThanOrEqual(10);
      expect(Buffer.byteLength(a.body)).toBeLessThanOrEqual(MAX_BODY_BYTES);
      expect(a.id).toBe(
        webhookIdOf(
          id,
          batch.map((i) => i.id),
        ),
      );
    }
    // batching happened (45 small events in far fewer requests), and the big ones were split
    expect(r.arrivals.length).toBeLessThan(ids.length / 2);
    const bigBodies = r.arrivals.filter((a) => a.body.includes('"pad"'));
    expect(bigBodies.length).toBeGreaterThanOrEqual(2);
    for (const u of users) {
      const seqs = items()
        .filter((i) => i.data.user === u)
        .map((i) => i.data.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }
  });

  it('gets the events ingest moved to the hot-key lane too', async () => {
    const r = await receiver(200);
    closers.push(r.close);
    await create({
      source: { kind: 'events', filter: { '==': [{ var: 'event' }, 'Hot'] } },
      mapping: { user: 'userId' },
      http: { url: r.url },
    });
    const t = topics(cfg.kafka.topicPrefix);
    const [calm] = await produceEvents(producer, t.events, cfg.keys.workspace, [
      { user: 'calm', event: 'Hot', properties: {} },
    ]);
    const [hot] = await produceEvents(producer, t.eventsOverflow, cfg.keys.workspace, [
      { user: 'bot', event: 'Hot', properties: {} },
    ]);
    await eventually('both delivered', () => r.arrivals.length >= 2, 30_000);
    expect(new Set(r.arrivals.map((a) => (JSON.parse(a.body) as { id: string }).id))).toEqual(
      new Set([calm, hot]),
    );
  });

  it('keeps to its rate limit', async () => {
    const r = await receiver(200);
    closers.push(r.close);
    await create({
      source: { kind: 'events', filter: { '==': [{ var: 'event' }, 'Rated'] } },
      http: { url: r.url },
      rateLimit: { perSecond: 5 },
    });
    const users = Array.from({ length: 15 }, (_, i) => `r${i}`);
    await produce('Rated', users, () => ({}));
    await eventually('all delivered', () => r.arrivals.length >= 15, 30_000);
    const times = r.arrivals.map((a) => a.at).sort((a, b) => a - b);
    // a burst of 5, then one every 200 ms: 10 more take at least ~2 s
    expect(times[14]! - times[0]!).toBeGreaterThanOrEqual(1800);
    // no second in which more than burst + rate arrived
    for (let i = 0; i + 10 < times.length; i++)
      expect(times[i + 10]! - times[i]!).toBeGreaterThanOrEqual(900);
  });

  it('delivers the segment changes of the chosen segments, with segment, profile and epoch in the ledger', async () => {
    const r = await receiver(200);
    closers.push(r.close);
    const seg = uniqueId('seg_');
    const id = await create({
      source: { kind: 'segment_changes', segmentIds: [seg] },
      mapping: { profile: 'profileId', change: 'type', email: 'traits.email' },
      http: { url: r.url },
    });
    const kafka = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING }).producer();
    await kafka.connect();
    const ws = cfg.keys.workspace;
    const changes = [
      change(ws, seg, 'p1', { email: 'p1@example.com' }),
      change(ws, uniqueId('other_'), 'p2', { email: 'p2@example.com' }),
      change(ws, seg, 'p1', { email: 'p1@example.com' }, 2),
      change(`${ws}-else`, seg, 'p3', {}),
    ];
    await kafka.send({
      topic: topics(cfg.kafka.topicPrefix).segmentChanges,
      acks: -1,
      messages: changes.map((c) => ({ key: `${c.workspaceId}:${c.profileId}`, value: JSON.stringify(c) })),
    });
    await kafka.disconnect();
    await eventually('two changes delivered', () => r.arrivals.length >= 2, 30_000);
    await new Promise((res) => setTimeout(res, 500));
    const bodies = r.arrivals.map((a) => JSON.parse(a.body) as { id: string; type: string; data: unknown });
    expect(bodies.map((b) => b.id)).toEqual([`${seg}:p1:1`, `${seg}:p1:2`]);
    expect(bodies.map((b) => b.type)).toEqual(['segment_change', 'segment_change']);
    expect(bodies.map((b) => b.data)).toEqual([
      { profile: 'p1', change: 'entered', email: 'p1@example.com' },
      { profile: 'p1', change: 'exited', email: 'p1@example.com' },
    ]);
    const rows = await eventually('ledger rows', () => {
      const got = ledger.seen.filter((m) => m.value.campaign_id === id).map((m) => m.value);
      return got.length >= 2 ? got : undefined;
    });
    expect(
      rows.map((x) => [x.outcome, x.channel, x.segment_id, x.profile_id, x.epoch, x.status_code]),
    ).toEqual([
      ['sent', 'destination', seg, 'p1', 1, 200],
      ['sent', 'destination', seg, 'p1', 2, 200],
    ]);
  });

  it('splits a batch the receiver refuses whole (422) until only the refused items are dead-lettered', async () => {
    // a receiver that validates every item: one bad item refuses the whole batch
    const statusOf = (body: string) =>
      (JSON.parse(body) as { batch: Array<{ data: { ok: boolean } }> }).batch.some((i) => !i.data.ok)
        ? 422
        : 200;
    const r = await receiver(statusOf);
    closers.push(r.close);
    const id = await create({
      source: { kind: 'events', filter: { '==': [{ var: 'event' }, 'Split'] } },
      mapping: { seq: 'properties.seq', ok: 'properties.ok' },
      http: { url: r.url, batch: { maxEvents: 50, maxWaitMs: 1000 } },
    });
    const ids: string[] = [];
    for (let seq = 0; seq < 30; seq++)
      ids.push(...(await produce('Split', ['sp1'], () => ({ seq, ok: seq !== 5 && seq !== 22 }))));
    type Item = { id: string; data: { seq: number; ok: boolean } };
    const batchOf = (a: { body: string }) => (JSON.parse(a.body) as { batch: Item[] }).batch;
    const accepted = () => r.arrivals.filter((a) => statusOf(a.body) === 200);
    await eventually('28 delivered', () => accepted().flatMap(batchOf).length >= 28, 30_000);
    const letters = await eventually('2 dead letters', () => {
      const got = dlq.filter((l) => l.headers[DESTINATION_HEADER] === id);
      return got.length >= 2 ? got : undefined;
    });
    await new Promise((res) => setTimeout(res, 1000));
    expect(dlq.filter((l) => l.headers[DESTINATION_HEADER] === id)).toHaveLength(2);
    expect(letters.map((l) => (JSON.parse(l.value) as { item: Item }).item.data.seq).sort()).toEqual(
      [22, 5].sort(),
    );
    for (const l of letters) expect(l.headers[DLQ_HEADERS.reason]).toBe('permanent: HTTP 422');
    // each good item delivered once, in the person's order; each request its own webhook-id
    const delivered = accepted().flatMap(batchOf);
    expect(delivered.map((i) => i.data.seq)).toEqual(
      Array.from({ length: 30 }, (_, i) => i).filter((i) => i !== 5 && i !== 22),
    );
    for (const a of r.arrivals)
      expect(a.id).toBe(
        webhookIdOf(
          id,
          batchOf(a).map((i) => i.id),
        ),
      );
    expect(new Set(r.arrivals.map((a) => a.id)).size).toBe(r.arrivals.length);
    // bisection, not one request per item
    expect(r.arrivals.length).toBeLessThanOrEqual(20);
    const sent = await eventually('ledger', () => {
      const got = ledger.seen.filter((m) => m.value.campaign_id === id && m.value.outcome === 'sent');
      return got.length >= 28 ? got : undefined;
    });
    expect(new Set(sent.map((m) => m.value.send_key))).toEqual(
      new Set(ids.filter((_, i) => i !== 5 && i !== 22)),
    );
  });

  it('dead-letters the one event its mapping cannot map, and a 4xx at once; delivers the rest', async () => {
    const ok = await receiver(200);
    const refusing = await receiver(422);
    closers.push(ok.close, refusing.close);
    const mapping = {
      n: 'properties.n',
      text: { liquid: '{% for i in (1..properties.n) %}xxxxxxxxxx{% endfor %}' },
    };
    const id = await create({
      source: { kind: 'events', filter: { '==': [{ var: 'event' }, 'Mapped'] } },
      mapping,
      http: { url: ok.url },
    });
    const refusedId = await create({
      source: { kind: 'events', filter: { '==': [{ var: 'event' }, 'Refused'] } },
      http: { url: refusing.url },
      retry: { maxAttempts: 5, initialBackoffMs: 50 },
    });
    const [small1] = await produce('Mapped', ['m1'], () => ({ n: 2 }));
    // 100 million iterations: past the render limits
    const [huge] = await produce('Mapped', ['m1'], () => ({ n: 100_000_000 }));
    const [small2] = await produce('Mapped', ['m1'], () => ({ n: 3 }));
    await produce('Refused', ['x1'], () => ({}));
    await eventually('the two small ones delivered', () => ok.arrivals.length >= 2, 30_000);
    expect(ok.arrivals.map((a) => (JSON.parse(a.body) as { id: string }).id)).toEqual([small1, small2]);
    const mappingLetter = await eventually('mapping dead letter', () =>
      dlq.find((l) => l.headers[DESTINATION_HEADER] === id),
    );
    expect(mappingLetter.headers[DLQ_HEADERS.reason]).toMatch(/^mapping: mapping\.text: /);
    expect(JSON.parse(mappingLetter.value)).toMatchObject({ destinationId: id, item: { id: huge } });
    const refusedLetter = await eventually('4xx dead letter', () =>
      dlq.find((l) => l.headers[DESTINATION_HEADER] === refusedId),
    );
    expect(refusedLetter.headers[DLQ_HEADERS.reason]).toBe('permanent: HTTP 422');
    await new Promise((res) => setTimeout(res, 500));
    expect(refusing.arrivals).toHaveLength(1);
    const rows = await eventually('ledger', () => {
      const got = ledger.seen.filter((m) => m.value.campaign_id === refusedId).map((m) => m.value);
      return got.length >= 1 ? got : undefined;
    });
    expect(rows).toEqual([
      expect.objectContaining({
        outcome: 'dead_lettered',
        reason: 'permanent: HTTP 422',
        attempt: 1,
        status_code: 422,
      }),
    ]);
  });

  it('stops for an archived workspace (nothing delivered, nothing dead-lettered) and goes on when it is un-archived', async () => {
    const r = await receiver(200);
    closers.push(r.close);
    const made = await api('POST', '/v1/workspaces', { name: uniqueId('Archived ') });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const ws = made.body.id as string;
    const res = await app.request('/v1/destinations', {
      method: 'POST',
      headers: {
        authorization: `Bearer ${cfg.keys.adminKey}`,
        'content-type': 'application/json',
        'x-workspace': ws,
      },
      body: JSON.stringify({
        name: 'd',
        type: 'http',
        source: { kind: 'events', filter: { '==': [{ var: 'event' }, 'Shelved'] } },
        http: { url: r.url },
      }),
    });
    expect(res.status).toBe(201);
    const id = ((await res.json()) as { id: string }).id;
    await eventually('consuming', () => service.worker(id)?.started.then(() => true), 60_000);
    const events = topics(cfg.kafka.topicPrefix).events;
    const one = (user: string) =>
      produceEvents(producer, events, ws, [{ user, event: 'Shelved', properties: {} }]);
    const delivered = () => new Set(r.arrivals.map((a) => (JSON.parse(a.body) as { id: string }).id));
    const [before] = await one('s1');
    await eventually('delivered before archiving', () => delivered().has(before!), 30_000);

    expect((await api('POST', `/v1/workspaces/${ws}/archive`)).status).toBe(200);
    await eventually('worker stopped', () => service.worker(id) === undefined, 20_000);
    // its consumer has left the group: nothing can take the next event
    const admin = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      await eventually(
        'group empty',
        async () => {
          const {
            groups: [g],
          } = await admin.describeGroups([destinationGroup(cfg.kafka.topicPrefix, id)]);
          return g?.state === 'Empty';
        },
        30_000,
        200,
      );
    } finally {
      await admin.disconnect();
    }
    const [during] = await one('s2');
    await new Promise((res) => setTimeout(res, 1000));
    expect(delivered().has(during!)).toBe(false);
    expect(dlq.some((l) => l.headers[DESTINATION_HEADER] === id)).toBe(false);

    // un-archived: it goes on from its offsets, so the event of the archived time arrives now
    expect((await api('POST', `/v1/workspaces/${ws}/unarchive`)).status).toBe(200);
    await eventually('delivered after un-archiving', () => delivered().has(during!), 60_000);
    expect(delivered()).toEqual(new Set([before, during]));
    expect(dlq.some((l) => l.headers[DESTINATION_HEADER] === id)).toBe(false);
  });
});
