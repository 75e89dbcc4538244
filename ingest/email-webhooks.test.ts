// Email provider webhooks in the ingest app against the real Redis, with a recording producer:
// a SendGrid batch signed with a freshly made P-256 key as SendGrid does (timestamp + body,
// ECDSA SHA-256, base64 DER) suppresses the hard bounce and the spam report, not the soft
// block, and produces one track per event of the person who has the address; a forged, a
// missing and a stale signature are 403s that change nothing; Postmark with wrong Basic
// credentials is a 401, a HardBounce suppresses, a SoftBounce does not; a redelivery adds
// nothing and produces the same messageIds; bounds (413, 400, 404) and the per-address limit.
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startAuditQueueWorker } from '../query/audit-queue.ts';
import { type ClickHouseClient, createClickHouse } from '../runtime/clickhouse.ts';
import type { OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import { auditDueKey, type QueuedAudit } from '../schemas/audit-queue.ts';
import { suppressionMember } from '../schemas/contact.ts';
import { emailTagSecret, emailTagSignature } from '../schemas/email-tags.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import { migrate } from '../schemas/migrations.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { uniqueId } from '../test/harness.ts';
import { createIngestApp } from './app.ts';
import { RateLimiter } from './rate-limit.ts';

let redis: Redis;
const prefix = uniqueId('ewh');
const WS = uniqueId('ws_');
const TAG_SECRET = emailTagSecret('test-unsubscribe-secret-0123456789');
/** The tags activation sends with a message (workspace and signature included). */
const tags = (sendKey: string, ws = WS) => ({
  cdp_send_key: sendKey,
  cdp_ws: ws,
  cdp_sig: emailTagSignature(TAG_SECRET, { workspaceId: ws, sendKey }),
});
const sent: OutgoingMessage[] = [];
const producer: Producer = {
  connect: async () => {},
  disconnect: async () => {},
  send: async (_topic, messages) => void sent.push(...messages),
};
const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const publicDerB64 = publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
const PM = { user: 'pm-hook', password: 'correct horse battery' };
let NOW = Date.now();

const makeApp = (limit = 0, log = createLogger({ level: 'silent', name: 'test' })) =>
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
      sendgridPublicKey: publicDerB64,
      postmark: PM,
      workspaceExists: (ws) => ws === WS,
      addressLimiter: limit > 0 ? new RateLimiter(limit / 60, limit) : undefined,
      tagSecret: TAG_SECRET,
    },
  });

const k = () => workspaceKeys(prefix, WS);
const suppressed = () => redis.smembers(k().suppressions);

function signed(body: string, key: KeyObject = privateKey, ts = String(Math.floor(NOW / 1000))) {
  const sig = sign('sha256', Buffer.from(ts + body), key).toString('base64');
  return {
    'content-type': 'application/json',
    'x-twilio-email-event-webhook-signature': sig,
    'x-twilio-email-event-webhook-timestamp': ts,
  };
}
const sgPost = (body: string, headers: Record<string, string>, ws = WS, app = makeApp()) =>
  app.request(`/v1/webhooks/email/sendgrid/${ws}`, { method: 'POST', body, headers });
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const pmPost = (record: unknown, auth = basic(PM.user, PM.password), ws = WS) =>
  makeApp().request(`/v1/webhooks/email/postmark/${ws}`, {
    method: 'POST',
    body: JSON.stringify(record),
    headers: { 'content-type': 'application/json', authorization: auth },
  });
const queuedAudit = async () =>
  (await redis.zrange(auditDueKey(prefix), 0, -1)).map((m) => JSON.parse(m) as QueuedAudit);
const produced = () => sent.map((m) => JSON.parse(m.value as string) as NormalizedEvent);

