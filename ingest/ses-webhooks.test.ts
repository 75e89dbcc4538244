// Amazon SES bounce, complaint and delivery notifications through Amazon SNS, in the ingest
// app against the real Redis and a local server that plays SNS: it serves the signing
// certificates (RSA keys and self-signed X.509 certificates made here with openssl) and takes
// the SubscribeURL GETs; messages are signed as SNS signs them (the documented canonical
// string, SignatureVersion 1 SHA1withRSA and 2 SHA256withRSA). Proves: a notification
// suppresses, audits and tracks once, and its ledger row is produced once, even delivered
// twice; a tampered, wrongly signed, foreign-topic, foreign-certificate-host, stale or
// unsigned message is refused and changes nothing; a subscription is confirmed once and a
// forged one not at all; soft bounces call the hook once; the rows land in activation_ledger
// through the ledger sink and the campaign's stats and bi_sends count them right; tags come
// back from SendGrid and Postmark events too.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, type KeyObject, sign } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLedgerSink } from '../activation/ledger-sink.ts';
import { campaignStats } from '../query/routes/campaign-stats.ts';
import { type ClickHouseClient, createClickHouse } from '../runtime/clickhouse.ts';
import type { Batch, OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { createLogger, type Logger } from '../runtime/log.ts';
import { auditDueKey, type QueuedAudit } from '../schemas/audit-queue.ts';
import { emailTagSecret, emailTagSignature, sesTagValue } from '../schemas/email-tags.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import { migrate } from '../schemas/migrations.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { ledgerRow } from '../test/fixtures.ts';
import { uniqueId } from '../test/harness.ts';
import { createIngestApp } from './app.ts';
import {
  type EmailLedgerRow,
  postmarkEvent,
  SNS_MAX_AGE_MS,
  type SoftBounceEvent,
  sendgridEvent,
} from './email-webhooks.ts';
import { certCacheKey, type SnsMessage, snsCertCache, snsStringToSign, snsUrlAllowed } from './ses-sns.ts';

let redis: Redis;
const prefix = uniqueId('sesw');
const WS = uniqueId('ws_');
// another tenant of the deployment
const WS2 = uniqueId('ws_');
const TAG_SECRET = emailTagSecret('test-unsubscribe-secret-0123456789');
/** What activation signs a send's tags with (cdp_sig). */
const tagSig = (sendKey: string, campaignId: string, profileId: string, ws = WS, secret = TAG_SECRET) =>
  emailTagSignature(secret, { workspaceId: ws, sendKey, campaignId, profileId });
const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:ses-events';
const OTHER_TOPIC = 'arn:aws:sns:eu-west-1:999999999999:someone-elses';
const sent: Array<{ topic: string; m: OutgoingMessage }> = [];
const producer: Producer = {
  connect: async () => {},
  disconnect: async () => {},
  send: async (topic, messages) => void sent.push(...messages.map((m) => ({ topic, m }))),
};
const softBounces: SoftBounceEvent[] = [];
// the clock the certificates made below are valid at (for two days)
const START = Math.floor(Date.now() / 1000) * 1000;
let NOW = START;

// ---- a local SNS: certificates and SubscribeURL --------------------------------------------

function keyAndCert(dir: string, name: string): { key: KeyObject; pem: string } {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.pem`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=sns.amazonaws.com',
    ],
    { stdio: 'ignore' },
  );
  return { key: createPrivateKey(readFileSync(keyFile)), pem: readFileSync(certFile, 'utf8') };
}

let server: Server;
let origin = '';
const hits: string[] = [];
let good: { key: KeyObject; pem: string };
let other: { key: KeyObject; pem: string };

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  const dir = mkdtempSync(join(tmpdir(), 'cdp-sns-'));
  good = keyAndCert(dir, 'good');
  other = keyAndCert(dir, 'other');
  server = createServer((req, res) => {
    hits.push(req.url ?? '');
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === certPath('good')) res.end(good.pem);
    else if (path === certPath('other')) res.end(other.pem);
    else if (path === certPath('huge')) res.end('x'.repeat(64 * 1024));
    // any number of other real certificates (a flood of them in the cache tests)
    else if (/^\/SimpleNotificationService-ff[0-9a-f]+\.pem$/.test(path)) res.end(other.pem);
    else if (path === '/confirm') {
      res.setHeader('content-type', 'text/xml');
      res.end(
        '<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>x</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>',
      );
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // a known person for the tracks: bounce@ is user u-7
  const k = workspaceKeys(prefix, WS);
  await redis.set(k.identity('email', 'bounce@shop.test'), 'p-7');
  await redis.sadd(k.profileIdentities('p-7'), 'user:u-7', 'email:bounce@shop.test');
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  const wsKeys = await redis.keys(`*${WS}*`);
  if (wsKeys.length) await redis.del(...wsKeys);
  redis.disconnect();
  await new Promise((r) => server.close(r));
});

// certificate paths as SNS names them: SimpleNotificationService-<hex>.pem
const CERT_HEX: Record<string, string> = { good: '600d', other: '07e4', huge: 'b16b16' };
const certPath = (name: string) => `/SimpleNotificationService-${CERT_HEX[name] ?? name}.pem`;
const certUrl = (name = 'good') => `${origin}${certPath(name)}`;

const PM = { user: 'pm-hook', password: 'a long random password' };
const makeApp = (
  ses: { topicArns: string[]; endpoint?: string } | null = { topicArns: [TOPIC] },
  onSoftBounce: (ev: SoftBounceEvent) => void | Promise<void> = (ev) => void softBounces.push(ev),
  log: Logger = createLogger({ level: 'silent', name: 'test' }),
) =>
  createIngestApp({
    producer,
    eventsTopic: 'events',
    resolveWriteKey: () => undefined,
    log: createLogger({ level: 'silent', name: 'test' }),
    emailWebhooks: {
      producer,
      eventsTopic: 'events',
      redis,
      redisPrefix: prefix,
      log,
      now: () => new Date(NOW),
      produceTimeoutMs: 2000,
      workspaceExists: (ws) => ws === WS || ws === WS2,
      ses: ses ? { endpoint: origin, fetchTimeoutMs: 2000, ...ses } : undefined,
      ledgerTopic: 'ledger',
      tagSecret: TAG_SECRET,
      onSoftBounce,
      postmark: PM,
    },
  });
// one app (one certificate cache) for most of the file, as in a running service
let app: ReturnType<typeof makeApp>;

/** A message as SNS signs it. */
function snsMessage(
  fields: Partial<SnsMessage> & { Type: string; Message: string; MessageId: string },
  opts: { version?: '1' | '2'; key?: KeyObject; cert?: string } = {},
): SnsMessage {
  const m = {
    TopicArn: TOPIC,
    Timestamp: new Date(NOW).toISOString(),
    SignatureVersion: opts.version ?? '1',
    SigningCertURL: opts.cert ?? certUrl(),
    Signature: '',
    ...fields,
  } as SnsMessage;
  const hash = m.SignatureVersion === '1' ? 'sha1' : 'sha256';
  m.Signature = sign(hash, Buffer.from(snsStringToSign(m)), opts.key ?? good.key).toString('base64');
  return m;
}
const post = (body: unknown, ws = WS, a = app) =>
  a.request(`/v1/webhooks/email/ses/${ws}`, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    // SNS posts JSON as text/plain
    headers: { 'content-type': 'text/plain; charset=UTF-8', 'x-amz-sns-message-type': 'Notification' },
  });

const k = () => workspaceKeys(prefix, WS);
const suppressed = async () => (await redis.smembers(k().suppressions)).sort();
const queuedAudit = async () =>
  (await redis.zrange(auditDueKey(prefix), 0, -1)).map((m) => JSON.parse(m) as QueuedAudit);
const ledger = () =>
  sent.filter((s) => s.topic === 'ledger').map((s) => JSON.parse(s.m.value as string) as EmailLedgerRow);
const tracks = () =>
  sent.filter((s) => s.topic === 'events').map((s) => JSON.parse(s.m.value as string) as NormalizedEvent);
/** Everything a refused request could have changed. */
const state = async () => ({
  suppressed: await suppressed(),
  audit: (await queuedAudit()).length,
  produced: sent.length,
  soft: softBounces.length,
  confirms: hits.filter((h) => h.startsWith('/confirm')).length,
});

const CAMPAIGN = 'cmp_spring';
const mailOf = (sendKey: string, profile: string, messageId: string) => ({
  timestamp: new Date(NOW - 60_000).toISOString(),
  messageId,
  source: 'news@shop.test',
  destination: ['bounce@shop.test'],
  headers: [{ name: 'X-CDP-Send-Key', value: sendKey }],
  tags: {
    'ses:configuration-set': ['cdp'],
    cdp_send_key: [sendKey],
    cdp_campaign: [CAMPAIGN],
    cdp_profile: [profile],
    cdp_ws: [WS],
    cdp_sig: [tagSig(sendKey, CAMPAIGN, profile)],
  },
});

const hardBounce = () =>
  JSON.stringify({
    notificationType: 'Bounce',
    bounce: {
      bounceType: 'Permanent',
      bounceSubType: 'General',
      bouncedRecipients: [
        {
          emailAddress: 'Bounce@Shop.test',
          action: 'failed',
          status: '5.1.1',
          diagnosticCode: 'smtp; 550 5.1.1 user unknown',
        },
        { emailAddress: '"Other" <gone@shop.test>', action: 'failed', status: '5.1.1' },
      ],
      timestamp: new Date(NOW - 30_000).toISOString(),
      feedbackId: 'fb-1',
    },
    mail: mailOf('msg_hard', 'p-7', 'ses-m-1'),
  });

describe('SNS signature, topic, certificate and time checks', () => {
  beforeAll(() => {
    app = makeApp();
  });

  it('the default certificate host rule: https on sns.<region>.amazonaws.com(.cn) only', () => {
    expect(snsUrlAllowed('https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem')).toBe(true);
    expect(snsUrlAllowed('https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-a.pem')).toBe(
      true,
    );
    expect(snsUrlAllowed('http://sns.eu-west-1.amazonaws.com/x.pem')).toBe(false);
    expect(snsUrlAllowed('https://sns.eu-west-1.amazonaws.com.evil.test/x.pem')).toBe(false);
    expect(snsUrlAllowed('https://evil.test/sns.eu-west-1.amazonaws.com/x.pem')).toBe(false);
    expect(snsUrlAllowed('https://sns.eu-west-1.amazonaws.com:8443/x.pem')).toBe(false);
    expect(snsUrlAllowed('https://user@sns.eu-west-1.amazonaws.com/x.pem')).toBe(false);
    expect(snsUrlAllowed('https://s3.amazonaws.com/x.pem')).toBe(false);
    expect(snsUrlAllowed('not a url')).toBe(false);
    // S3 bucket hosts (anyone can put a file there) are not region-shaped
    for (const host of [
      'sns.s3.amazonaws.com',
      'sns.s3-accelerate.amazonaws.com',
      'sns.s3-us-west-2.amazonaws.com',
    ])
      expect(snsUrlAllowed(`https://${host}/SimpleNotificationService-a.pem`), host).toBe(false);
    for (const host of [
      'sns.us-gov-west-1.amazonaws.com',
      'sns.us-isob-east-1.amazonaws.com',
      'sns.ap-southeast-2.amazonaws.com',
    ])
      expect(snsUrlAllowed(`https://${host}/SimpleNotificationService-0f.pem`), host).toBe(true);
    // a certificate's path is SNS's own: no other file, no query, no fragment
    const sns = 'https://sns.eu-west-1.amazonaws.com';
    for (const path of [
      '/x.pem',
      '/SimpleNotificationService-zz.pem',
      '/SimpleNotificationService-a.pem?x=1',
      '/SimpleNotificationService-a.pem?',
      '/SimpleNotificationService-a.pem#f',
      '/dir/SimpleNotificationService-a.pem',
    ])
      expect(snsUrlAllowed(`${sns}${path}`), path).toBe(false);
    // a SubscribeURL keeps its path and query, the host rule all the same
    expect(snsUrlAllowed(`${sns}/?Action=ConfirmSubscription&Token=t`, undefined, 'subscribe')).toBe(true);
    expect(
      snsUrlAllowed(
        'https://sns.s3.amazonaws.com/?Action=ConfirmSubscription&Token=t',
        undefined,
        'subscribe',
      ),
    ).toBe(false);
    // the override is one origin, and plain http only on loopback
    expect(snsUrlAllowed(certUrl('good'), origin)).toBe(true);
    expect(snsUrlAllowed(`${origin}/x.pem`, origin)).toBe(false);
    expect(snsUrlAllowed('https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem', origin)).toBe(
      false,
    );
    expect(snsUrlAllowed('http://10.0.0.5/SimpleNotificationService-a.pem', 'http://10.0.0.5')).toBe(false);
    // cache keys: host lowercased, no query or fragment
    expect(certCacheKey('https://SNS.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem?x=1#f')).toBe(
      'https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem',
    );
  });

  it('certificate fetches are bounded per client address: one that spent its budget does not stop another', async () => {
    const certs = snsCertCache({
      timeoutMs: 2000,
      now: () => new Date(NOW),
      fetchesPerMinute: 2,
      globalFetchesPerMinute: 4,
    });
    const before = hits.length;
    // a flood from one address naming URLs nobody serves: two fetched (404), then it waits
    const errs: unknown[] = [];
    for (let i = 0; i < 6; i++) errs.push(await certs.key(certUrl(`dead${i}`), 'attacker').catch((e) => e));
    expect(errs.map((e) => (e as { retriable?: boolean }).retriable)).toEqual([
      false,
      false,
      true,
      true,
      true,
      true,
    ]);
    // SNS, from its own address: fetched (a certificate after a rotation)
    expect(await certs.key(certUrl('good'), 'sns')).toBeDefined();
    // cached: the same URL with a query or an upper-case host needs no fetch
    expect(await certs.key(`${certUrl('good')}?again`, 'sns')).toBeDefined();
    expect(hits.length - before).toBe(3);
    // the global bound still holds across addresses
    expect(await certs.key(certUrl('other'), 'sns-2')).toBeDefined();
    await expect(certs.key(certUrl('dead9'), 'sns-3')).rejects.toMatchObject({ retriable: true });
  });

  it('a certificate that verified a message stays: a flood of other certificates neither evicts it nor needs its fetch', async () => {
    const goodHits = () => hits.filter((h) => h === certPath('good')).length;
    const flood = async (certs: ReturnType<typeof snsCertCache>) => {
      // more URLs than the cache holds, each a real certificate (not the one messages are signed with)
      for (let i = 0; i < 80; i++)
        await certs.key(certUrl(`ff${i.toString(16).padStart(4, '0')}`), 'attacker');
    };
    const pinned = snsCertCache({ timeoutMs: 2000, now: () => new Date(NOW), fetchesPerMinute: 1000 });
    let before = goodHits();
    await pinned.key(certUrl('good'), 'sns');
    pinned.verified(certUrl('good'));
    await flood(pinned);
    expect(pinned.size()).toBeLessThanOrEqual(64);
    expect(pinned.verifiedSize()).toBe(1);
    await pinned.key(certUrl('good'), 'sns');
    expect(goodHits() - before).toBe(1);
    // the same without verified(): the flood evicts it and it is fetched again
    const plain = snsCertCache({ timeoutMs: 2000, now: () => new Date(NOW), fetchesPerMinute: 1000 });
    before = goodHits();
    await plain.key(certUrl('good'), 'sns');
    await flood(plain);
    await plain.key(certUrl('good'), 'sns');
    expect(goodHits() - before).toBe(2);
  });

  it('a flood of messages naming bogus certificate URLs does not stop one signed with the real certificate', async () => {
    const a = makeApp();
    const sendEvent = JSON.stringify({ eventType: 'Send', mail: mailOf('msg_flood', 'p-7', 'ses-m-f') });
    const real = (id: string) => snsMessage({ Type: 'Notification', MessageId: id, Message: sendEvent });
    expect((await post(real('m-flood-0'), WS, a)).status).toBe(200);
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const bogus = snsMessage(
        { Type: 'Notification', MessageId: `m-bogus-${i}`, Message: hardBounce() },
        { cert: certUrl(`dead${i.toString(16)}`) },
      );
      statuses.push((await post(bogus, WS, a)).status);
    }
    // 404s while the budget lasts, then 503s: the budget is spent
    expect(new Set(statuses)).toEqual(new Set([403, 503]));
    expect((await post(real('m-flood-1'), WS, a)).status).toBe(200);
    expect(await suppressed()).toEqual([]);
  });

  it('refuses tampered, wrongly signed, foreign-topic, foreign-host, stale and unsigned messages; changes nothing', async () => {
    const before = await state();
    const valid = snsMessage({ Type: 'Notification', MessageId: 'm-refused', Message: hardBounce() });

    const tampered = { ...valid, Message: valid.Message.replace('Permanent', 'Transient') };
    const r1 = await post(tampered);
    expect([r1.status, await r1.json()]).toEqual([403, { success: false, error: 'invalid signature' }]);

    // signed with another key, pointing at the good certificate
    const wrongKey = snsMessage(
      { Type: 'Notification', MessageId: 'm-wk', Message: hardBounce() },
      { key: other.key },
    );
    expect((await post(wrongKey)).status).toBe(403);
    // validly signed by SNS, but from somebody else's topic
    const foreign = snsMessage({
      Type: 'Notification',
      MessageId: 'm-ft',
      Message: hardBounce(),
      TopicArn: OTHER_TOPIC,
    });
    const r3 = await post(foreign);
    expect([r3.status, await r3.json()]).toEqual([403, { success: false, error: 'topic not allowed' }]);
    // a certificate on a host that is not SNS
    for (const cert of [
      'https://sns.eu-west-1.amazonaws.com.evil.test/SimpleNotificationService-good.pem',
      'http://127.0.0.2:1/SimpleNotificationService-good.pem',
    ]) {
      const r = await post(
        snsMessage({ Type: 'Notification', MessageId: 'm-ch', Message: hardBounce() }, { cert }),
      );
      expect([r.status, await r.json()]).toEqual([
        403,
        { success: false, error: 'signing certificate URL not allowed' },
      ]);
    }
    // an old message (a replay): beyond the 65 minutes SNS can still be retrying
    const stale = snsMessage({
      Type: 'Notification',
      MessageId: 'm-old',
      Message: hardBounce(),
      Timestamp: new Date(NOW - SNS_MAX_AGE_MS - 1000).toISOString(),
    });
    const r5 = await post(stale);
    expect([r5.status, await r5.json()]).toEqual([403, { success: false, error: 'stale message timestamp' }]);
    const ahead = snsMessage({
      Type: 'Notification',
      MessageId: 'm-ahead',
      Message: hardBounce(),
      Timestamp: new Date(NOW + 10 * 60_000).toISOString(),
    });
    expect((await post(ahead)).status).toBe(403);
    // unsigned, unknown signature version, a Signature that is not base64 of anything
    const { Signature: _s, ...unsigned } = valid;
    expect((await post(unsigned)).status).toBe(403);
    expect((await post({ ...valid, SignatureVersion: '3' })).status).toBe(403);
    expect((await post({ ...valid, Signature: '!!!' })).status).toBe(403);
    // a certificate over the size cap
    const huge = snsMessage(
      { Type: 'Notification', MessageId: 'm-huge', Message: hardBounce() },
      { cert: certUrl('huge') },
    );
    const r6 = await post(huge);
    expect([r6.status, await r6.json()]).toEqual([
      403,
      { success: false, error: 'invalid signing certificate' },
    ]);
    // a URL that gave no usable certificate is not asked again for a minute
    expect((await post(huge)).status).toBe(403);
    expect(hits.filter((h) => h === certPath('huge'))).toHaveLength(1);
    // a certificate past its validity (made for two days; the clock three days on)
    NOW += 3 * 24 * 3600 * 1000;
    const late = snsMessage({ Type: 'Notification', MessageId: 'm-late', Message: hardBounce() });
    const r7 = await post(late, WS, makeApp());
    NOW -= 3 * 24 * 3600 * 1000;
    expect([r7.status, await r7.json()]).toEqual([
      403,
      { success: false, error: 'invalid signing certificate' },
    ]);
    // not configured (no topics): everything refused
    expect((await post(valid, WS, makeApp({ topicArns: [] }))).status).toBe(403);
    expect((await post(valid, WS, makeApp(null))).status).toBe(403);
    // malformed JSON is a 400, an unknown workspace a 404 after the checks
    expect((await post('{"Type":')).status).toBe(400);
    expect((await post(valid, 'ws_nobody')).status).toBe(404);

    expect(await state()).toEqual(before);
  });
});

