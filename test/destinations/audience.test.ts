// The audience sync built-in on the real Kafka and Redis, against a local ads custom
// audience API (test/ads-audience.ts, Meta's shape): segment entries added and exits removed
// in batches, identifiers normalised and SHA-256 hashed (no raw email or phone ever reaches
// the API), a change without a usable identifier dead-lettered alone, the API's rate limit
// retried after its Retry-After, an invalid token final.
import { createHash, randomBytes } from 'node:crypto';
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
import { change } from '../activation-peers.ts';
import { audienceServer } from '../ads-audience.ts';
import { eventually, readTopic, testConfig, testLogger, uniqueId } from '../harness.ts';

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
  const res = await api('POST', '/v1/destinations', { name: 'audience', type: 'audience', ...def });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const id = res.body.id as string;
  await eventually('consuming', () => service.worker(id)?.started.then(() => true), 60_000);
  return id;
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** Segment changes as the processor writes them to cdp.segment-changes. */
async function produceChanges(changes: ReturnType<typeof change>[]) {
  await producer.send({
    topic: topics(cfg.kafka.topicPrefix).segmentChanges,
    acks: -1,
    messages: changes.map((c) => ({ key: `${c.workspaceId}:${c.profileId}`, value: JSON.stringify(c) })),
  });
}

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

