// Per-workspace channel credentials on the real stack: Kafka, Redis, chDB, the activation
// worker and ledger sink, the query API with one admin key per workspace, and a Twilio-like
// server with several accounts that checks the HTTP Basic credentials each request carries.
// Workspace A stores its own SMS account; workspace B has none and uses the deployment's
// (env); A's email goes through its own SendGrid key, B's through the deployment's SMTP
// server. Proves: nothing secret in Redis or the audit log; A's sends go with A's account
// while B's go with the env's, in the same batch; a change reaches the worker within its poll;
// a tampered blob, or one copied to another workspace, is refused and never replaced by the
// env's credentials; a key rotation (previous key, then `cdp secrets rotate`); workspace B's
// key cannot see or change A's credentials.
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startActivation, startLedger } from '../../activation/main.ts';
import { topicSpecs } from '../../processor/main.ts';
import { createQueryApp } from '../../query/app.ts';
import { actorOf } from '../../query/audit.ts';
import {
  ChannelCredentialStore,
  credentialKeys,
  fingerprintKey,
  fingerprint as keyedFingerprint,
} from '../../runtime/channel-credentials.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { Redis } from '../../runtime/redis.ts';
import { keyring, parseSecretKey } from '../../runtime/secrets-key.ts';
import type { RunningService } from '../../runtime/service.ts';
import { WriteKeyStore } from '../../runtime/write-keys.ts';
import { migrate } from '../../schemas/migrations.ts';
import { topics } from '../../schemas/topics.ts';
import { change, segmentChangeProducer, startSmtpServer } from '../activation-peers.ts';
import { startSendgrid } from '../email-providers.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

const run = promisify(execFile);
const POLL_MS = 200;
const K1 = randomBytes(32).toString('base64');
const K2 = randomBytes(32).toString('hex');
const ENV = {
  sid: `AC${'e'.repeat(32)}`,
  token: `env-${randomBytes(12).toString('hex')}`,
  from: '+15550000001',
};
const A = {
  sid: `AC${'a'.repeat(32)}`,
  token: `a1-${randomBytes(12).toString('hex')}`,
  from: '+15550000002',
};
const A_TOKEN_2 = `a2-${randomBytes(12).toString('hex')}`;
const B_SID = `AC${'b'.repeat(32)}`;
const B_TOKEN = `b-${randomBytes(12).toString('hex')}`;
const KEY_A = `admin-a-${randomBytes(8).toString('hex')}`;
const KEY_B = `admin-b-${randomBytes(8).toString('hex')}`;
const SG_A = `SG.a-${randomBytes(12).toString('hex')}`;
const SMTP_PW = `smtp-${randomBytes(12).toString('hex')}`;
const SECRETS = [ENV.token, A.token, A_TOKEN_2, B_TOKEN, SG_A, SMTP_PW];
/** GET and the audit log fingerprint with a key derived from the query service's CDP_SECRETS_KEY. */
const fingerprint = (secret: string) => keyedFingerprint(secret, fingerprintKey(parseSecretKey(K1).key));

interface Received {
  account: string;
  authOk: boolean;
  to: string;
  from: string;
  body: string;
  statusCallback: string | null;
}

