// The HubSpot built-in on the real Kafka and Redis, against a local HubSpot (test/hubspot.ts)
// that checks the contacts batch upsert as HubSpot documents it: the token write-only and
// sealed at rest, contacts upserted by email in batches of at most 100, a record HubSpot
// refuses (207) or that cannot be a contact dead-lettered alone with the reason, HubSpot's
// rate-limit window honoured from its headers, a revoked token final, and a broken HubSpot
// not holding back another destination.
import { randomBytes } from 'node:crypto';
import { Kafka, type Producer as KafkaProducer, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDestinations, startDestinations } from '../../destinations/main.ts';
import { DESTINATION_HEADER } from '../../destinations/worker.ts';
import { createQueryApp } from '../../query/app.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { Logger } from '../../runtime/log.ts';
import { WriteKeyStore } from '../../runtime/write-keys.ts';
import { migrate } from '../../schemas/migrations.ts';
import { DLQ_HEADERS, topics } from '../../schemas/topics.ts';
import { eventually, readTopic, testConfig, testLogger, uniqueId } from '../harness.ts';
import { hubspotServer } from '../hubspot.ts';
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
  status_code: number;
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
  return { status: res.status, body: (await res.json().catch(() => null)) as Record<string, any> };
};

async function create(def: Record<string, unknown>): Promise<string> {
  const res = await api('POST', '/v1/destinations', { name: 'crm', type: 'hubspot', ...def });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const id = res.body.id as string;
  await eventually('consuming', () => service.worker(id)?.started.then(() => true), 60_000);
  return id;
}

const onEvent = (event: string) => ({ kind: 'events', filter: { '==': [{ var: 'event' }, event] } });
const contactMapping = { email: 'properties.email', firstname: 'properties.name', plan: 'properties.plan' };

const produce = (event: string, people: Array<Record<string, unknown>>) =>
  produceEvents(
    producer,
    topics(cfg.kafka.topicPrefix).events,
    cfg.keys.workspace,
    people.map((properties, i) => ({ user: `u${i}`, event, properties })),
  );

const sentOf = (id: string) =>
  new Set(
    ledger.seen
      .filter((m) => m.value.campaign_id === id && m.value.outcome === 'sent')
      .map((m) => m.value.send_key),
  );
const lettersOf = (id: string) => dlq.filter((l) => l.headers[DESTINATION_HEADER] === id);