describe('audience sync destination', () => {
  it('takes segment changes only, no mapping, a write-only token', async () => {
    const base = { source: { kind: 'segment_changes' }, http: { url: 'http://127.0.0.1:1' } };
    const bad = [
      { ...base, audience: { audienceId: '123' } },
      { ...base, source: { kind: 'events' }, audience: { audienceId: '123', token: 't' } },
      { ...base, mapping: { e: 'traits.email' }, audience: { audienceId: '123', token: 't' } },
      { ...base, audience: { audienceId: '12a', token: 't' } },
      { ...base, audience: { audienceId: '123', token: 't', identifier: 'name' } },
    ];
    for (const b of bad) {
      const res = await api('POST', '/v1/destinations', { name: 'a', type: 'audience', ...b });
      expect(res.status, JSON.stringify(b)).toBe(400);
    }
    const token = `EAAB${randomBytes(16).toString('hex')}`;
    const id = await create({ ...base, audience: { audienceId: '123', token } });
    const got = await api('GET', `/v1/destinations/${id}`);
    expect(got.body.audience).toEqual({ audienceId: '123', identifier: 'email', apiVersion: 'v21.0' });
    expect(got.body.credentialsSet).toBe(true);
    expect(JSON.stringify(got.body)).not.toContain(token);
    // a dry run shows the request: the hash, never the address
    const dry = await api('POST', `/v1/destinations/${id}/dry-run`, {
      change: change(cfg.keys.workspace, 's1', 'p1', { email: ' Dry@Example.org ' }, 2),
    });
    expect(dry.status, JSON.stringify(dry.body)).toBe(200);
    expect(dry.body.payload).toEqual({
      method: 'DELETE',
      path: '/v21.0/123/users',
      body: { payload: { schema: ['EMAIL_SHA256'], data: [[sha('dry@example.org')]] } },
    });
    expect(JSON.stringify(dry.body)).not.toMatch(/dry@/i);
    const noMail = await api('POST', `/v1/destinations/${id}/dry-run`, {
      change: change(cfg.keys.workspace, 's1', 'p1', {}),
    });
    expect(noMail.status).toBe(422);
    expect(noMail.body.error).toBe('no email to match on');
    await api('DELETE', `/v1/destinations/${id}`);
  });

  it('adds entries and removes exits as SHA-256 hashes of normalised emails, in batches, never raw', async () => {
    const token = `EAAB${randomBytes(16).toString('hex')}`;
    const aud = await audienceServer({ token, audienceId: '2384' });
    closers.push(aud.close);
    const seg = uniqueId('seg_');
    const id = await create({
      source: { kind: 'segment_changes', segmentIds: [seg] },
      http: { url: aud.url, batch: { maxEvents: 50, maxWaitMs: 200 } },
      audience: { audienceId: '2384', token },
    });
    const ws = cfg.keys.workspace;
    const email = (i: number) => `  Member${i}@Example.ORG `;
    await produceChanges([
      ...Array.from({ length: 120 }, (_, i) => change(ws, seg, `p${i}`, { email: email(i) })),
      change(ws, seg, 'nomail', { name: 'no email' }),
      change(ws, uniqueId('other_'), 'px', { email: 'other@example.org' }),
    ]);
    await eventually('120 members', () => aud.members.size >= 120, 60_000);
    await produceChanges(
      Array.from({ length: 40 }, (_, i) => change(ws, seg, `p${i}`, { email: email(i) }, 2)),
    );
    await eventually('80 members left', () => aud.members.size === 80, 60_000);
    const want = new Set(Array.from({ length: 80 }, (_, i) => sha(`member${i + 40}@example.org`)));
    expect(aud.members).toEqual(want);
    expect(aud.raw).toEqual([]);
    expect(aud.requests.every((r) => r.status === 200)).toBe(true);
    expect(aud.requests.every((r) => r.hashes.length <= 50 && r.schema?.[0] === 'EMAIL_SHA256')).toBe(true);
    expect(aud.requests.some((r) => r.method === 'DELETE')).toBe(true);
    // more than one a request: batched
    expect(aud.requests.filter((r) => r.method === 'POST').length).toBeLessThan(120);
    await eventually('dead letter for the change without email', () => lettersOf(id).length >= 1, 30_000);
    expect(lettersOf(id)).toHaveLength(1);
    expect(lettersOf(id)[0]!.headers[DLQ_HEADERS.reason]).toBe('permanent: no email to match on');
    expect(lettersOf(id)[0]!.value).toContain(`${seg}:nomail:1`);
    await eventually('160 sent', () => sentOf(id).size >= 160, 30_000);
  }, 120_000);

  it('matches on E.164 phones (hashed as digits with the country code); one without a country code is dead-lettered', async () => {
    const token = `EAAB${randomBytes(16).toString('hex')}`;
    const aud = await audienceServer({ token, audienceId: '77' });
    closers.push(aud.close);
    const seg = uniqueId('seg_');
    const id = await create({
      source: { kind: 'segment_changes', segmentIds: [seg] },
      http: { url: aud.url },
      audience: { audienceId: '77', token, identifier: 'phone' },
    });
    const ws = cfg.keys.workspace;
    await produceChanges([
      change(ws, seg, 'a', { phone: '+1 (415) 555-0123' }),
      change(ws, seg, 'b', { phone: '0044 20 7946 0958' }),
      change(ws, seg, 'c', { phone: '415 555 0199' }),
    ]);
    await eventually('2 members', () => aud.members.size >= 2, 60_000);
    await eventually('1 dead letter', () => lettersOf(id).length >= 1, 30_000);
    expect(aud.members).toEqual(new Set([sha('14155550123'), sha('442079460958')]));
    expect(aud.requests.every((r) => r.schema?.[0] === 'PHONE_SHA256')).toBe(true);
    const reason = lettersOf(id)[0]!.headers[DLQ_HEADERS.reason]!;
    expect(reason).toMatch(/not in E\.164 form/);
    expect(reason).not.toContain('555');
    expect(aud.raw).toEqual([]);
  }, 120_000);

  it("retries the API's rate limit (code 80003) after its Retry-After, not counted as a failure", async () => {
    const token = `EAAB${randomBytes(16).toString('hex')}`;
    const aud = await audienceServer({ token, audienceId: '99', throttleFirst: 1, retryAfterSeconds: 2 });
    closers.push(aud.close);
    const seg = uniqueId('seg_');
    const id = await create({
      source: { kind: 'segment_changes', segmentIds: [seg] },
      http: { url: aud.url },
      audience: { audienceId: '99', token },
      retry: { maxAttempts: 2, initialBackoffMs: 50 },
    });
    await produceChanges([change(cfg.keys.workspace, seg, 'r1', { email: 'r1@example.org' })]);
    await eventually('member added', () => aud.members.size >= 1, 60_000);
    const [first, ...rest] = aud.requests;
    expect(first!.status).toBe(400);
    expect(rest.find((r) => r.status === 200)!.at - first!.at).toBeGreaterThanOrEqual(1900);
    expect(
      ledger.seen.some(
        (m) =>
          m.value.campaign_id === id && m.value.outcome === 'retried' && m.value.reason.includes('80003'),
      ),
    ).toBe(true);
    expect(lettersOf(id)).toEqual([]);
  }, 90_000);

  it('dead-letters on an invalid token (code 190) with the API message', async () => {
    const aud = await audienceServer({ token: 'right', audienceId: '55' });
    closers.push(aud.close);
    const seg = uniqueId('seg_');
    const id = await create({
      source: { kind: 'segment_changes', segmentIds: [seg] },
      http: { url: aud.url },
      audience: { audienceId: '55', token: 'wrong' },
    });
    await produceChanges([change(cfg.keys.workspace, seg, 't1', { email: 't1@example.org' })]);
    await eventually('dead-lettered', () => lettersOf(id).length >= 1, 60_000);
    expect(lettersOf(id)[0]!.headers[DLQ_HEADERS.reason]).toMatch(
      /^permanent: audience API 400: OAuthException: Invalid OAuth access token.*\(code 190\)$/,
    );
    expect(aud.requests).toHaveLength(1);
    expect(aud.members.size).toBe(0);
  }, 90_000);
});