describe('SES notifications', () => {
  it('a hard bounce suppresses, audits, tracks and writes its ledger rows once, even delivered twice', async () => {
    const msg = snsMessage({ Type: 'Notification', MessageId: 'm-hard', Message: hardBounce() });
    const res = await post(msg);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ success: true, processed: 2, suppressed: 2, skipped: 0 });
    expect(await suppressed()).toEqual(['email:bounce@shop.test', 'email:gone@shop.test']);
    const audit = await queuedAudit();
    expect(audit.map((a) => [a.entityId, a.actor, a.entityType])).toEqual(
      expect.arrayContaining([
        ['email:bounce@shop.test', 'webhook:ses', 'suppression'],
        ['email:gone@shop.test', 'webhook:ses', 'suppression'],
      ]),
    );
    const why = JSON.parse((await redis.hget(`${k().suppressions}:why`, 'email:bounce@shop.test'))!);
    expect(why).toMatchObject({
      provider: 'ses',
      detail: 'Permanent/General',
      eventId: 'm-hard:bounce@shop.test',
      sendKey: 'msg_hard',
    });
    // bounce@ is u-7: one track; gone@ is nobody's
    expect(
      tracks().map((e) => [e.event, e.userId, e.properties.bounceType, e.properties.campaignId]),
    ).toEqual([['Email Bounced', 'u-7', 'hard', CAMPAIGN]]);
    const rows = ledger();
    expect(rows).toHaveLength(2);
    expect(rows[0]).toEqual({
      workspace_id: WS,
      at: NOW - 30_000,
      send_key: 'msg_hard',
      campaign_id: CAMPAIGN,
      campaign_version: 0,
      segment_id: '',
      segment_version: 0,
      profile_id: 'p-7',
      epoch: 0,
      channel: 'email',
      outcome: 'bounced',
      reason: 'ses:Permanent/General',
      attempt: 0,
      status_code: 0,
      latency_ms: 0,
      provider_ms: 0,
      not_before: null,
      provider_id: 'ses-m-1',
    });
    expect(sent.find((s) => s.topic === 'ledger')!.m.key).toBe(`${WS}:${CAMPAIGN}`);

    // SNS delivers the same message again (same MessageId, signature and time), later
    const before = { ...(await state()), trackIds: tracks().map((e) => e.messageId) };
    NOW += 20_000;
    const again = await post(msg);
    expect(await again.json()).toEqual({ success: true, processed: 2, suppressed: 0, skipped: 0 });
    expect(await suppressed()).toEqual(before.suppressed);
    expect((await queuedAudit()).length).toBe(before.audit);
    expect(ledger()).toHaveLength(2); // no second row
    // the track is produced again with the same messageId: the processor drops it
    expect(tracks().map((e) => e.messageId)).toEqual([...before.trackIds, ...before.trackIds]);
  });

  it('a complaint (SignatureVersion 2) suppresses and is a complained row', async () => {
    const complaint = JSON.stringify({
      notificationType: 'Complaint',
      complaint: {
        complainedRecipients: [{ emailAddress: 'angry@shop.test' }],
        timestamp: new Date(NOW - 5000).toISOString(),
        feedbackId: 'fb-2',
        complaintFeedbackType: 'abuse',
      },
      mail: mailOf('msg_angry', 'p-9', 'ses-m-2'),
    });
    const n = ledger().length;
    const res = await post(
      snsMessage(
        {
          Type: 'Notification',
          MessageId: 'm-cmp',
          Message: complaint,
          Subject: 'Amazon SES Email Event Notification',
        },
        { version: '2' },
      ),
    );
    expect(await res.json()).toMatchObject({ processed: 1, suppressed: 1 });
    expect(await redis.sismember(k().suppressions, 'email:angry@shop.test')).toBe(1);
    expect(ledger().slice(n)).toEqual([
      expect.objectContaining({
        outcome: 'complained',
        reason: 'ses:Complaint/abuse',
        send_key: 'msg_angry',
        profile_id: 'p-9',
      }),
    ]);
  });

  it('transient and undetermined bounces are soft: no suppression, the hook once per event, a soft_bounced row', async () => {
    const soft = (type: string, to: string) =>
      JSON.stringify({
        eventType: 'Bounce',
        bounce: {
          bounceType: type,
          bounceSubType: type === 'Transient' ? 'MailboxFull' : 'Undetermined',
          bouncedRecipients: [
            { emailAddress: to, status: '4.2.2', diagnosticCode: '452 4.2.2 mailbox full' },
          ],
          timestamp: new Date(NOW - 1000).toISOString(),
        },
        mail: mailOf('msg_soft', 'p-7', 'ses-m-3'),
      });
    const n = ledger().length;
    const m1 = snsMessage(
      { Type: 'Notification', MessageId: 'm-soft-1', Message: soft('Transient', 'full@shop.test') },
      { version: '2' },
    );
    const m2 = snsMessage({
      Type: 'Notification',
      MessageId: 'm-soft-2',
      Message: soft('Undetermined', 'maybe@shop.test'),
    });
    for (const m of [m1, m2, m1, m2]) expect((await post(m)).status).toBe(200);
    expect(await redis.sismember(k().suppressions, 'email:full@shop.test')).toBe(0);
    expect(await redis.sismember(k().suppressions, 'email:maybe@shop.test')).toBe(0);
    expect(softBounces).toEqual([
      {
        workspaceId: WS,
        provider: 'ses',
        address: 'full@shop.test',
        sendKey: 'msg_soft',
        campaignId: CAMPAIGN,
        profileId: 'p-7',
        eventId: 'ses:m-soft-1:full@shop.test',
        at: new Date(NOW - 1000),
        reason: 'Transient/MailboxFull: 452 4.2.2 mailbox full',
      },
      expect.objectContaining({
        address: 'maybe@shop.test',
        reason: expect.stringMatching(/^Undetermined\/Undetermined/),
      }),
    ]);
    expect(
      ledger()
        .slice(n)
        .map((r) => [r.outcome, r.reason]),
    ).toEqual([
      ['soft_bounced', 'ses:Transient/MailboxFull'],
      ['soft_bounced', 'ses:Undetermined/Undetermined'],
    ]);
  });

  it('an event-publishing Delivery with an encoded campaign tag is a delivered row of that campaign; DeliveryDelay and Send are ignored', async () => {
    const odd = 'Summer sale ✓';
    const delivery = JSON.stringify({
      eventType: 'Delivery',
      mail: {
        ...mailOf('msg_ok', 'p-7', 'ses-m-4'),
        tags: {
          cdp_send_key: ['msg_ok'],
          cdp_campaign: [sesTagValue(odd)],
          cdp_profile: ['p-7'],
          cdp_ws: [WS],
          cdp_sig: [tagSig('msg_ok', odd, 'p-7')],
        },
      },
      delivery: {
        timestamp: new Date(NOW - 2000).toISOString(),
        recipients: ['bounce@shop.test'],
        smtpResponse: '250 2.6.0 ok',
      },
    });
    const n = ledger().length;
    const t = tracks().length;
    expect(
      await (await post(snsMessage({ Type: 'Notification', MessageId: 'm-del', Message: delivery }))).json(),
    ).toMatchObject({
      processed: 1,
      suppressed: 0,
    });
    expect(ledger().slice(n)).toEqual([
      expect.objectContaining({
        outcome: 'delivered',
        campaign_id: odd,
        reason: 'ses:Delivery',
        provider_id: 'ses-m-4',
      }),
    ]);
    expect(
      tracks()
        .slice(t)
        .map((e) => e.event),
    ).toEqual(['Email Delivered']);
    for (const [i, eventType] of ['DeliveryDelay', 'Send', 'Reject', 'Open'].entries()) {
      const other = JSON.stringify({ eventType, mail: mailOf('msg_ok', 'p-7', 'ses-m-4') });
      const r = await post(snsMessage({ Type: 'Notification', MessageId: `m-ign-${i}`, Message: other }));
      expect(r.status).toBe(200);
    }
    expect(ledger()).toHaveLength(n + 1);
    expect(tracks()).toHaveLength(t + 1);
    // a signed message on our topic that is not an SES notification (a test publish)
    const r = await post(snsMessage({ Type: 'Notification', MessageId: 'm-text', Message: 'hello' }));
    expect(await r.json()).toEqual({ success: true, processed: 0, suppressed: 0, skipped: 1 });
  });

  it('fetches each signing certificate once per service, however many messages', async () => {
    const a = makeApp(); // a service of its own: nothing cached yet
    const before = hits.filter((h) => h === certPath('good')).length;
    const sendEvent = JSON.stringify({ eventType: 'Send', mail: mailOf('msg_once', 'p-7', 'ses-m-o') });
    for (let i = 0; i < 5; i++) {
      const m = snsMessage({ Type: 'Notification', MessageId: `m-once-${i}`, Message: sendEvent });
      expect((await post(m, WS, a)).status).toBe(200);
    }
    expect(hits.filter((h) => h === certPath('good')).length - before).toBe(1);
  });
});