const sgBatch = () =>
  JSON.stringify([
    {
      email: 'Hard@Shop.test',
      event: 'bounce',
      type: 'bounce',
      reason: '550 5.1.1 no such user',
      sg_event_id: 'sg-1',
      timestamp: Math.floor(NOW / 1000),
      ...tags('msg_hard'),
    },
    {
      email: 'soft@shop.test',
      event: 'bounce',
      type: 'blocked',
      reason: '421 try later',
      sg_event_id: 'sg-2',
      timestamp: Math.floor(NOW / 1000),
    },
    {
      email: 'spam@shop.test',
      event: 'spamreport',
      sg_event_id: 'sg-3',
      timestamp: Math.floor(NOW / 1000),
      ...tags('msg_spam'),
    },
    { email: 'ok@shop.test', event: 'delivered', sg_event_id: 'sg-4', timestamp: Math.floor(NOW / 1000) },
    { email: 'open@shop.test', event: 'open', sg_event_id: 'sg-5', timestamp: Math.floor(NOW / 1000) },
  ]);

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  // two people: hard@ is a known user (via a merged profile), ok@ an anonymous one
  await redis.set(k().identity('email', 'hard@shop.test'), 'p-old');
  await redis.hset(k().profile('p-old'), 'mergedInto', 'p-1');
  await redis.sadd(k().profileIdentities('p-1'), 'user:u-1', 'anon:a-1', 'email:hard@shop.test');
  await redis.set(k().identity('email', 'ok@shop.test'), 'p-2');
  await redis.sadd(k().profileIdentities('p-2'), 'anon:zz', 'anon:aa', 'email:ok@shop.test');
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

