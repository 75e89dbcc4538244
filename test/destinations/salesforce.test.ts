// The Salesforce built-in on the real Kafka and Redis, against a local Salesforce
// (test/salesforce.ts) that checks the sObject Collections upsert as Salesforce documents it:
// records upserted by an external id in requests of at most 200, per-record errors in a 200
// handled per record (refused ones dead-lettered alone with Salesforce's statusCode and
// message, a locked row retried alone), an expired session (401 INVALID_SESSION_ID) final,
// and the org's API limit (403 REQUEST_LIMIT_EXCEEDED, Sforce-Limit-Info at its max) pausing
// the destination for CDP_DESTINATION_LIMIT_WAIT_MS (3 s here) with nothing lost.
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
import { salesforceServer } from '../salesforce.ts';
import { produceEvents } from './peers.ts';

/** How long the org's spent API limit pauses the destination in these tests. */
const LIMIT_WAIT_MS = 3000;

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
  const res = await api('POST', '/v1/destinations', { name: 'sf', type: 'salesforce', ...def });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const id = res.body.id as string;
  await eventually('consuming', () => service.worker(id)?.started.then(() => true), 60_000);
  return id;
}

const onEvent = (event: string) => ({ kind: 'events', filter: { '==': [{ var: 'event' }, event] } });
const recordMapping = {
  External_Id__c: 'userId',
  Email: 'properties.email',
  LastName: 'properties.last',
  Plan__c: 'properties.plan',
};