beforeAll(async () => {
  cfg = testConfig({
    CDP_WEBHOOK_ALLOW_LOOPBACK: 'true',
    CDP_SECRETS_KEY: randomBytes(32).toString('base64'),
  });
  log = testLogger(cfg);
  clients = createClients(cfg, log);
  const ch = await clients.clickhouse();
  await migrate(ch);
  const t = topics(cfg.kafka.topicPrefix);
  const admin = clients.kafka().admin();
  await admin.ensureTopics([
    { topic: t.events, partitions: 2 },
    { topic: t.eventsOverflow, partitions: 2 },
    { topic: t.segmentChanges, partitions: 2 },
    { topic: t.activationLedger, partitions: 2 },
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
    secrets: cfg.channels.secrets,
    log,
    now: () => new Date(),
  });
  service = await startDestinations(cfg, clients, log, {
    options: { retryPollMs: 100, breaker: { failures: 3, cooldownMs: 500, maxCooldownMs: 2000 } },
  });
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

describe('HubSpot destination', () => {
  it('keeps the token write-only: required, sealed at rest, never in GET, the list or the audit log', async () => {
    const token = `pat-na1-${randomBytes(16).toString('hex')}`;
    const noToken = await api('POST', '/v1/destinations', {
      name: 'crm',
      type: 'hubspot',
      source: onEvent('Never'),
      http: { url: 'http://127.0.0.1:1' },
    });
    expect(noToken.status).toBe(400);
    expect(noToken.body.error).toMatch(/hubspot\.token: required/);
    const tooBig = await api('POST', '/v1/destinations', {
      name: 'crm',
      type: 'hubspot',
      source: onEvent('Never'),
      http: { url: 'http://127.0.0.1:1', batch: { maxEvents: 101 } },
      hubspot: { token },
    });
    expect(tooBig.status).toBe(400);
    expect(tooBig.body.error).toMatch(/at most 100/);
    const onHttp = await api('POST', '/v1/destinations', {
      name: 'hook',
      type: 'http',
      source: onEvent('Never'),
      http: { url: 'http://127.0.0.1:1' },
      hubspot: { token },
    });
    expect(onHttp.status).toBe(400);

    const id = await create({
      source: onEvent('Never'),
      http: { url: 'http://127.0.0.1:1' },
      hubspot: { token },
    });
    const got = await api('GET', `/v1/destinations/${id}`);
    expect(got.body.credentialsSet).toBe(true);
    expect(got.body.hubspot).toEqual({ idProperty: 'email' });
    expect(JSON.stringify(got.body)).not.toContain(token);
    expect(got.body.credentials).toBeUndefined();
    const list = await api('GET', '/v1/destinations');
    expect(JSON.stringify(list.body)).not.toContain(token);
    // an update without a token keeps the sealed one; with one, replaces it
    const put = await api('PUT', `/v1/destinations/${id}`, {
      name: 'crm 2',
      type: 'hubspot',
      source: onEvent('Never'),
      http: { url: 'http://127.0.0.1:1' },
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body.credentialsSet).toBe(true);
    // at rest in Redis: sealed, the token nowhere in the stored definition
    const defs = await new DefinitionStore(clients.redis(), cfg.redis.prefix).get(
      'destinations',
      cfg.keys.workspace,
      id,
    );
    expect(defs?.credentials?.ct).toBeTruthy();
    expect(JSON.stringify(defs)).not.toContain(token);
    // a dry run shows HubSpot's request for the sample
    const dry = await api('POST', `/v1/destinations/${id}/dry-run`, {
      event: { event: 'Never', email: ' A@B.co ', plan: 3 },
    });
    expect(dry.status, JSON.stringify(dry.body)).toBe(200);
    expect(dry.body.payload).toEqual({
      method: 'POST',
      path: '/crm/v3/objects/contacts/batch/upsert',
      body: { inputs: [{ id: 'a@b.co', idProperty: 'email', properties: { event: 'Never', plan: '3' } }] },
    });
    expect(dry.body.matched).toBe(true);
    const audit = await (await clients.clickhouse()).query({
      query: `SELECT before, after FROM audit_log WHERE entity_id = {id:String}`,
      query_params: { id },
      format: 'JSONEachRow',
    });
    const rows = await audit.json<Record<string, string>>();
    expect(rows.length).toBeGreaterThanOrEqual(2);
    const text = JSON.stringify(rows);
    expect(text).not.toContain(token);
    expect(text).not.toContain(defs!.credentials!.ct);
    expect(text).toContain('credentialsSet');
    await api('DELETE', `/v1/destinations/${id}`);
  });

  it('upserts contacts by normalised email in batches of at most 100; a refused or unusable record is dead-lettered alone', async () => {
    const token = `pat-${randomBytes(8).toString('hex')}`;
    const hs = await hubspotServer({ token, reject: new Set(['refused@example.com']) });
    closers.push(hs.close);
    const id = await create({
      source: onEvent('Crm Batch'),
      mapping: contactMapping,
      http: { url: hs.url },
      hubspot: { token },
    });
    const people: Array<Record<string, unknown>> = Array.from({ length: 230 }, (_, i) => ({
      email: ` Person${i}@Example.COM `,
      name: `P${i}`,
      plan: i % 2 === 0 ? 'pro' : 42,
    }));
    people.push({ email: 'refused@example.com', name: 'R', plan: 'x' });
    people.push({ email: 'not-an-email', name: 'N', plan: 'x' });
    people.push({ email: 'nested@example.com', name: { first: 'x' }, plan: 'x' });
    const ids = await produce('Crm Batch', people);
    await eventually('230 contacts upserted', () => hs.contacts.size >= 230, 60_000);
    await eventually('230 sent in the ledger', () => sentOf(id).size >= 230, 60_000);
    await eventually('3 dead letters', () => lettersOf(id).length >= 3, 60_000);
    expect(hs.contacts.get('person7@example.com')).toEqual({
      email: 'person7@example.com',
      firstname: 'P7',
      plan: '42',
    });
    expect(hs.contacts.has('refused@example.com')).toBe(false);
    // every request a valid upsert, never over 100, the unusable records never sent
    for (const r of hs.requests) {
      expect([200, 207]).toContain(r.status);
      expect(r.inputs.length).toBeLessThanOrEqual(100);
      for (const input of r.inputs) {
        expect(input.idProperty).toBe('email');
        expect(input.id).not.toMatch(/not-an-email|nested/);
      }
    }
    expect(hs.requests.length).toBeGreaterThanOrEqual(3);
    const letters = lettersOf(id);
    const reasonFor = (email: string) =>
      letters.find((l) => l.value.includes(email))?.headers[DLQ_HEADERS.reason] ?? '';
    expect(reasonFor('refused@example.com')).toMatch(
      /HubSpot VALIDATION_ERROR: Property values were not valid/,
    );
    expect(reasonFor('not-an-email')).toMatch(/not an email address/);
    expect(reasonFor('nested@example.com')).toMatch(/property firstname is not a string/);
    expect(letters).toHaveLength(3);
    // the 230 good ones and no other: each sent exactly once
    const sent = sentOf(id);
    expect(sent.size).toBe(230);
    for (const m of ids.slice(0, 230)) expect(sent.has(m)).toBe(true);
  }, 120_000);

  it('a batch HubSpot refuses whole (400) for one bad record is split until only that record is dead-lettered', async () => {
    const token = `pat-${randomBytes(8).toString('hex')}`;
    // plan is an enumeration: HubSpot refuses the whole batch for one value outside its options
    const hs = await hubspotServer({ token, enumerations: { plan: ['free', 'pro'] } });
    closers.push(hs.close);
    const id = await create({
      source: onEvent('Crm Split'),
      mapping: contactMapping,
      // one batch of all 50 (one person's events: one partition, one lane)
      http: { url: hs.url, batch: { maxEvents: 100, maxWaitMs: 1500 } },
      hubspot: { token },
    });
    const people = Array.from({ length: 50 }, (_, i) => ({
      email: `split${i}@example.com`,
      name: `S${i}`,
      plan: i === 37 ? 'platinum' : i % 2 === 0 ? 'pro' : 'free',
    }));
    const ids = await produceEvents(
      producer,
      topics(cfg.kafka.topicPrefix).events,
      cfg.keys.workspace,
      people.map((properties) => ({ user: 'split-person', event: 'Crm Split', properties })),
    );
    await eventually('49 contacts upserted', () => hs.contacts.size >= 49 && sentOf(id).size >= 49, 60_000);
    await eventually('the bad record dead-lettered', () => lettersOf(id).length >= 1, 60_000);
    // nothing else comes: the split is over
    await new Promise((r) => setTimeout(r, 1500));
    const letters = lettersOf(id);
    expect(letters).toHaveLength(1);
    expect(JSON.parse(letters[0]!.value).item.id).toBe(ids[37]);
    expect(letters[0]!.headers[DLQ_HEADERS.reason]).toMatch(
      /^permanent: HubSpot 400: VALIDATION_ERROR: Property values were not valid: .*platinum was not one of the allowed options/,
    );
    const sent = sentOf(id);
    expect(sent.size).toBe(49);
    for (const [i, m] of ids.entries()) expect(sent.has(m)).toBe(i !== 37);
    expect(hs.contacts.has('split37@example.com')).toBe(false);
    expect(hs.contacts.get('split36@example.com')).toEqual({
      email: 'split36@example.com',
      firstname: 'S36',
      plan: 'pro',
    });
    // bisection, not one request per record: each refused batch splits in two until the
    // bad record is alone (50 → 25 → 13 → 7 → 4 → 2 → 1: 6 refusals; 49 sent in 6 requests,
    // more if the 50 came in more than one batch)
    const refused = hs.requests.filter((r) => r.status === 400);
    expect(refused.length).toBeGreaterThanOrEqual(2);
    expect(refused.length).toBeLessThanOrEqual(12);
    expect(hs.requests.length).toBeLessThanOrEqual(26);
    // the last refusal was the bad record alone, and no refused batch was retried as it was
    expect(refused.at(-1)!.inputs.map((x) => x.id)).toEqual(['split37@example.com']);
    for (const r of refused) expect(r.inputs.map((x) => x.id)).toContain('split37@example.com');
    const shapes = refused.map((r) => r.inputs.map((x) => x.id).join(','));
    expect(new Set(shapes).size).toBe(shapes.length);
    // every good contact was upserted once
    const upserts = hs.requests.filter((r) => r.status === 200).flatMap((r) => r.inputs.map((x) => x.id));
    expect(upserts.sort()).toEqual(
      people
        .filter((_, i) => i !== 37)
        .map((p) => p.email)
        .sort(),
    );
  }, 120_000);

  it("holds its requests for HubSpot's rate-limit window and a 429's Retry-After", async () => {
    const token = `pat-${randomBytes(8).toString('hex')}`;
    // the first request is throttled with Retry-After: 2; then 2 requests per 1.5 s window
    const hs = await hubspotServer({
      token,
      max: 2,
      intervalMs: 1500,
      retryAfterSeconds: 2,
      throttleFirst: 1,
    });
    closers.push(hs.close);
    const id = await create({
      source: onEvent('Crm Limit'),
      mapping: contactMapping,
      http: { url: hs.url, batch: { maxEvents: 4 } },
      hubspot: { token },
    });
    await produce(
      'Crm Limit',
      Array.from({ length: 24 }, (_, i) => ({ email: `limit${i}@example.com`, name: `L${i}` })),
    );
    await eventually('24 contacts upserted', () => hs.contacts.size >= 24, 90_000);
    const reqs = [...hs.requests].sort((a, b) => a.at - b.at);
    const first429 = reqs.find((r) => r.status === 429)!;
    expect(first429).toBeDefined();
    // nothing was answered before the Retry-After passed, save what was already on its way
    const early = reqs.filter((r) => r.at > first429.at + 150 && r.at < first429.at + 2000);
    expect(early).toEqual([]);
    // after it, the window's headers keep it within 2 a window: few 429s (only a request
    // already in flight from the other partition can meet a spent window)
    const throttled = reqs.filter((r) => r.status === 429).length;
    expect(throttled).toBeLessThanOrEqual(4);
    const accepted = reqs.filter((r) => r.status === 200);
    for (const r of accepted) {
      const inWindow = accepted.filter((x) => x.at > r.at - 1500 && x.at <= r.at);
      expect(inWindow.length).toBeLessThanOrEqual(2);
    }
    // the 429 was retried (ledger), never dead-lettered
    expect(
      ledger.seen.some((m) => m.value.campaign_id === id && m.value.reason.includes('HubSpot 429')),
    ).toBe(true);
    expect(lettersOf(id)).toEqual([]);
  }, 120_000);

  it("dead-letters on a revoked token (401) at once, with HubSpot's message", async () => {
    const hs = await hubspotServer({ token: 'the-right-one' });
    closers.push(hs.close);
    const id = await create({
      source: onEvent('Crm Revoked'),
      mapping: contactMapping,
      http: { url: hs.url },
      hubspot: { token: 'a-revoked-one' },
      retry: { maxAttempts: 3, initialBackoffMs: 100 },
    });
    await produce('Crm Revoked', [{ email: 'a@example.com', name: 'A' }]);
    await eventually('dead-lettered', () => lettersOf(id).length >= 1, 60_000);
    expect(lettersOf(id)[0]!.headers[DLQ_HEADERS.reason]).toMatch(
      /^permanent: HubSpot 401: INVALID_AUTHENTICATION/,
    );
    expect(hs.requests.filter((r) => r.status === 401)).toHaveLength(1);
    expect(hs.contacts.size).toBe(0);
  }, 90_000);

  it('a hanging HubSpot does not hold back a webhook destination on the same events', async () => {
    const token = `pat-${randomBytes(8).toString('hex')}`;
    const hs = await hubspotServer({ token, fail: 'hang' });
    closers.push(hs.close);
    const hook = await receiver(200);
    closers.push(hook.close);
    await create({
      source: onEvent('Crm Both'),
      mapping: contactMapping,
      http: { url: hs.url, timeoutMs: 20_000 },
      hubspot: { token },
    });
    const res = await api('POST', '/v1/destinations', {
      name: 'hook',
      type: 'http',
      source: onEvent('Crm Both'),
      http: { url: hook.url },
    });
    expect(res.status).toBe(201);
    await eventually('consuming', () => service.worker(res.body.id)?.started.then(() => true), 60_000);
    const ids = await produce(
      'Crm Both',
      Array.from({ length: 20 }, (_, i) => ({ email: `both${i}@example.com`, name: `B${i}` })),
    );
    // the webhook gets all 20 while HubSpot still sits on its first request
    await eventually(
      'webhook got all',
      () => new Set(hook.arrivals.map((a) => JSON.parse(a.body).id)).size >= 20,
      60_000,
    );
    expect(new Set(hook.arrivals.map((a) => JSON.parse(a.body).id))).toEqual(new Set(ids));
    expect(hs.contacts.size).toBe(0);
  }, 120_000);
});
