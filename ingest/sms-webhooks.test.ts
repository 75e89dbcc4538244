// Twilio SMS webhooks on the ingest app against a real Redis: the signature is computed here
// as Twilio documents it (independently of the module: URL, then each name+value sorted by
// name, HMAC-SHA1, base64). A signed status callback is taken, a forged one is a 403 that
// changes nothing; `failed` with 21610 suppresses the number; inbound STOP suppresses the
// sender and queues a provable consent_log row, START lifts it, HELP answers the help text;
// a redelivered callback does nothing again.
import { createHmac, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { contactPolicy } from '../activation/policy/check-contact-policy.ts';
import { ChannelCredentialStore, parseCredentials } from '../runtime/channel-credentials.ts';
import type { Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import { createRedis } from '../runtime/redis.ts';
import { keyring, parseSecretKey } from '../runtime/secrets-key.ts';
import type { CampaignDefinition } from '../schemas/campaign.ts';
import { type SmsConsentJob, smsConsentDueKey } from '../schemas/sms-consent.ts';
import { createIngestApp } from './app.ts';
import { RateLimiter } from './rate-limit.ts';

const TOKEN = 'twilio-auth-token-123';
const PUBLIC = 'https://in.example.test';
const PREFIX = `smswh${process.pid}${Date.now()}`;
const WS = 'ws_sms';
const log = createLogger({ level: 'silent', name: 'test' });
const redis = createRedis(inject('redisUrl'), log, 'sms-webhooks-test');
afterAll(() => redis.quit());

const producer: Producer = {
  connect: async () => {},
  disconnect: async () => {},
  send: async () => {},
};
const makeApp = (limiter?: RateLimiter) =>
  createIngestApp({
    producer,
    eventsTopic: 'events',
    resolveWriteKey: () => undefined,
    log,
    smsWebhooks: {
      redis,
      redisPrefix: PREFIX,
      authToken: TOKEN,
      publicUrl: `${PUBLIC}/`,
      helpText: 'Shop alerts: reply STOP to stop. Help: help@shop.test',
      workspaceKnown: async (ws) => ws === WS,
      limiter,
      log,
      now: () => new Date(),
    },
  });
const app = makeApp();

/** As https://www.twilio.com/docs/usage/webhooks/webhooks-security describes it. */
function sign(url: string, params: Record<string, string>): string {
  let data = url;
  for (const k of Object.keys(params).sort()) data += k + params[k];
  return createHmac('sha1', TOKEN).update(Buffer.from(data, 'utf-8')).digest('base64');
}

function post(
  kind: 'status' | 'inbound',
  params: Record<string, string>,
  opts: { sig?: string; ws?: string } = {},
) {
  const path = `/v1/webhooks/sms/twilio/${opts.ws ?? WS}/${kind}`;
  return app.request(path, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-twilio-signature': opts.sig ?? sign(PUBLIC + path, params),
    },
    body: new URLSearchParams(params).toString(),
  });
}

const suppressed = () => redis.smembers(`${PREFIX}:{${WS}}:suppress`);
const queued = async () =>
  (await redis.zrange(smsConsentDueKey(PREFIX), 0, -1)).map((m) => JSON.parse(m) as SmsConsentJob);