const produce = (event: string, people: Array<Record<string, unknown>>) =>
  produceEvents(
    producer,
    topics(cfg.kafka.topicPrefix).events,
    cfg.keys.workspace,
    people.map((properties, i) => ({ user: String(properties.user ?? `u${i}`), event, properties })),
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
    options: {
      retryPollMs: 100,
      breaker: { failures: 3, cooldownMs: 500, maxCooldownMs: 2000 },
      limitWaitMs: LIMIT_WAIT_MS,
    },
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

describe('Salesforce destination', () => {
  it('upserts by external id in requests of at most 200; per-record errors are handled per record', async () => {
    const token = `00D${randomBytes(12).toString('hex')}!AQ`;
    const sf = await salesforceServer({ token, lockOnce: new Set(['sf-7']) });
    closers.push(sf.close);
    const id = await create({
      source: onEvent('Sf Batch'),
      mapping: recordMapping,
      http: { url: sf.url },
      salesforce: { externalIdField: 'External_Id__c', token },
    });
    const people: Array<Record<string, unknown>> = Array.from({ length: 260 }, (_, i) => ({
      user: `sf-${i}`,
      email: `sf${i}@example.com`,
      last: `Last${i}`,
      plan: i % 3 === 0 ? 'pro' : null,
    }));
    people.push({ user: 'sf-nolast', email: 'nolast@example.com' });
    people.push({ user: 'sf-bademail', email: 'not an email', last: 'B' });
    people.push({ user: 'sf-object', email: 'o@example.com', last: { x: 1 } });
    const ids = await produce('Sf Batch', people);
    await eventually('260 records', () => sf.store.size >= 260, 90_000);
    await eventually('3 dead letters', () => lettersOf(id).length >= 3, 60_000);
    await eventually('260 sent', () => sentOf(id).size >= 260, 60_000);
    expect(sf.store.get('sf-12')).toMatchObject({
      Email: 'sf12@example.com',
      LastName: 'Last12',
      Plan__c: 'pro',
    });
    expect(sf.store.has('sf-7')).toBe(true);
    for (const r of sf.requests) {
      expect(r.status).toBe(200);
      expect(r.records.length).toBeLessThanOrEqual(200);
    }
    // the locked row went again alone
    const sevens = sf.requests.filter((r) => r.records.some((x) => x.External_Id__c === 'sf-7'));
    expect(sevens.length).toBe(2);
    expect(sevens[1]!.records).toHaveLength(1);
    expect(
      ledger.seen.some(
        (m) =>
          m.value.campaign_id === id &&
          m.value.outcome === 'retried' &&
          m.value.reason.includes('UNABLE_TO_LOCK_ROW'),
      ),
    ).toBe(true);
    const reasonFor = (ext: string) =>
      lettersOf(id).find((l) => l.value.includes(`"External_Id__c":"${ext}"`))?.headers[DLQ_HEADERS.reason] ??
      '';
    expect(reasonFor('sf-nolast')).toBe(
      'permanent: Salesforce REQUIRED_FIELD_MISSING: Required fields are missing: [LastName]',
    );
    expect(reasonFor('sf-bademail')).toMatch(/^permanent: Salesforce INVALID_EMAIL_ADDRESS/);
    expect(reasonFor('sf-object')).toMatch(/field LastName is not a string/);
    expect(lettersOf(id)).toHaveLength(3);
    const sent = sentOf(id);
    expect(sent.size).toBe(260);
    for (const m of ids.slice(0, 260)) expect(sent.has(m)).toBe(true);
  }, 150_000);

  it("pauses on the org's API limit (Sforce-Limit-Info at its max, 403 REQUEST_LIMIT_EXCEEDED) and resumes with nothing lost", async () => {
    const token = `00D${randomBytes(12).toString('hex')}!AQ`;
    // two requests a day: the second answer says the limit is reached, the third is refused
    const sf = await salesforceServer({ token, apiLimit: 2 });
    closers.push(sf.close);
    const id = await create({
      source: onEvent('Sf Limit'),
      mapping: { ...recordMapping, External_Id__c: 'properties.ext' },
      // one person's events: one lane, requests one after the other; small batches, so many requests
      http: { url: sf.url, batch: { maxEvents: 4, maxWaitMs: 50 } },
      salesforce: { externalIdField: 'External_Id__c', token },
      retry: { maxAttempts: 10, initialBackoffMs: 50 },
    });
    const people = Array.from({ length: 24 }, (_, i) => ({
      user: 'sf-limit-person',
      ext: `lim-${i}`,
      email: `lim${i}@example.com`,
      last: `L${i}`,
    }));
    const ids = await produce('Sf Limit', people);
    const refusal = await eventually(
      'the limit refusal',
      () => sf.requests.find((r) => r.status === 403),
      60_000,
    );
    // nothing is sent while the destination is paused: wait until just before the pause ends, look
    await new Promise((r) => setTimeout(r, Math.max(0, refusal.end + LIMIT_WAIT_MS - 300 - Date.now())));
    expect(sf.requests.filter((r) => r.at > refusal.end + 25)).toEqual([]);
    // the org's limit is raised (or the rolling day moved on): the destination goes on by itself
    sf.setApiLimit(10_000);
    await eventually('every record upserted', () => sf.store.size >= 24, 60_000);
    await eventually('every record sent in the ledger', () => sentOf(id).size >= 24, 60_000);
    const sent = sentOf(id);
    for (const m of ids) expect(sent.has(m)).toBe(true);
    expect(lettersOf(id)).toHaveLength(0);
    for (let i = 0; i < 24; i++)
      expect(sf.store.get(`lim-${i}`)).toMatchObject({ Email: `lim${i}@example.com`, LastName: `L${i}` });
    // after every answer saying the limit is spent, no request for the pause: each later
    // request came at least LIMIT_WAIT_MS after that answer (25 ms for one already on its way)
    const limited = sf.requests.filter((r) => r.limited);
    expect(limited.length).toBeGreaterThanOrEqual(2);
    expect(limited.some((r) => r.status === 200)).toBe(true); // api-usage=2/2 on a success
    expect(limited.some((r) => r.status === 403)).toBe(true);
    for (const l of limited)
      for (const r of sf.requests)
        if (r.at > l.end + 25) expect(r.at - l.end).toBeGreaterThanOrEqual(LIMIT_WAIT_MS - 5);
    // the refused request's records went again after the pause
    const refusedIds = refusal.records.map((x) => x.External_Id__c);
    expect(refusedIds.length).toBeGreaterThan(0);
    for (const ext of refusedIds)
      expect(
        sf.requests.some(
          (r) => r.status === 200 && r.at > refusal.end && r.records.some((x) => x.External_Id__c === ext),
        ),
      ).toBe(true);
    expect(
      ledger.seen.some(
        (m) =>
          m.value.campaign_id === id &&
          m.value.outcome === 'retried' &&
          m.value.reason.includes('REQUEST_LIMIT_EXCEEDED'),
      ),
    ).toBe(true);
    // a limit is no failing receiver: the circuit stayed closed
    expect(service.worker(id)?.breakerState()).toBe('closed');
  }, 150_000);

  it('an expired session (401 INVALID_SESSION_ID) is final, with the message', async () => {
    const sf = await salesforceServer({ token: 'good' });
    closers.push(sf.close);
    const id = await create({
      source: onEvent('Sf Expired'),
      mapping: recordMapping,
      http: { url: sf.url },
      salesforce: { externalIdField: 'External_Id__c', token: 'expired' },
    });
    await produce('Sf Expired', [{ user: 'x1', email: 'x1@example.com', last: 'X' }]);
    await eventually('dead-lettered', () => lettersOf(id).length >= 1, 60_000);
    expect(lettersOf(id)[0]!.headers[DLQ_HEADERS.reason]).toBe(
      'permanent: Salesforce 401: INVALID_SESSION_ID: Session expired or invalid',
    );
    expect(sf.requests).toHaveLength(1);
  }, 90_000);
});