describe('SendGrid signed event webhook', () => {
  it('refuses a forged, missing or stale signature with a 403 and changes nothing', async () => {
    const body = sgBatch();
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const forged = await sgPost(body, signed(body, other));
    expect(forged.status).toBe(403);
    // a body changed after signing
    const h = signed(body);
    expect((await sgPost(body.replace('spamreport', 'delivered'), h)).status).toBe(403);
    const missing = await sgPost(body, { 'content-type': 'application/json' });
    expect(missing.status).toBe(403);
    const staleTs = String(Math.floor(NOW / 1000) - 11 * 60);
    const stale = await sgPost(body, signed(body, privateKey, staleTs));
    expect(stale.status).toBe(403);
    expect(await stale.json()).toMatchObject({ error: 'stale signature timestamp' });
    expect(await suppressed()).toEqual([]);
    expect(await queuedAudit()).toEqual([]);
    expect(sent).toHaveLength(0);
  });

  it('suppresses the hard bounce and the spam report, not the soft block, and records the events', async () => {
    const body = sgBatch();
    const res = await sgPost(body, signed(body));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ success: true, processed: 5, suppressed: 2, skipped: 0 });
    expect((await suppressed()).sort()).toEqual([
      suppressionMember('email', 'hard@shop.test'),
      suppressionMember('email', 'spam@shop.test'),
    ]);
    const why = JSON.parse((await redis.hget(`${k().suppressions}:why`, 'email:hard@shop.test'))!);
    expect(why).toMatchObject({
      actor: 'webhook:sendgrid',
      outcome: 'bounced',
      eventId: 'sg-1',
      sendKey: 'msg_hard',
    });
    // only people the workspace knows get an event: hard@ (as u-1, the merge followed) and ok@
    const events = produced();
    expect(events.map((e) => [e.event, e.userId ?? null, e.anonymousId ?? null])).toEqual([
      ['Email Bounced', 'u-1', null],
      ['Email Delivered', null, 'aa'],
    ]);
    expect(events[0]!.properties).toMatchObject({
      bounceType: 'hard',
      sendKey: 'msg_hard',
      suppressed: true,
      provider: 'sendgrid',
    });
    expect(events[0]!.workspaceId).toBe(WS);
    // one audit row queued per address put on the list
    const rows = await queuedAudit();
    expect(rows.map((r) => [r.entityId, r.actor, r.entityType, r.action]).sort()).toEqual([
      ['email:hard@shop.test', 'webhook:sendgrid', 'suppression', 'create'],
      ['email:spam@shop.test', 'webhook:sendgrid', 'suppression', 'create'],
    ]);
  });

  it('a redelivered batch adds nothing and produces the same messageIds', async () => {
    const first = sent.map((m) => (JSON.parse(m.value as string) as NormalizedEvent).messageId);
    NOW += 60_000; // retried a minute later, newly signed
    const body = sgBatch(); // the same events (sg_event_id), new event times
    const res = await sgPost(body, signed(body));
    expect(await res.json()).toMatchObject({ processed: 5, suppressed: 0 });
    expect(await suppressed()).toHaveLength(2);
    const again = sent
      .slice(first.length)
      .map((m) => (JSON.parse(m.value as string) as NormalizedEvent).messageId);
    expect(again).toEqual(first); // the processor drops a messageId it has seen
    expect(await queuedAudit()).toHaveLength(2);
  });

  it('the query service writes the queued rows to audit_log once', async () => {
    const ch: ClickHouseClient = await createClickHouse({
      kind: 'chdb',
      path: mkdtempSync(join(tmpdir(), 'cdp-ewh-')),
    });
    await migrate(ch);
    const worker = startAuditQueueWorker({
      redis,
      clickhouse: ch,
      redisPrefix: prefix,
      log: createLogger({ level: 'silent', name: 'test' }),
      now: () => new Date(),
      intervalMs: 60_000,
    });
    // its first pass runs on start
    for (let i = 0; i < 100 && (await queuedAudit()).length > 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    await worker.stop();
    expect(await queuedAudit()).toEqual([]);
    expect(await worker.tick()).toBe(0);
    const rs = await ch.query({
      query:
        'SELECT actor, entity_type, entity_id, after FROM audit_log WHERE workspace_id = {ws:String} ORDER BY entity_id',
      query_params: { ws: WS },
      format: 'JSONEachRow',
    });
    const rows = await rs.json<{ actor: string; entity_type: string; entity_id: string; after: string }>();
    expect(rows.map((r) => [r.actor, r.entity_type, r.entity_id])).toEqual([
      ['webhook:sendgrid', 'suppression', 'email:hard@shop.test'],
      ['webhook:sendgrid', 'suppression', 'email:spam@shop.test'],
    ]);
    expect(JSON.parse(rows[0]!.after)).toMatchObject({
      eventId: 'sg-1',
      sendKey: 'msg_hard',
      outcome: 'bounced',
    });
  });

  it('bounds: unknown workspace 404, malformed JSON 400, over 1 MB 413', async () => {
    const body = sgBatch();
    const nf = await sgPost(body, signed(body), 'ws_nobody');
    expect(nf.status).toBe(404);
    expect(await nf.json()).toEqual({ success: false, error: 'not found' });
    const bad = '[{"email":';
    expect((await sgPost(bad, signed(bad))).status).toBe(400);
    const notArray = '{"email":"x@y.z"}';
    expect((await sgPost(notArray, signed(notArray))).status).toBe(400);
    const big = JSON.stringify([{ email: 'a@b.c', event: 'delivered', pad: 'x'.repeat(1024 * 1024) }]);
    expect((await sgPost(big, signed(big))).status).toBe(413);
  });

  it('per address, deliveries over the limit are skipped', async () => {
    const app = makeApp(3);
    const events = Array.from({ length: 5 }, (_, i) => ({
      email: 'busy@shop.test',
      event: 'delivered',
      sg_event_id: `busy-${i}`,
    }));
    const body = JSON.stringify(events);
    const res = await sgPost(body, signed(body), WS, app);
    expect(await res.json()).toMatchObject({ processed: 3, skipped: 2 });
  });

  it('the limit counts no ignored events and never skips a bounce or complaint', async () => {
    const app = makeApp(3);
    const at = Math.floor(NOW / 1000);
    // a link scanner opens and clicks everything first: not counted
    const scanner = Array.from({ length: 20 }, (_, i) => ({
      email: 'scanned@shop.test',
      event: i % 2 ? 'click' : 'open',
      sg_event_id: `scan-${i}`,
      timestamp: at,
    }));
    const deliveries = Array.from({ length: 4 }, (_, i) => ({
      email: 'scanned@shop.test',
      event: 'delivered',
      sg_event_id: `scan-d-${i}`,
      timestamp: at,
    }));
    const body = JSON.stringify([
      ...scanner,
      ...deliveries,
      // the limit is spent: the complaint and the hard bounce count all the same
      { email: 'scanned@shop.test', event: 'spamreport', sg_event_id: 'scan-spam', timestamp: at },
      { email: 'scanned@shop.test', event: 'bounce', type: 'bounce', sg_event_id: 'scan-b', timestamp: at },
    ]);
    const res = await sgPost(body, signed(body), WS, app);
    // 20 ignored + 3 deliveries + complaint + bounce processed; the 4th delivery skipped
    expect(await res.json()).toEqual({ success: true, processed: 25, suppressed: 1, skipped: 1 });
    expect(await redis.sismember(k().suppressions, suppressionMember('email', 'scanned@shop.test'))).toBe(1);
    const why = JSON.parse((await redis.hget(`${k().suppressions}:why`, 'email:scanned@shop.test'))!);
    expect(why).toMatchObject({ outcome: 'complained', eventId: 'scan-spam' });
  });

  it('tags that do not verify for this workspace: the event suppresses and tracks, without the tags, and is logged', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const at = Math.floor(NOW / 1000);
    const body = JSON.stringify([
      // validly signed, for another workspace
      {
        email: 'x-ws@shop.test',
        event: 'bounce',
        type: 'bounce',
        sg_event_id: 'xw-1',
        timestamp: at,
        ...tags('msg_x', 'ws_other'),
      },
      // no signature
      {
        email: 'x-ws2@shop.test',
        event: 'spamreport',
        sg_event_id: 'xw-2',
        timestamp: at,
        cdp_send_key: 'msg_y',
        cdp_campaign: 'c',
      },
    ]);
    const res = await sgPost(body, signed(body), WS, makeApp(0, log));
    expect(await res.json()).toEqual({ success: true, processed: 2, suppressed: 2, skipped: 0 });
    for (const a of ['x-ws@shop.test', 'x-ws2@shop.test']) {
      const why = JSON.parse((await redis.hget(`${k().suppressions}:why`, `email:${a}`))!);
      expect(why.sendKey, a).toBeUndefined();
    }
    expect(lines.filter((l) => l.msg === 'email_tags_unverified').map((l) => [l.eventId, l.why])).toEqual([
      ['xw-1', 'other workspace'],
      ['xw-2', 'unsigned'],
    ]);
  });
});