describe('Twilio status callbacks', () => {
  it('a signed callback is recorded; a forged one is a 403 and changes nothing', async () => {
    const params = {
      MessageSid: 'SM0001',
      MessageStatus: 'delivered',
      To: '+15550001111',
      AccountSid: 'AC1',
      From: '+15559999999',
    };
    const forged = await post(
      'status',
      { ...params, MessageStatus: 'failed', ErrorCode: '21610' },
      {
        sig: sign(`${PUBLIC}/v1/webhooks/sms/twilio/${WS}/status`, params),
      },
    );
    expect(forged.status).toBe(403);
    expect(await redis.exists(`${PREFIX}:{${WS}}:sms:msg:SM0001`)).toBe(0);
    expect(await suppressed()).toEqual([]);
    // signed for another URL (another workspace's path) is forged too
    const elsewhere = await post('status', params, {
      sig: sign(`${PUBLIC}/v1/webhooks/sms/twilio/other/status`, params),
    });
    expect(elsewhere.status).toBe(403);

    const ok = await post('status', params);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/^text\/xml/);
    expect(await ok.text()).toContain('<Response/>');
    const rec = await redis.hgetall(`${PREFIX}:{${WS}}:sms:msg:SM0001`);
    expect(rec.status).toBe('delivered');
    expect(rec.to).toBe('+15550001111');
    expect(await redis.ttl(`${PREFIX}:{${WS}}:sms:msg:SM0001`)).toBeGreaterThan(86_400);
    expect(await suppressed()).toEqual([]); // delivered suppresses nothing
  });

  it('failed with 21610 suppresses the number; 30007 (carrier filtering) does not', async () => {
    const r = await post('status', {
      MessageSid: 'SM0002',
      MessageStatus: 'failed',
      ErrorCode: '21610',
      To: '+1 (555) 000-2222',
    });
    expect(r.status).toBe(200);
    const r2 = await post('status', {
      MessageSid: 'SM0003',
      MessageStatus: 'undelivered',
      ErrorCode: '30007',
      To: '+15550003333',
    });
    expect(r2.status).toBe(200);
    expect(await suppressed()).toEqual(['phone:+15550002222']);
    expect((await redis.hgetall(`${PREFIX}:{${WS}}:sms:msg:SM0003`)).error).toBe('30007');
  });

  it('refuses unknown workspaces, wrong content types, bad parameters and oversized bodies', async () => {
    const p = { MessageSid: 'SM0009', MessageStatus: 'sent' };
    expect((await post('status', p, { ws: 'nope' })).status).toBe(404);
    // without a valid signature nobody learns whether a workspace exists
    expect((await post('status', p, { ws: 'nope', sig: 'forged' })).status).toBe(403);
    expect((await post('status', p, { ws: WS, sig: 'forged' })).status).toBe(403);
    expect((await post('status', { MessageSid: 'SM0009', MessageStatus: 'exploded' })).status).toBe(400);
    const json = await app.request(`/v1/webhooks/sms/twilio/${WS}/status`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(p),
    });
    expect(json.status).toBe(415);
    const big = { ...p, Body: 'x'.repeat(70 * 1024) };
    expect((await post('status', big)).status).toBe(413);
    expect(await redis.exists(`${PREFIX}:{${WS}}:sms:msg:SM0009`)).toBe(0);
  });

  it('limits requests per client address', async () => {
    const limited = makeApp(new RateLimiter(0.001, 3));
    const path = `/v1/webhooks/sms/twilio/${WS}/status`;
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await limited.request(path, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': 'x' },
        body: 'MessageSid=SM1&MessageStatus=sent',
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([403, 403, 403, 429, 429]);
  });
});

describe('Twilio inbound keywords', () => {
  const phone = '+15557770000';
  it('STOP suppresses the sender and queues a consent_log row; a redelivery does nothing again', async () => {
    const msg = { MessageSid: 'SMin1', From: phone, To: '+15559999999', Body: '  stop ' };
    const r = await post('inbound', msg);
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('<Response/>');
    expect(await suppressed()).toContain(`phone:${phone}`);
    const jobs = await queued();
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({
      workspaceId: WS,
      phone,
      subscribed: false,
      text: '  stop ',
      messageSid: 'SMin1',
    });
    // redelivered after START came in: the replayed STOP must not suppress again
    expect((await post('inbound', { ...msg, MessageSid: 'SMin2', Body: 'START' })).status).toBe(200);
    expect(await suppressed()).not.toContain(`phone:${phone}`);
    const again = await post('inbound', msg);
    expect(again.status).toBe(200);
    expect(await suppressed()).not.toContain(`phone:${phone}`);
    const after = await queued();
    expect(after.map((j) => [j.messageSid, j.subscribed])).toEqual([
      ['SMin1', false],
      ['SMin2', true],
    ]);
  });

  it('a STOP whose consent_log job did not get queued is queued again by the redelivery, with its first time', async () => {
    const n = '+15551230000';
    const msg = { MessageSid: 'SMheal', From: n, Body: 'QUIT' };
    expect((await post('inbound', msg)).status).toBe(200);
    const [job] = (await queued()).filter((j) => j.messageSid === 'SMheal');
    expect(job?.subscribed).toBe(false);
    // as if the process died between the suppression and the queueing
    await redis.zrem(smsConsentDueKey(PREFIX), JSON.stringify(job));
    expect((await queued()).some((j) => j.messageSid === 'SMheal')).toBe(false);
    expect((await post('inbound', msg)).status).toBe(200);
    expect((await queued()).filter((j) => j.messageSid === 'SMheal')).toEqual([job]);
    expect(await suppressed()).toContain(`phone:${n}`);
  });

  it('a message that only contains the word is not a keyword; HELP answers the help text', async () => {
    const r = await post('inbound', { MessageSid: 'SMin3', From: phone, Body: 'please stop by tomorrow' });
    expect(r.status).toBe(200);
    expect(await suppressed()).not.toContain(`phone:${phone}`);
    for (const [i, word] of ['UNSUBSCRIBE', 'Cancel', 'end', 'QUIT', 'stopall'].entries()) {
      const n = `+1555888000${i}`;
      await post('inbound', { MessageSid: `SMk${word}`, From: n, Body: word });
      expect(await suppressed()).toContain(`phone:${n}`);
    }
    const help = await post('inbound', { MessageSid: 'SMin4', From: phone, Body: 'help' });
    expect(help.status).toBe(200);
    expect(help.headers.get('content-type')).toMatch(/^text\/xml/);
    expect(await help.text()).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Shop alerts: reply STOP to stop. Help: help@shop.test</Message></Response>',
    );
  });

  it('a forged inbound STOP is a 403 and suppresses nothing', async () => {
    const n = '+15556660000';
    // signed, but the sender names no number: nothing to suppress (not `phone:`)
    expect((await post('inbound', { MessageSid: 'SMx', From: 'ShopAlerts', Body: 'STOP' })).status).toBe(400);
    expect(await suppressed()).not.toContain('phone:');
    const r = await post('inbound', { MessageSid: 'SMf', From: n, Body: 'STOP' }, { sig: 'AAAA' });
    expect(r.status).toBe(403);
    expect(await suppressed()).not.toContain(`phone:${n}`);
    expect((await queued()).some((j) => j.phone === n)).toBe(false);
  });

  it('after STOP an SMS campaign send to a profile with that phone is suppressed; after START it goes', async () => {
    const policy = contactPolicy({
      redis,
      redisPrefix: PREFIX,
      policy: { capPerChannelPerDay: 0, capPerDay: 0, defaultTimezone: 'UTC' },
    });
    const campaign: CampaignDefinition = {
      id: 'cmp_sms',
      workspaceId: WS,
      name: 'sms',
      segmentId: 's1',
      on: 'enter',
      channel: 'sms',
      sms: { body: 'Sale!' },
      status: 'active',
      version: 1,
      createdAt: '',
      updatedAt: '',
    };
    let n = 0;
    const decide = () =>
      policy.decide({
        campaign,
        // the trait as the profile keeps it, formatted unlike Twilio's E.164 From
        change: {
          workspaceId: WS,
          profileId: 'p_sms',
          segmentId: 's1',
          segmentVersion: 1,
          type: 'entered',
          epoch: ++n,
          messageId: null,
          occurredAt: '',
          userId: null,
          traits: { phone: '+1 (555) 444-0000' },
        },
        sendKey: `send${n}`,
        nowMs: Date.now(),
        claim: { key: `${PREFIX}:claim:${n}`, owner: 'w1', leaseMs: 60_000, doneTtlSeconds: 60 },
      });
    expect((await decide()).kind).toBe('allow');
    await post('inbound', { MessageSid: 'SMp1', From: '+15554440000', Body: 'STOP' });
    expect(await decide()).toEqual({ kind: 'suppress', rule: 'suppression_list' });
    await post('inbound', { MessageSid: 'SMp2', From: '+15554440000', Body: 'unstop' });
    expect((await decide()).kind).toBe('allow');
  });
});