describe('SNS subscription confirmation', () => {
  const confirmation = (id: string, subscribe: string, opts: { key?: KeyObject } = {}) =>
    snsMessage(
      {
        Type: 'SubscriptionConfirmation',
        MessageId: id,
        Token: `tok-${id}`,
        SubscribeURL: subscribe,
        Message: `You have chosen to subscribe to the topic ${TOPIC}.`,
      },
      opts,
    );

  it('a forged confirmation, or one whose SubscribeURL is elsewhere, is refused and nobody is called', async () => {
    const before = await state();
    const forged = confirmation('c-forged', `${origin}/confirm?Token=forged`, { key: other.key });
    expect((await post(forged)).status).toBe(403);
    const elsewhere = confirmation('c-else', 'https://evil.test/confirm?Token=x');
    const r = await post(elsewhere);
    expect([r.status, await r.json()]).toEqual([403, { success: false, error: 'SubscribeURL not allowed' }]);
    const foreign = snsMessage({
      Type: 'SubscriptionConfirmation',
      MessageId: 'c-ft',
      Token: 't',
      SubscribeURL: `${origin}/confirm?Token=ft`,
      Message: 'x',
      TopicArn: OTHER_TOPIC,
    });
    expect((await post(foreign)).status).toBe(403);
    expect(await state()).toEqual(before);
  });

  it('a valid one is confirmed once (the GET seen), audited, and a redelivery does not confirm again', async () => {
    const msg = confirmation(
      'c-1',
      `${origin}/confirm?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(TOPIC)}&Token=tok-c-1`,
    );
    const res = await post(msg);
    expect([res.status, await res.json()]).toEqual([200, { success: true, confirmed: true }]);
    expect(hits.filter((h) => h.startsWith('/confirm'))).toEqual([
      `/confirm?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(TOPIC)}&Token=tok-c-1`,
    ]);
    const again = await post(msg);
    expect(await again.json()).toEqual({ success: true, confirmed: true, already: true });
    expect(hits.filter((h) => h.startsWith('/confirm'))).toHaveLength(1);
    const audit = (await queuedAudit()).filter((a) => a.entityType === 'sns_subscription');
    expect(audit).toEqual([
      expect.objectContaining({ workspaceId: WS, actor: 'webhook:ses', entityId: TOPIC, action: 'create' }),
    ]);
  });

  it('a SubscribeURL that does not answer 200 is a 503 (SNS retries) and is tried again then', async () => {
    const msg = confirmation('c-2', `${origin}/nothing-here?Token=tok-c-2`);
    const r = await post(msg);
    expect(r.status).toBe(503);
    expect((await post(msg)).status).toBe(503);
    expect(hits.filter((h) => h.startsWith('/nothing-here'))).toHaveLength(2);
  });
});