describe('Postmark webhook', () => {
  const hard = {
    RecordType: 'Bounce',
    ID: 4242,
    Type: 'HardBounce',
    Email: 'pm-hard@shop.test',
    BouncedAt: new Date(NOW).toISOString(),
    Description: 'unknown user',
    Metadata: tags('msg_pm'),
  };

  it('refuses wrong or missing Basic credentials with a 401 and changes nothing', async () => {
    const before = await suppressed();
    const wrong = await pmPost(hard, basic(PM.user, 'guess'));
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('Basic');
    expect((await pmPost(hard, basic('someone', PM.password))).status).toBe(401);
    expect((await pmPost(hard, '')).status).toBe(401);
    expect(await suppressed()).toEqual(before);
  });

  it('a HardBounce and a SpamComplaint suppress; a SoftBounce does not; a redelivery is harmless', async () => {
    const res = await pmPost(hard);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ processed: 1, suppressed: 1 });
    expect(await redis.sismember(k().suppressions, 'email:pm-hard@shop.test')).toBe(1);
    const why = JSON.parse((await redis.hget(`${k().suppressions}:why`, 'email:pm-hard@shop.test'))!);
    expect(why).toMatchObject({ actor: 'webhook:postmark', detail: 'HardBounce', sendKey: 'msg_pm' });
    expect(await (await pmPost(hard)).json()).toMatchObject({ processed: 1, suppressed: 0 });

    const soft = { ...hard, ID: 4243, Type: 'SoftBounce', Email: 'pm-soft@shop.test' };
    expect(await (await pmPost(soft)).json()).toMatchObject({ processed: 1, suppressed: 0 });
    expect(await redis.sismember(k().suppressions, 'email:pm-soft@shop.test')).toBe(0);

    const spam = { RecordType: 'SpamComplaint', ID: 4244, Type: 'SpamComplaint', Email: 'pm-spam@shop.test' };
    expect(await (await pmPost(spam)).json()).toMatchObject({ suppressed: 1 });
    expect(await redis.sismember(k().suppressions, 'email:pm-spam@shop.test')).toBe(1);

    const n = sent.length;
    const delivery = {
      RecordType: 'Delivery',
      MessageID: 'pm-m-1',
      Recipient: 'hard@shop.test',
      DeliveredAt: new Date(NOW).toISOString(),
    };
    expect((await pmPost(delivery)).status).toBe(200);
    const e = JSON.parse(sent[n]!.value as string) as NormalizedEvent;
    expect([e.event, e.userId]).toEqual(['Email Delivered', 'u-1']);
  });

  it('unknown workspace 404 only after the credentials; malformed JSON 400', async () => {
    expect((await pmPost(hard, basic('x', 'y'), 'ws_nobody')).status).toBe(401);
    expect((await pmPost(hard, undefined, 'ws_nobody')).status).toBe(404);
    const res = await makeApp().request(`/v1/webhooks/email/postmark/${WS}`, {
      method: 'POST',
      body: '{"RecordType":',
      headers: { 'content-type': 'application/json', authorization: basic(PM.user, PM.password) },
    });
    expect(res.status).toBe(400);
  });
});