describe("a workspace's own Twilio account", () => {
  it("takes callbacks signed with the workspace's stored token or the deployment's; another account's is a 403", async () => {
    const ws = 'ws_sms_own';
    const ring = keyring(parseSecretKey(randomBytes(32).toString('base64')));
    const store = new ChannelCredentialStore(redis, PREFIX, ring);
    const own = `own${randomBytes(12).toString('hex')}`;
    const parsed = parseCredentials('sms', {
      accountSid: `AC${randomBytes(16).toString('hex')}`,
      authToken: own,
      from: '+15550001',
    });
    if (!('ok' in parsed)) throw new Error(parsed.error);
    await store.put(ws, parsed.ok, 'key:test', new Date());
    const withAccounts = (envToken: string) =>
      createIngestApp({
        producer,
        eventsTopic: 'events',
        resolveWriteKey: () => undefined,
        log,
        smsWebhooks: {
          redis,
          redisPrefix: PREFIX,
          authToken: envToken,
          workspaceAuthToken: async (w) => {
            const s = await store.get(w, 'sms');
            return s?.readable && s.credentials.channel === 'sms' ? s.credentials.creds.authToken : undefined;
          },
          publicUrl: PUBLIC,
          helpText: 'help',
          workspaceKnown: async (w) => w === ws || w === WS,
          log,
          now: () => new Date(),
        },
      });
    const status = (a: ReturnType<typeof createIngestApp>, w: string, token: string, sid: string) => {
      const path = `/v1/webhooks/sms/twilio/${w}/status`;
      const params = { MessageSid: sid, MessageStatus: 'delivered', To: '+15550100' };
      let data = PUBLIC + path;
      for (const k of Object.keys(params).sort()) data += k + params[k as keyof typeof params];
      return a.request(path, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-twilio-signature': createHmac('sha1', token).update(data, 'utf8').digest('base64'),
        },
        body: new URLSearchParams(params).toString(),
      });
    };
    const both = withAccounts(TOKEN);
    expect((await status(both, ws, own, 'SMown1')).status).toBe(200);
    expect((await status(both, ws, TOKEN, 'SMenv1')).status).toBe(200);
    expect((await status(both, ws, 'someone-elses-token', 'SMx1')).status).toBe(403);
    // the workspace's token is no key to another workspace's webhooks
    expect((await status(both, WS, own, 'SMx2')).status).toBe(403);
    // a deployment without an SMS account of its own still takes the workspace's
    const onlyOwn = withAccounts('');
    expect((await status(onlyOwn, ws, own, 'SMown2')).status).toBe(200);
    expect((await status(onlyOwn, WS, TOKEN, 'SMx3')).status).toBe(503);
  });
});