describe('the ledger rows in ClickHouse', () => {
  it('through the ledger sink: provider rows never count as sends, delivery counts them once, bi_sends shows each once', async () => {
    const ch: ClickHouseClient = await createClickHouse({
      kind: 'chdb',
      path: mkdtempSync(join(tmpdir(), 'cdp-sesl-')),
    });
    await migrate(ch);
    const rows = sent.filter((s) => s.topic === 'ledger').map((s) => s.m.value as string);
    // the send itself, and every provider row twice (a crash after produce, before the marker)
    const sends = ['msg_hard', 'msg_angry', 'msg_soft'].map((sk) =>
      JSON.stringify(
        ledgerRow({
          workspace_id: WS,
          at: NOW - 60_000,
          send_key: sk,
          campaign_id: CAMPAIGN,
          profile_id: 'p-7',
          channel: 'email',
          provider_id: 'ses-m-1',
        }),
      ),
    );
    const values = [...sends, ...rows, ...rows];
    const batch: Batch = {
      topic: 'ledger',
      partition: 0,
      messages: values.map((v, i) => ({
        topic: 'ledger',
        partition: 0,
        offset: String(i),
        key: null,
        value: Buffer.from(v),
        headers: {},
        timestamp: 0,
      })),
    };
    const sink = createLedgerSink({
      clickhouse: ch,
      log: createLogger({ level: 'silent', name: 'test' }),
      producer,
      deadLetterTopic: 'dlq',
      flushMs: 10,
    });
    await sink.handler(batch, { heartbeat: async () => {}, isActive: () => true });
    expect(sink.stats.deadLettered).toBe(0);

    const stats = await campaignStats(ch, WS, CAMPAIGN);
    // the provider's rows never count as sends; each is counted once, apart
    expect([stats.sent, stats.failed, stats.suppressed.total]).toEqual([3, 0, 0]);
    expect(stats.delivery).toEqual({
      delivered: 0,
      bounced: 1,
      softBounced: 1,
      complained: 1,
      deliveryRate: 0,
      bounceRate: 1 / 3,
      complaintRate: 1 / 3,
    });
    const other = await campaignStats(ch, WS, 'Summer sale ✓');
    expect([other.sent, other.delivery.delivered, other.delivery.deliveryRate]).toEqual([0, 1, null]);
    const rs = await ch.query({
      query: `SELECT send_key, outcome, reason, toUnixTimestamp64Milli(at) AS at_ms, provider_id FROM bi_sends
              WHERE workspace_id = {ws:String} AND campaign_id = {cid:String} ORDER BY send_key, outcome, reason`,
      query_params: { ws: WS, cid: CAMPAIGN },
      format: 'JSONEachRow',
    });
    const seen = await rs.json<{
      send_key: string;
      outcome: string;
      reason: string;
      at_ms: string;
      provider_id: string;
    }>();
    expect(seen.map((r) => [r.send_key, r.outcome, r.reason])).toEqual([
      ['msg_angry', 'complained', 'ses:Complaint/abuse'],
      ['msg_angry', 'sent', ''],
      ['msg_hard', 'bounced', 'ses:Permanent/General'],
      ['msg_hard', 'sent', ''],
      ['msg_soft', 'sent', ''],
      ['msg_soft', 'soft_bounced', 'ses:Transient/MailboxFull'],
      ['msg_soft', 'soft_bounced', 'ses:Undetermined/Undetermined'],
    ]);
    // the table holds every row as it came (each provider row twice), the view each once
    const count = async (from: string) => {
      const r = await ch.query({
        query: `SELECT count() AS n FROM ${from} WHERE workspace_id = {ws:String} AND attempt = 0`,
        query_params: { ws: WS },
        format: 'JSONEachRow',
      });
      return Number((await r.json<{ n: string }>())[0]!.n);
    };
    expect(await count('activation_ledger')).toBe(rows.length * 2);
    // rows: 2 bounced (two recipients of one send), complained, 2 soft, delivered (other campaign)
    expect(rows).toHaveLength(6);
    expect(await count('bi_sends')).toBe(5);
    // two recipients of one bounce are one send's two rows in the table, one in the view
    expect(Number(seen.find((r) => r.outcome === 'bounced')!.at_ms)).toBe(START - 30_000);
    expect(seen.find((r) => r.outcome === 'bounced')!.provider_id).toBe('ses-m-1');
  });
});