/** Twilio's Messages API for several accounts, each checking its own SID and auth token. */
async function startTwilioAccounts(accounts: Map<string, string>) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const m = /^\/2010-04-01\/Accounts\/(AC[0-9a-f]{32})\/Messages\.json$/.exec(req.url ?? '');
      const account = m?.[1] ?? '';
      const token = accounts.get(account);
      const want = `Basic ${Buffer.from(`${account}:${token}`).toString('base64')}`;
      const authOk = token !== undefined && req.headers.authorization === want;
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      received.push({
        account,
        authOk,
        to: form.get('To') ?? '',
        from: form.get('From') ?? '',
        body: form.get('Body') ?? '',
        statusCallback: form.get('StatusCallback'),
      });
      res.writeHead(authOk ? 201 : 401, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          authOk
            ? { sid: `SM${randomBytes(16).toString('hex')}`, status: 'queued' }
            : { code: 20003, message: 'Authenticate', status: 401 },
        ),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return {
    url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`,
    received,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

let cfg: Config;
let clients: Clients;
let redis: Redis;
let ch: ClickHouseClient;
let activation: RunningService;
let ledger: RunningService;
let app: ReturnType<typeof createQueryApp>;
let twilio: Awaited<ReturnType<typeof startTwilioAccounts>>;
let sendgrid: Awaited<ReturnType<typeof startSendgrid>>;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let changes: Awaited<ReturnType<typeof segmentChangeProducer>>;
let wsA: string;
let wsB: string;
const accounts = new Map<string, string>();

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
type Json = any;

async function api(
  key: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Json; text: string }> {
  const res = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {}, text };
}

async function campaign(key: string, content: Record<string, unknown>) {
  const seg = await api(key, 'POST', '/v1/segments', {
    name: uniqueId('s'),
    rule: { '==': [{ var: 'traits.plan' }, 'pro'] },
  });
  expect(seg.status, seg.text).toBe(201);
  const c = await api(key, 'POST', '/v1/campaigns', {
    name: uniqueId('c'),
    segmentId: seg.body.id,
    on: 'enter',
    ...content,
  });
  expect(c.status, c.text).toBe(201);
  return { id: c.body.id as string, segmentId: seg.body.id as string };
}

async function smsCampaign(key: string) {
  const seg = await api(key, 'POST', '/v1/segments', {
    name: uniqueId('s'),
    rule: { '==': [{ var: 'traits.plan' }, 'pro'] },
  });
  expect(seg.status, seg.text).toBe(201);
  const c = await api(key, 'POST', '/v1/campaigns', {
    name: uniqueId('c'),
    segmentId: seg.body.id,
    on: 'enter',
    channel: 'sms',
    sms: { body: 'Hi {{ traits.name }}' },
  });
  expect(c.status, c.text).toBe(201);
  return { id: c.body.id as string, segmentId: seg.body.id as string };
}

let phoneSeq = 0;
const phone = () => `+1555${String(2_000_000 + ++phoneSeq).padStart(7, '0')}`;

async function ledgerRows(ws: string, campaignId: string) {
  const rs = await ch.query({
    query:
      'SELECT profile_id, outcome, reason FROM activation_ledger WHERE workspace_id = {ws:String} AND campaign_id = {c:String} ORDER BY at',
    query_params: { ws, c: campaignId },
    format: 'JSONEachRow',
  });
  return (await rs.json()) as Array<{ profile_id: string; outcome: string; reason: string }>;
}

const sentTo = (to: string) => twilio.received.filter((r) => r.to === to);

async function startWorker(c: Config) {
  activation = await startActivation(c, clients, testLogger(c).child({ service: 'activation' }));
}

beforeAll(async () => {
  accounts.set(ENV.sid, ENV.token);
  accounts.set(A.sid, A.token);
  accounts.set(B_SID, B_TOKEN);
  twilio = await startTwilioAccounts(accounts);
  sendgrid = await startSendgrid({ keys: { [SG_A]: ['mail.send'] }, verified: ['news@a.test'] });
  smtp = await startSmtpServer();
  cfg = testConfig({
    SMTP_URL: smtp.url,
    CDP_EMAIL_FROM: 'Deployment <env@deploy.test>',
    CDP_SENDGRID_BASE_URL: sendgrid.url,
    CDP_SMS_BASE_URL: twilio.url,
    CDP_SMS_ACCOUNT_SID: ENV.sid,
    CDP_SMS_AUTH_TOKEN: ENV.token,
    CDP_SMS_FROM: ENV.from,
    CDP_INGEST_PUBLIC_URL: 'https://in.shop.test',
    CDP_SECRETS_KEY: K1,
    CDP_CHANNEL_CREDENTIALS_POLL_MS: String(POLL_MS),
    CDP_ACTIVATION_MAX_ATTEMPTS: '2',
    CDP_ACTIVATION_RETRY_BASE_MS: '100',
    CDP_ACTIVATION_RETRY_MAX_MS: '200',
    CDP_CHANNEL_TIMEOUT_MS: '2000',
  });
  wsA = cfg.keys.workspace;
  wsB = uniqueId('wsb_');
  const log = testLogger(cfg);
  clients = createClients(cfg, log);
  redis = clients.redis();
  ch = await clients.clickhouse();
  await migrate(ch);
  const admin = clients.kafka().admin();
  await admin.ensureTopics(topicSpecs(cfg));
  await admin.disconnect();
  await startWorker(cfg);
  ledger = await startLedger(cfg, clients, log.child({ service: 'ledger' }));
  app = createQueryApp({
    redis,
    clickhouse: ch,
    defs: new DefinitionStore(redis, cfg.redis.prefix),
    writeKeys: new WriteKeyStore(redis, cfg.redis.prefix),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k) => (k === KEY_A ? wsA : k === KEY_B ? wsB : undefined),
    unsubscribeSecret: cfg.unsubscribe.secret,
    log,
    secrets: cfg.channels.secrets,
  });
  changes = await segmentChangeProducer(cfg.kafka.brokers, topics(cfg.kafka.topicPrefix).segmentChanges);
});

afterAll(async () => {
  await changes?.close();
  await activation?.stop();
  await ledger?.stop();
  await clients?.close();
  await twilio?.close();
  await sendgrid?.close();
  await smtp?.close();
});

const smsA = { accountSid: A.sid, authToken: A.token, from: A.from };

describe('channel credentials API', () => {
  it('validates each field, 404s unknown channels, bounds the body', async () => {
    expect((await api(KEY_A, 'GET', '/v1/channels/sms/credentials')).body).toEqual({
      channel: 'sms',
      configured: false,
      source: 'deployment default',
    });
    const bad = async (body: unknown, channel = 'sms') => {
      const r = await api(KEY_A, 'PUT', `/v1/channels/${channel}/credentials`, body);
      expect(r.status, r.text).toBe(400);
      return r.body.error as string;
    };
    expect(await bad({ ...smsA, accountSid: 'AC123' })).toMatch(/^accountSid: /);
    expect(await bad({ accountSid: A.sid, from: A.from })).toMatch(/^authToken: /);
    expect(await bad({ ...smsA, from: 'not a phone!' })).toMatch(/^from: /);
    expect(await bad({ ...smsA, extra: 1 })).toBe(
      'extra: unknown field (allowed: accountSid, authToken, from)',
    );
    expect(await bad({ provider: 'mailgun', from: 'a@b.test' }, 'email')).toMatch(
      /^provider: expected one of/,
    );
    expect(await bad({ provider: 'sendgrid', from: 'a@b.test' }, 'email')).toMatch(/^apiKey: /);
    expect(
      await bad(
        { provider: 'apns', teamId: 'ABCDE12345', keyId: 'KEY1234567', topic: 'x', key: 'x' },
        'push',
      ),
    ).toMatch(/^key: /);
    expect(await bad({ provider: 'fcm', serviceAccount: '/etc/passwd' }, 'push')).toMatch(
      /^serviceAccount: not JSON/,
    );
    expect(await bad('[1,2]')).toMatch(/^body: /);
    // a workspace's SMTP URL: what nodemailer would read beyond host and port is refused, and
    // so is a URL the audit could not show; the problem names `url`, never the value
    for (const url of [
      'smtp:///?host=10.0.0.5&port=25',
      `smtp://mail.shop.test/?proxy=http://127.0.0.1:3128`,
      'smtp://mail.shop.test?logger=true&debug=true',
      'smtp://[::1:25',
      `smtp://%E0%A4%A:${SMTP_PW}@mail.shop.test`,
      'smtp://mail.shop.test:0',
    ]) {
      const err = await bad({ provider: 'smtp', from: 'a@shop.test', url }, 'email');
      expect(err, url).toMatch(/^url: /);
      expect(err).not.toContain(SMTP_PW);
    }
    // an FCM service account names Google's token endpoint, no other
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    }) as string;
    expect(
      await bad(
        {
          provider: 'fcm',
          serviceAccount: {
            project_id: 'p',
            client_email: 'fcm@p.iam.gserviceaccount.com',
            private_key: rsa,
            token_uri: 'https://169.254.169.254.nip.io/token',
          },
        },
        'push',
      ),
    ).toBe('serviceAccount.token_uri: must be https://oauth2.googleapis.com/token');
    expect((await api(KEY_A, 'PUT', '/v1/channels/sms/credentials', '{"accountSid":')).status).toBe(400);
    for (const channel of ['fax', 'webhook']) {
      const r = await api(KEY_A, 'PUT', `/v1/channels/${channel}/credentials`, smsA);
      expect(r.status).toBe(404);
      expect(r.body.error).toMatch(/email, sms or push/);
    }
    const big = await api(KEY_A, 'PUT', '/v1/channels/sms/credentials', { ...smsA, pad: 'x'.repeat(70_000) });
    expect(big.status).toBe(413);
    expect((await api(KEY_A, 'DELETE', '/v1/channels/sms/credentials')).status).toBe(404);
    // a query service without CDP_SECRETS_KEY stores nothing and says how to set it
    const keyless = createQueryApp({
      redis,
      clickhouse: ch,
      defs: new DefinitionStore(redis, cfg.redis.prefix),
      writeKeys: new WriteKeyStore(redis, cfg.redis.prefix),
      redisPrefix: cfg.redis.prefix,
      resolveAdminKey: (k) => (k === KEY_A ? wsA : undefined),
      unsubscribeSecret: cfg.unsubscribe.secret,
      log: testLogger(cfg),
    });
    const refused = await keyless.request('/v1/channels/sms/credentials', {
      method: 'PUT',
      headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' },
      body: JSON.stringify(smsA),
    });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: string }).error).toMatch(
      /^CDP_SECRETS_KEY is not set: set it to 32 random bytes .*openssl rand -base64 32/,
    );
    // nothing was stored by any of these
    expect(await redis.hlen(credentialKeys(cfg.redis.prefix).hash)).toBe(0);
  });

  it('stores sealed: Redis holds no secret, GET shows fingerprints', async () => {
    const put = await api(KEY_A, 'PUT', '/v1/channels/sms/credentials', smsA);
    expect(put.status, put.text).toBe(201);
    const raw = (await redis.hget(credentialKeys(cfg.redis.prefix).hash, `${wsA}:sms`))!;
    expect(raw).not.toContain(A.token);
    expect(raw).not.toContain(Buffer.from(A.token).toString('base64'));
    expect(raw).not.toContain(A.sid);
    const rec = JSON.parse(raw);
    expect(rec.kid).toBe(parseSecretKey(K1).id);
    expect(Buffer.from(rec.iv, 'base64')).toHaveLength(12);
    const got = await api(KEY_A, 'GET', '/v1/channels/sms/credentials');
    expect(got.body).toEqual({
      channel: 'sms',
      configured: true,
      readable: true,
      source: 'workspace',
      accountSid: A.sid,
      from: A.from,
      secrets: { authToken: fingerprint(A.token) },
      keyId: parseSecretKey(K1).id,
      updatedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      updatedBy: actorOf(KEY_A),
    });
    expect(got.text).not.toContain(A.token);
  });

  it("a send for A goes with A's account while B's goes with the env's, in one batch", async () => {
    const ca = await smsCampaign(KEY_A);
    const cb = await smsCampaign(KEY_B);
    await new Promise((r) => setTimeout(r, 600)); // definitions reach the worker
    const pa = [phone(), phone(), phone()];
    const pb = [phone(), phone(), phone()];
    await changes.send([
      ...pa.map((p, i) => change(wsA, ca.segmentId, `pa${i}`, { plan: 'pro', name: `A${i}`, phone: p })),
      ...pb.map((p, i) => change(wsB, cb.segmentId, `pb${i}`, { plan: 'pro', name: `B${i}`, phone: p })),
    ]);
    await eventually('six messages', () => [...pa, ...pb].every((p) => sentTo(p).length === 1), 20_000);
    for (const p of pa)
      expect(sentTo(p)).toEqual([
        expect.objectContaining({
          account: A.sid,
          authOk: true,
          from: A.from,
          // delivery reports of A's own account come back to the ingest host, which checks
          // them with A's token (ingest/sms-webhooks.ts)
          statusCallback: `https://in.shop.test/v1/webhooks/sms/twilio/${wsA}/status`,
        }),
      ]);
    for (const p of pb)
      expect(sentTo(p)).toEqual([
        expect.objectContaining({ account: ENV.sid, authOk: true, from: ENV.from }),
      ]);
    await eventually(
      'ledger',
      async () => (await ledgerRows(wsA, ca.id)).filter((r) => r.outcome === 'sent').length === 3,
    );
    await eventually(
      'ledger B',
      async () => (await ledgerRows(wsB, cb.id)).filter((r) => r.outcome === 'sent').length === 3,
    );
  });

  it("a change of A's credentials is used within the poll interval", async () => {
    // the provider now knows only the new token: a send with the old one would be a 401
    accounts.set(A.sid, A_TOKEN_2);
    const put = await api(KEY_A, 'PUT', '/v1/channels/sms/credentials', { ...smsA, authToken: A_TOKEN_2 });
    expect(put.status, put.text).toBe(200);
    expect(put.body.secrets.authToken).toBe(fingerprint(A_TOKEN_2));
    await new Promise((r) => setTimeout(r, 2 * POLL_MS + 100));
    const ca = await smsCampaign(KEY_A);
    await new Promise((r) => setTimeout(r, 600));
    const p = phone();
    await changes.send([change(wsA, ca.segmentId, 'pa-rot', { plan: 'pro', name: 'A', phone: p })]);
    await eventually('sent with the new token', () => sentTo(p).length === 1, 20_000);
    expect(sentTo(p)[0]).toMatchObject({ account: A.sid, authOk: true });
  });

  it("email: A's stored SendGrid key while B goes through the deployment's SMTP server", async () => {
    const put = await api(KEY_A, 'PUT', '/v1/channels/email/credentials', {
      provider: 'sendgrid',
      from: 'A Shop <news@a.test>',
      apiKey: SG_A,
    });
    expect(put.status, put.text).toBe(201);
    expect(put.body).toMatchObject({
      provider: 'sendgrid',
      from: 'A Shop <news@a.test>',
      secrets: { apiKey: fingerprint(SG_A) },
    });
    expect(await redis.hget(credentialKeys(cfg.redis.prefix).hash, `${wsA}:email`)).not.toContain(SG_A);
    await new Promise((r) => setTimeout(r, 2 * POLL_MS + 100));
    const email = { channel: 'email', email: { subject: 'Hello {{ traits.name }}', text: 'Hi' } };
    const ca = await campaign(KEY_A, email);
    const cb = await campaign(KEY_B, email);
    await new Promise((r) => setTimeout(r, 600));
    await changes.send([
      change(wsA, ca.segmentId, 'pa-mail', { plan: 'pro', name: 'Ada', email: 'ada@example.test' }),
      change(wsB, cb.segmentId, 'pb-mail', { plan: 'pro', name: 'Bob', email: 'bob@example.test' }),
    ]);
    await eventually(
      'both mails',
      () =>
        sendgrid.sent.some((m) => JSON.stringify(m.body).includes('ada@example.test')) &&
        smtp.mails.some((m) => m.to.includes('bob@example.test')),
      20_000,
    );
    const viaSendgrid = sendgrid.sent.map((m) => m.body as { from: { email: string }; subject: string });
    expect(viaSendgrid).toEqual([
      expect.objectContaining({ from: { email: 'news@a.test', name: 'A Shop' }, subject: 'Hello Ada' }),
    ]);
    expect(sendgrid.refused).toEqual([]);
    expect(smtp.mails.map((m) => [m.from, m.to])).toEqual([['env@deploy.test', ['bob@example.test']]]);
  });

  it('an SMTP record stored before the URL checks: shown, fails final (no retry), stalls nothing, deletable', async () => {
    const h = credentialKeys(cfg.redis.prefix).hash;
    // as an earlier version stored it (the PUT now refuses it): user not valid percent-encoding
    const url = `smtp://%E0%A4%A:${SMTP_PW}@mail.b.test:25`;
    const store = new ChannelCredentialStore(redis, cfg.redis.prefix, cfg.channels.secrets);
    await store.put(
      wsB,
      { channel: 'email', creds: { provider: 'smtp', from: 'b@b.test', url } },
      actorOf(KEY_B),
      new Date(),
    );
    // GET shows it (the user as written), never the password; it used to 500 here
    const got = await api(KEY_B, 'GET', '/v1/channels/email/credentials');
    expect(got.status, got.text).toBe(200);
    expect(got.body).toMatchObject({
      provider: 'smtp',
      readable: true,
      server: 'smtp://%E0%A4%A@mail.b.test:25',
      secrets: { url: fingerprint(url) },
    });
    expect(got.text).not.toContain(SMTP_PW);
    await new Promise((r) => setTimeout(r, 2 * POLL_MS + 100));
    const cb = await campaign(KEY_B, { channel: 'email', email: { subject: 'Hi', text: 'Hi' } });
    const ca = await smsCampaign(KEY_A);
    await new Promise((r) => setTimeout(r, 600));
    // B's unusable email first, then sends for A: the worker goes on past B's
    const p = phone();
    await changes.send([
      change(wsB, cb.segmentId, 'pb-smtp', { plan: 'pro', email: 'bea@example.test' }),
      change(wsA, ca.segmentId, 'pa-after', { plan: 'pro', name: 'A', phone: p }),
    ]);
    const rows = await eventually(
      'B failed',
      async () => {
        const r = await ledgerRows(wsB, cb.id);
        return r.some((x) => x.outcome === 'failed') && r;
      },
      20_000,
    );
    // final at once: no retry of credentials that will never build
    expect(rows.map((r) => [r.outcome, r.reason])).toEqual([
      [
        'failed',
        'permanent: credentials unusable: url: the user name or password is not valid percent-encoding',
      ],
    ]);
    await eventually('A sent after it', () => sentTo(p).length === 1, 20_000);
    expect(smtp.mails.some((m) => m.to.includes('bea@example.test'))).toBe(false); // nor the env's server
    // DELETE removes it and the audit keeps what it was, redacted
    expect((await api(KEY_B, 'DELETE', '/v1/channels/email/credentials')).status).toBe(204);
    expect(await redis.hget(h, `${wsB}:email`)).toBeNull();
    const rs = await ch.query({
      query:
        "SELECT action, before FROM audit_log WHERE workspace_id = {b:String} AND entity_type = 'channel_credentials' AND entity_id = 'email'",
      query_params: { b: wsB },
      format: 'JSONEachRow',
    });
    const audit = (await rs.json()) as Array<{ action: string; before: string }>;
    expect(audit.map((r) => r.action)).toEqual(['delete']);
    expect(JSON.parse(audit[0]!.before)).toMatchObject({ server: 'smtp://%E0%A4%A@mail.b.test:25' });
    expect(audit[0]!.before).not.toContain(SMTP_PW);
  });

  it("B's admin key neither sees nor changes A's credentials", async () => {
    const before = await redis.hget(credentialKeys(cfg.redis.prefix).hash, `${wsA}:sms`);
    expect((await api(KEY_B, 'GET', '/v1/channels/sms/credentials')).body.configured).toBe(false);
    expect((await api(KEY_B, 'DELETE', '/v1/channels/sms/credentials')).status).toBe(404);
    const put = await api(KEY_B, 'PUT', '/v1/channels/sms/credentials', {
      accountSid: B_SID,
      authToken: B_TOKEN,
      from: '+15550000003',
    });
    expect(put.status).toBe(201);
    expect(put.body.accountSid).toBe(B_SID);
    // A's record is untouched and A still reads its own
    expect(await redis.hget(credentialKeys(cfg.redis.prefix).hash, `${wsA}:sms`)).toBe(before);
    expect((await api(KEY_A, 'GET', '/v1/channels/sms/credentials')).body.accountSid).toBe(A.sid);
    expect((await api(KEY_B, 'DELETE', '/v1/channels/sms/credentials')).status).toBe(204);
    expect((await api(KEY_A, 'GET', '/v1/channels/sms/credentials')).body.accountSid).toBe(A.sid);
    expect((await api('not-a-key', 'GET', '/v1/channels/sms/credentials')).status).toBe(401);
  });

  it('a tampered blob, or one copied to another workspace, is refused and not replaced by the env account', async () => {
    const h = credentialKeys(cfg.redis.prefix).hash;
    const good = (await redis.hget(h, `${wsA}:sms`))!;
    // copied to B: the AAD names A
    await redis.hset(h, `${wsB}:sms`, good);
    // A's own, one ciphertext bit flipped
    const rec = JSON.parse(good);
    const ct = Buffer.from(rec.ct, 'base64');
    ct[3]! ^= 0x10;
    await redis.hset(h, `${wsA}:sms`, JSON.stringify({ ...rec, ct: ct.toString('base64') }));
    await redis.incr(credentialKeys(cfg.redis.prefix).rev);
    for (const key of [KEY_A, KEY_B]) {
      const g = await api(key, 'GET', '/v1/channels/sms/credentials');
      expect(g.body).toMatchObject({
        configured: true,
        readable: false,
        error: expect.stringMatching(/^credentials unreadable: authentication failed/),
      });
    }
    await new Promise((r) => setTimeout(r, 2 * POLL_MS + 100));
    const ca = await smsCampaign(KEY_A);
    const cb = await smsCampaign(KEY_B);
    await new Promise((r) => setTimeout(r, 600));
    const [p1, p2] = [phone(), phone()];
    await changes.send([
      change(wsA, ca.segmentId, 'pa-bad', { plan: 'pro', name: 'A', phone: p1 }),
      change(wsB, cb.segmentId, 'pb-bad', { plan: 'pro', name: 'B', phone: p2 }),
    ]);
    for (const [ws, c] of [
      [wsA, ca],
      [wsB, cb],
    ] as const) {
      const rows = await eventually(
        `${ws} failed`,
        async () => {
          const r = await ledgerRows(ws, c.id);
          return r.some((x) => x.outcome === 'failed') && r;
        },
        20_000,
      );
      // retried once (MAX_ATTEMPTS 2), then failed; both say why
      expect(rows.map((r) => r.outcome)).toEqual(['retried', 'failed']);
      expect(rows[0]!.reason).toMatch(/^credentials unreadable: authentication failed/);
      expect(rows[1]!.reason).toMatch(/^gave up after 2 attempts: credentials unreadable/);
    }
    // no message to either number, with any account
    expect(sentTo(p1)).toEqual([]);
    expect(sentTo(p2)).toEqual([]);
    // put right: B's copy removed, A's stored again
    await redis.hdel(h, `${wsB}:sms`);
    expect(
      (await api(KEY_A, 'PUT', '/v1/channels/sms/credentials', { ...smsA, authToken: A_TOKEN_2 })).status,
    ).toBe(200);
  });

  it('rotation: the previous key still opens, `cdp secrets rotate` re-seals with the new one', async () => {
    const h = credentialKeys(cfg.redis.prefix).hash;
    const k1 = parseSecretKey(K1);
    const k2 = parseSecretKey(K2);
    // the worker restarted with the new key, the old one as previous
    await activation.stop();
    const rotated: Config = { ...cfg, channels: { ...cfg.channels, secrets: keyring(k2, k1) } };
    await startWorker(rotated);
    const ca = await smsCampaign(KEY_A);
    await new Promise((r) => setTimeout(r, 600));
    const p = phone();
    await changes.send([change(wsA, ca.segmentId, 'pa-k2', { plan: 'pro', name: 'A', phone: p })]);
    await eventually('sent via the previous key', () => sentTo(p).length === 1, 30_000);
    expect(sentTo(p)[0]).toMatchObject({ account: A.sid, authOk: true });
    expect(JSON.parse((await redis.hget(h, `${wsA}:sms`))!).kid).toBe(k1.id);
    // the new key alone cannot open it yet
    const onlyNew = new ChannelCredentialStore(redis, cfg.redis.prefix, keyring(k2));
    expect((await onlyNew.get(wsA, 'sms'))?.readable).toBe(false);

    const cli = await run(
      process.execPath,
      [join(import.meta.dirname, '../../bin/cdp.js'), 'secrets', 'rotate'],
      {
        env: {
          PATH: process.env.PATH ?? '',
          NODE_ENV: 'test',
          LOG_LEVEL: 'error',
          REDIS_URL: cfg.redis.url,
          CDP_REDIS_PREFIX: cfg.redis.prefix,
          CDP_SECRETS_KEY: K2,
          CDP_SECRETS_KEY_PREVIOUS: K1,
        },
        timeout: 60_000,
      },
    );
    expect(cli.stdout).toMatch(
      new RegExp(`re-encrypted 2 stored channel credentials with key ${k2.id}; 0 already were`),
    );
    const after = JSON.parse((await redis.hget(h, `${wsA}:sms`))!);
    expect(after.kid).toBe(k2.id);
    const s = await onlyNew.get(wsA, 'sms');
    expect(s?.readable && s.credentials.creds).toEqual({ ...smsA, authToken: A_TOKEN_2 });
    // the old key alone no longer opens it; a second run has nothing to do
    expect(
      (await new ChannelCredentialStore(redis, cfg.redis.prefix, keyring(k1)).get(wsA, 'sms'))?.readable,
    ).toBe(false);
    const again = await run(
      process.execPath,
      [join(import.meta.dirname, '../../bin/cdp.js'), 'secrets', 'rotate'],
      {
        env: {
          PATH: process.env.PATH ?? '',
          NODE_ENV: 'test',
          LOG_LEVEL: 'error',
          REDIS_URL: cfg.redis.url,
          CDP_REDIS_PREFIX: cfg.redis.prefix,
          CDP_SECRETS_KEY: K2,
        },
        timeout: 60_000,
      },
    );
    expect(again.stdout).toMatch(/re-encrypted 0 stored channel credentials .*; 2 already were/);
    // A's email credentials (SendGrid) were re-sealed too and still open with the new key alone
    const mail = await onlyNew.get(wsA, 'email');
    expect(mail?.readable && mail.keyId).toBe(k2.id);
  });

  it("DELETE goes back to the env's account; the audit log has every change and no secret", async () => {
    expect((await api(KEY_A, 'DELETE', '/v1/channels/sms/credentials')).status).toBe(204);
    await new Promise((r) => setTimeout(r, 2 * POLL_MS + 100));
    const ca = await smsCampaign(KEY_A);
    await new Promise((r) => setTimeout(r, 600));
    const p = phone();
    await changes.send([change(wsA, ca.segmentId, 'pa-env', { plan: 'pro', name: 'A', phone: p })]);
    await eventually('sent with the env account', () => sentTo(p).length === 1, 30_000);
    expect(sentTo(p)[0]).toMatchObject({ account: ENV.sid, authOk: true, from: ENV.from });

    const rs = await ch.query({
      query:
        "SELECT workspace_id, actor, action, entity_id, before, after FROM audit_log WHERE workspace_id IN ({a:String}, {b:String}) AND entity_type = 'channel_credentials' AND entity_id = 'sms' ORDER BY at",
      query_params: { a: wsA, b: wsB },
      format: 'JSONEachRow',
    });
    const rows = (await rs.json()) as Array<Record<string, string>>;
    const mine = rows.filter((r) => r.workspace_id === wsA);
    // create, update (new token), update (put right after the tampering), delete
    expect(mine.map((r) => r.action)).toEqual(['create', 'update', 'update', 'delete']);
    expect(new Set(mine.map((r) => r.actor))).toEqual(new Set([actorOf(KEY_A)]));
    expect(JSON.parse(mine[0]!.after!).secrets.authToken).toBe(fingerprint(A.token));
    expect(JSON.parse(mine[1]!.before!).secrets.authToken).toBe(fingerprint(A.token));
    expect(JSON.parse(mine[1]!.after!).secrets.authToken).toBe(fingerprint(A_TOKEN_2));
    // the update after tampering records that what it replaced was unreadable
    expect(JSON.parse(mine[2]!.before!)).toMatchObject({ readable: false });
    expect(mine[3]!.after).toBe('');
    expect(rows.filter((r) => r.workspace_id === wsB).map((r) => [r.action, r.actor])).toEqual([
      ['create', actorOf(KEY_B)],
      ['delete', actorOf(KEY_B)],
    ]);
    const text = JSON.stringify(rows);
    for (const s of SECRETS) expect(text).not.toContain(s);
  });
});