describe('Postmark events: ledger rows and the soft-bounce hook, the same way', () => {
  const pm = (record: unknown, a = app) =>
    a.request(`/v1/webhooks/email/postmark/${WS}`, {
      method: 'POST',
      body: JSON.stringify(record),
      headers: {
        'content-type': 'application/json',
        authorization: `Basic ${Buffer.from(`${PM.user}:${PM.password}`).toString('base64')}`,
      },
    });
  const softRecord = (id: number, email: string) => ({
    RecordType: 'Bounce',
    ID: id,
    Type: 'SoftBounce',
    MessageID: `pm-m-${id}`,
    Email: email,
    BouncedAt: new Date(NOW - 3000).toISOString(),
    Details: 'mailbox full',
    Metadata: {
      cdp_send_key: `msg_pm_${id}`,
      cdp_campaign: 'cmp_pm',
      cdp_profile: 'p-pm',
      cdp_ws: WS,
      cdp_sig: tagSig(`msg_pm_${id}`, 'cmp_pm', 'p-pm'),
    },
  });

  it('a soft bounce delivered twice: one soft_bounced row, one hook call; a Delivery is a delivered row', async () => {
    const n = ledger().length;
    const hooks = softBounces.length;
    for (let i = 0; i < 2; i++) expect((await pm(softRecord(501, 'pm-soft@shop.test'))).status).toBe(200);
    const delivery = {
      RecordType: 'Delivery',
      MessageID: 'pm-m-502',
      Recipient: 'pm-ok@shop.test',
      DeliveredAt: new Date(NOW - 1000).toISOString(),
      Metadata: {
        cdp_send_key: 'msg_pm_502',
        cdp_campaign: 'cmp_pm',
        cdp_profile: 'p-pm',
        cdp_ws: WS,
        cdp_sig: tagSig('msg_pm_502', 'cmp_pm', 'p-pm'),
      },
    };
    for (let i = 0; i < 2; i++) expect((await pm(delivery)).status).toBe(200);
    // without our send key (sent by something else): no row
    expect((await pm({ ...delivery, MessageID: 'pm-m-503', Metadata: {} })).status).toBe(200);
    expect(
      ledger()
        .slice(n)
        .map((r) => [r.outcome, r.reason, r.send_key, r.campaign_id, r.provider_id]),
    ).toEqual([
      ['soft_bounced', 'postmark:SoftBounce', 'msg_pm_501', 'cmp_pm', 'pm-m-501'],
      ['delivered', 'postmark:Delivery', 'msg_pm_502', 'cmp_pm', 'pm-m-502'],
    ]);
    expect(softBounces.slice(hooks)).toEqual([
      {
        workspaceId: WS,
        provider: 'postmark',
        address: 'pm-soft@shop.test',
        sendKey: 'msg_pm_501',
        campaignId: 'cmp_pm',
        profileId: 'p-pm',
        eventId: 'postmark:Bounce:501',
        at: new Date(NOW - 3000),
        reason: 'SoftBounce: mailbox full',
      },
    ]);
  });

  it('the same event arriving twice at once: one is handled, the other is a 503 (retried later, then a no-op)', async () => {
    const calls: SoftBounceEvent[] = [];
    const slow = makeApp({ topicArns: [TOPIC] }, async (ev) => {
      calls.push(ev);
      await new Promise((r) => setTimeout(r, 300));
    });
    const n = ledger().length;
    const [a, b] = await Promise.all([
      pm(softRecord(601, 'pm-race@shop.test'), slow),
      pm(softRecord(601, 'pm-race@shop.test'), slow),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 503]);
    expect((await pm(softRecord(601, 'pm-race@shop.test'), slow)).status).toBe(200);
    expect(calls).toHaveLength(1);
    expect(
      ledger()
        .slice(n)
        .map((r) => r.send_key),
    ).toEqual(['msg_pm_601']);
  });

  it('a hook that fails is a 503 and runs again on the redelivery', async () => {
    let fail = true;
    const calls: string[] = [];
    const flaky = makeApp({ topicArns: [TOPIC] }, (ev) => {
      calls.push(ev.address);
      if (fail) throw new Error('hook down');
    });
    expect((await pm(softRecord(701, 'pm-flaky@shop.test'), flaky)).status).toBe(503);
    fail = false;
    expect((await pm(softRecord(701, 'pm-flaky@shop.test'), flaky)).status).toBe(200);
    expect((await pm(softRecord(701, 'pm-flaky@shop.test'), flaky)).status).toBe(200);
    expect(calls).toEqual(['pm-flaky@shop.test', 'pm-flaky@shop.test']);
  });
});

describe("a send of the URL's workspace only when its tags verify (cdp_ws, cdp_sig)", () => {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const bounceTo = (to: string, type: 'Transient' | 'Permanent', tags: Record<string, string[]>) =>
    JSON.stringify({
      eventType: 'Bounce',
      bounce: {
        bounceType: type,
        bounceSubType: type === 'Permanent' ? 'General' : 'MailboxFull',
        bouncedRecipients: [{ emailAddress: to, status: type === 'Permanent' ? '5.1.1' : '4.2.2' }],
        timestamp: new Date(NOW - 1000).toISOString(),
      },
      mail: { timestamp: new Date(NOW - 5000).toISOString(), messageId: 'ses-m-x', destination: [to], tags },
    });
  const SK = `msg_${'f'.repeat(32)}`; // a fresh send key nobody sent

  it("a forged soft bounce with another workspace's campaign and profile: tracked, no ledger row, no resend", async () => {
    const a = makeApp({ topicArns: [TOPIC] }, undefined, log);
    const n = ledger().length;
    const hooks = softBounces.length;
    const t = tracks().length;
    const forged = { cdp_send_key: [SK], cdp_campaign: [CAMPAIGN], cdp_profile: ['p-7'] };
    const cases: Array<[string, Record<string, string[]>]> = [
      ['unsigned', forged],
      // signed with a key that is not this deployment's
      [
        'bad signature',
        {
          ...forged,
          cdp_ws: [WS],
          cdp_sig: [tagSig(SK, CAMPAIGN, 'p-7', WS, emailTagSecret('x'.repeat(32)))],
        },
      ],
      // our signature over other tags (the campaign changed)
      [
        'bad signature',
        { ...forged, cdp_campaign: ['cmp_other'], cdp_ws: [WS], cdp_sig: [tagSig(SK, CAMPAIGN, 'p-7')] },
      ],
      // tags validly signed for another workspace of the deployment, posted at this one's URL
      ['other workspace', { ...forged, cdp_ws: [WS2], cdp_sig: [tagSig(SK, CAMPAIGN, 'p-7', WS2)] }],
    ];
    for (const [i, [, tags]] of cases.entries()) {
      const m = snsMessage({
        Type: 'Notification',
        MessageId: `m-forged-${i}`,
        Message: bounceTo('bounce@shop.test', 'Transient', tags),
      });
      const r = await post(m, WS, a);
      expect(await r.json()).toEqual({ success: true, processed: 1, suppressed: 0, skipped: 0 });
    }
    expect(ledger()).toHaveLength(n);
    expect(softBounces).toHaveLength(hooks);
    // the tracks are the person's, with nothing of the forged tags
    const ts = tracks().slice(t);
    expect(ts.map((e) => [e.event, e.userId, e.properties.bounceType])).toEqual(
      cases.map(() => ['Email Bounced', 'u-7', 'soft']),
    );
    for (const e of ts)
      expect([e.properties.sendKey, e.properties.campaignId]).toEqual([undefined, undefined]);
    expect(lines.filter((l) => l.msg === 'email_tags_unverified').map((l) => l.why)).toEqual(
      cases.map(([why]) => why),
    );
  });

  it('an unverified hard bounce still suppresses (the provider vouches for the address), with no ledger row', async () => {
    const a = makeApp({ topicArns: [TOPIC] }, undefined, log);
    const n = ledger().length;
    const m = snsMessage({
      Type: 'Notification',
      MessageId: 'm-forged-hard',
      Message: bounceTo('unsigned-hard@shop.test', 'Permanent', {
        cdp_send_key: [SK],
        cdp_campaign: [CAMPAIGN],
        cdp_profile: ['p-7'],
      }),
    });
    expect(await (await post(m, WS, a)).json()).toMatchObject({ processed: 1, suppressed: 1 });
    expect(await redis.sismember(k().suppressions, 'email:unsigned-hard@shop.test')).toBe(1);
    const why = JSON.parse((await redis.hget(`${k().suppressions}:why`, 'email:unsigned-hard@shop.test'))!);
    expect(why.sendKey).toBeUndefined();
    expect(ledger()).toHaveLength(n);
  });

  it('a topic bound to a workspace (arn=workspace) is refused at any other workspace URL', async () => {
    const a = makeApp({ topicArns: [`${TOPIC}=${WS2}`, OTHER_TOPIC] });
    const sendEvent = JSON.stringify({ eventType: 'Send', mail: mailOf('msg_bound', 'p-7', 'ses-m-b') });
    const m = snsMessage({ Type: 'Notification', MessageId: 'm-bound', Message: sendEvent });
    const r = await post(m, WS, a);
    expect([r.status, await r.json()]).toEqual([
      403,
      { success: false, error: 'topic not allowed for this workspace' },
    ]);
    expect((await post(m, WS2, a)).status).toBe(200);
    // an unbound topic is taken at every workspace's URL (its tags decide what it may do)
    const u = snsMessage({
      Type: 'Notification',
      MessageId: 'm-unbound',
      Message: sendEvent,
      TopicArn: OTHER_TOPIC,
    });
    expect((await post(u, WS, a)).status).toBe(200);
  });

  it('a complaint whose feedback type is not-spam suppresses nothing and is no complained row', async () => {
    const n = ledger().length;
    const t = tracks().length;
    const complaint = JSON.stringify({
      notificationType: 'Complaint',
      complaint: {
        complainedRecipients: [{ emailAddress: 'wanted@shop.test' }],
        timestamp: new Date(NOW - 5000).toISOString(),
        feedbackId: 'fb-ns',
        complaintFeedbackType: 'not-spam',
      },
      mail: mailOf('msg_wanted', 'p-7', 'ses-m-ns'),
    });
    const r = await post(snsMessage({ Type: 'Notification', MessageId: 'm-not-spam', Message: complaint }));
    expect(await r.json()).toEqual({ success: true, processed: 1, suppressed: 0, skipped: 0 });
    expect(await redis.sismember(k().suppressions, 'email:wanted@shop.test')).toBe(0);
    expect(ledger()).toHaveLength(n);
    expect(tracks()).toHaveLength(t);
  });
});

describe('tags read back from SendGrid and Postmark events', () => {
  it('SendGrid custom args are top-level fields; Postmark has them in Metadata', () => {
    const sg = sendgridEvent({
      email: 'a@shop.test',
      event: 'delivered',
      sg_event_id: 'e1',
      sg_message_id: 'X-MSG-ID.filterdrecv-1234.0',
      cdp_send_key: 'msg_1',
      cdp_campaign: 'cmp_a',
      cdp_profile: 'p-1',
    });
    expect(sg).toMatchObject({
      sendKey: 'msg_1',
      campaignId: 'cmp_a',
      profileId: 'p-1',
      providerMessageId: 'X-MSG-ID',
    });
    const pm = postmarkEvent({
      RecordType: 'Bounce',
      Type: 'SoftBounce',
      ID: 1,
      MessageID: 'pm-msg',
      Email: 'b@shop.test',
      Metadata: { cdp_send_key: 'msg_2', cdp_campaign: 'cmp_b', cdp_profile: 'p-2' },
    });
    expect(pm).toMatchObject({
      sendKey: 'msg_2',
      campaignId: 'cmp_b',
      profileId: 'p-2',
      providerMessageId: 'pm-msg',
      outcome: 'soft_bounced',
    });
  });
});
