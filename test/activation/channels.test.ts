// Activation against real peers on loopback: a webhook receiver verifying signatures, an
// SMTP server, SMS and push provider stand-ins; segment changes produced to Kafka, the
// activation, ledger and query services running, the ledger read back through the stats API.
import { Redis } from 'ioredis';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replayDeadLetters } from '../../cli/dlq-replay.ts';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { topics } from '../../schemas/topics.ts';
import { change, segmentChangeProducer, startSmtpServer } from '../activation-peers.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startFcm } from '../push-providers.ts';
import { startTwilio } from '../twilio.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let sms: Awaited<ReturnType<typeof startTwilio>>;
let push: Awaited<ReturnType<typeof startFcm>>;
let changes: Awaited<ReturnType<typeof segmentChangeProducer>>;
let segmentId: string;

const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });
const api = (path: string, init: RequestInit = {}) =>
  fetch(`${running.urls.query}${path}`, { ...init, headers: { ...admin(), ...(init.headers ?? {}) } });

async function createSegment(): Promise<string> {
  const seg = await api('/v1/segments', {
    method: 'POST',
    body: JSON.stringify({ name: uniqueId('s'), rule: { '==': [{ var: 'traits.plan' }, 'pro'] } }),
  });
  return ((await seg.json()) as { id: string }).id;
}

/** A campaign on a segment of its own, so tests don't trigger each other's campaigns. */
async function createCampaign(body: Record<string, unknown>) {
  const res = await api('/v1/campaigns', {
    method: 'POST',
    body: JSON.stringify({ name: uniqueId('c'), segmentId: await createSegment(), on: 'enter', ...body }),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  const c = (await res.json()) as { id: string; segmentId: string; webhook?: { secret: string } };
  // definitions reach the worker within its poll interval
  await new Promise((r) => setTimeout(r, 600));
  return c;
}

async function stats(id: string) {
  return (await (await api(`/v1/campaigns/${id}/stats`)).json()) as {
    sent: number;
    failed: number;
    retried: number;
    suppressed: { total: number; byReason: Record<string, number> };
    latencyMs: { p50: number | null; p99: number | null };
  };
}

beforeAll(async () => {
  smtp = await startSmtpServer();
  // a Twilio Messages API that checks credentials, numbers and the body as Twilio does
  sms = await startTwilio({ accountSid: 'AC123', authToken: 'sms-token' });
  // FCM that checks the OAuth grant of a service account and the v1 message shape
  push = await startFcm({ now: Date.now });
  cfg = testConfig({
    SMTP_URL: smtp.url,
    CDP_EMAIL_FROM: 'Shop <news@shop.test>',
    CDP_SMS_BASE_URL: sms.url,
    CDP_SMS_ACCOUNT_SID: 'AC123',
    CDP_SMS_AUTH_TOKEN: 'sms-token',
    CDP_SMS_FROM: '+15550001',
    CDP_INGEST_PUBLIC_URL: 'https://in.shop.test',
    CDP_PUSH_BASE_URL: push.url,
    CDP_PUSH_FCM_SERVICE_ACCOUNT: push.serviceAccountJson,
    CDP_ACTIVATION_MAX_ATTEMPTS: '3',
    CDP_ACTIVATION_RETRY_BASE_MS: '100',
    CDP_CHANNEL_TIMEOUT_MS: '2000',
    CDP_WEBHOOK_TIMEOUT_MS: '2000',
  });
  running = await startServices(cfg, ['activation', 'ledger', 'query'], testLogger(cfg));
  // links in messages point at this query service (its port was chosen by the OS)
  cfg.unsubscribe.publicUrl = running.urls.query!;
  changes = await segmentChangeProducer(cfg.kafka.brokers, topics(cfg.kafka.topicPrefix).segmentChanges);
  segmentId = await createSegment();
});

afterAll(async () => {
  await changes?.close();
  await running?.stop();
  await Promise.all([smtp?.close(), sms?.close(), push?.close()]);
});

describe('campaign API', () => {
  it('refuses a template with a syntax error, naming the field', async () => {
    const res = await api('/v1/campaigns', {
      method: 'POST',
      body: JSON.stringify({
        name: 'bad',
        segmentId,
        on: 'enter',
        channel: 'email',
        email: { subject: 'Hi {{ traits.name ', text: 'ok' },
      }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(
      /^email\.subject: invalid Liquid template/,
    );
  });

  it('refuses a channel without its settings', async () => {
    const res = await api('/v1/campaigns', {
      method: 'POST',
      body: JSON.stringify({ name: 'x', segmentId, on: 'enter', channel: 'sms' }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/^sms:/);
  });
});

describe('channels', () => {
  it('webhook: 500 then 200 → delivered once, signed; retried and sent in the ledger', async () => {
    const receiver = await startWebhookReceiver((n) => (n === 1 ? 500 : 200));
    try {
      const c = await createCampaign({ channel: 'webhook', webhook: { url: receiver.url } });
      await changes.send([change(cfg.keys.workspace, c.segmentId, 'p-wh', { plan: 'pro' })]);
      await eventually('two attempts', () => receiver.deliveries.length >= 2);
      const [a, b] = receiver.deliveries;
      expect(a!.headers['webhook-id']).toBe(b!.headers['webhook-id']);
      const body = new Webhook(c.webhook!.secret).verify(b!.body, {
        'webhook-id': String(b!.headers['webhook-id']),
        'webhook-timestamp': String(b!.headers['webhook-timestamp']),
        'webhook-signature': String(b!.headers['webhook-signature']),
      });
      expect(body).toMatchObject({ type: 'segment.entered', campaignId: c.id, profileId: 'p-wh' });
      const s = await eventually('stats', async () => {
        const s = await stats(c.id);
        return s.sent === 1 ? s : undefined;
      });
      expect(s).toMatchObject({ sent: 1, failed: 0, retried: 1 });
      expect(s.latencyMs.p50).toBeGreaterThanOrEqual(0);
      await new Promise((r) => setTimeout(r, 500));
      expect(receiver.deliveries).toHaveLength(2);
    } finally {
      await receiver.close();
    }
  });

  it("webhook: a 429's Retry-After holds the retry back beyond our own backoff", async () => {
    // our backoff here is 100 ms; the receiver asks for 2 s
    const receiver = await startWebhookReceiver((n) =>
      n === 1 ? { status: 429, headers: { 'retry-after': '2' } } : 200,
    );
    try {
      const c = await createCampaign({ channel: 'webhook', webhook: { url: receiver.url } });
      await changes.send([change(cfg.keys.workspace, c.segmentId, 'p-ra', { plan: 'pro' })]);
      await eventually('two attempts', () => receiver.deliveries.length >= 2, 15_000);
      const [a, b] = receiver.deliveries;
      expect(b!.at! - a!.at!).toBeGreaterThanOrEqual(1_900);
      const s = await eventually('stats', async () => {
        const s = await stats(c.id);
        return s.sent === 1 ? s : undefined;
      });
      expect(s).toMatchObject({ sent: 1, failed: 0, retried: 1 });
    } finally {
      await receiver.close();
    }
  });

  it('email: rendered, one-click unsubscribe headers; the link unsubscribes and the next send is suppressed', async () => {
    const c = await createCampaign({
      channel: 'email',
      email: {
        subject: 'Welcome, {{ traits.name | upcase }}',
        text: 'Hi {{ traits.name }}, your plan is {{ traits.plan }}. Leave: {{ unsubscribe_url }}',
        html: '<p>Hi {{ traits.name | escape }}</p>',
      },
    });
    const traits = { plan: 'pro', name: 'Ada', email: 'ada@example.test' };
    await changes.send([change(cfg.keys.workspace, c.segmentId, 'p-mail', traits)]);
    const mail = await eventually('the mail', () =>
      smtp.mails.find((m) => m.to.includes('ada@example.test')),
    );
    expect(mail.headers.get('subject')).toBe('Welcome, ADA');
    expect(mail.headers.get('list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
    const link = /^<(.+)>$/.exec(mail.headers.get('list-unsubscribe') ?? '')?.[1];
    expect(link).toMatch(/\/v1\/unsubscribe\?token=/);
    expect(mail.raw.replace(/=\r?\n/g, '')).toContain('your plan is pro');

    // a tampered token is refused
    const tampered = `${link!.slice(0, -3)}${link!.endsWith('A') ? 'B' : 'A'}xx`;
    expect((await fetch(tampered)).status).toBe(400);
    // the page changes nothing; the one-click POST unsubscribes
    const page = await fetch(link!);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<form method="post"');
    // the person as the processor keeps them (the consent API answers 404 for an unknown id)
    const redis = new Redis(cfg.redis.url);
    await redis.hset(workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).profile('p-mail'), { id: 'p-mail' });
    redis.disconnect();
    const before = (await (await api('/v1/profiles/p-mail/consent')).json()) as { consents: unknown[] };
    expect(before.consents).toEqual([]);
    const post = await fetch(link!, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(post.status).toBe(200);
    const after = (await (await api('/v1/profiles/p-mail/consent')).json()) as {
      consents: Array<{ channel: string; purpose: string; subscribed: boolean }>;
    };
    expect(after.consents).toMatchObject([{ channel: 'email', purpose: 'marketing', subscribed: false }]);

    // the next entry of the same person is suppressed by consent
    await changes.send([change(cfg.keys.workspace, c.segmentId, 'p-mail', traits, 3)]);
    await eventually(
      'the suppression in stats',
      async () => (await stats(c.id)).suppressed.byReason.consent === 1,
    );
    expect(smtp.mails.filter((m) => m.to.includes('ada@example.test'))).toHaveLength(1);
  });

  it('sms: Twilio form post with basic auth, status callback and the send key', async () => {
    const c = await createCampaign({ channel: 'sms', sms: { body: 'Hi {{ traits.name }}!' } });
    await changes.send([
      change(cfg.keys.workspace, c.segmentId, 'p-sms', {
        plan: 'pro',
        name: 'Bo',
        phone: '+1 (555) 010-2030',
      }),
    ]);
    const m = await eventually('the SMS', () => sms.messages.find((r) => r.body === 'Hi Bo!'));
    expect(m).toMatchObject({
      to: '+15550102030',
      from: '+15550001',
      // delivery reports come back to the ingest host's signed webhook
      statusCallback: `https://in.shop.test/v1/webhooks/sms/twilio/${cfg.keys.workspace}/status`,
    });
    expect(m.headers['i-twilio-idempotency-token']).toMatch(/^msg_/);
    await eventually('sent in stats', async () => (await stats(c.id)).sent === 1);
    const rows = await eventually('the ledger row', async () => {
      const r = await api(`/v1/ledger?campaignId=${c.id}`);
      const body = (await r.json()) as { items?: Array<{ outcome: string; providerId?: string }> };
      return body.items?.find((x) => x.outcome === 'sent');
    });
    expect(rows.providerId).toBe(m.sid);
  });

  it('sms: a number Twilio calls invalid (21211) or opted out (21610) fails once and is suppressed; throttling waits its Retry-After', async () => {
    const c = await createCampaign({ channel: 'sms', sms: { body: 'Offer for {{ traits.name }}' } });
    sms.optOut('+15550107777');
    sms.failNext({ status: 429, retryAfter: '1' });
    await changes.send([
      change(cfg.keys.workspace, c.segmentId, 'p-sms-bad', { plan: 'pro', name: 'Bad', phone: '5550101' }),
      change(cfg.keys.workspace, c.segmentId, 'p-sms-stop', {
        plan: 'pro',
        name: 'Stop',
        phone: '+15550107777',
      }),
      change(cfg.keys.workspace, c.segmentId, 'p-sms-ok', { plan: 'pro', name: 'Ok', phone: '+15550108888' }),
    ]);
    const s = await eventually('three decisions', async () => {
      const s = await stats(c.id);
      return s.sent + s.failed === 3 ? s : undefined;
    });
    expect(s).toMatchObject({ sent: 1, failed: 2 });
    expect(s.retried).toBeGreaterThanOrEqual(1); // the 429
    expect(sms.messages.filter((m) => m.body.startsWith('Offer for'))).toHaveLength(1);
    // the throttled message is tried again only after Twilio's Retry-After (1 s; our backoff is 100 ms)
    const throttled = sms.requests.find((r) => r.status === 429)!;
    const again = sms.requests.find(
      (r) =>
        r.at > throttled.at &&
        new URLSearchParams(r.body).get('To') === new URLSearchParams(throttled.body).get('To'),
    )!;
    expect(again.at - throttled.at).toBeGreaterThanOrEqual(950);
    const ledger = (await (await api(`/v1/ledger?campaignId=${c.id}`)).json()) as {
      items: Array<{ outcome: string; reason: string }>;
    };
    const reasons = ledger.items.filter((r) => r.outcome === 'failed').map((r) => r.reason);
    expect(reasons.sort()).toEqual([
      expect.stringMatching(/^invalid_recipient: Twilio 21211: Invalid 'To' Phone Number/),
      expect.stringMatching(/^invalid_recipient: Twilio 21610: /),
    ]);
    // both numbers are on the suppression list: the next campaign does not try them
    const next = await createCampaign({ channel: 'sms', sms: { body: 'Again {{ traits.name }}' } });
    const before = sms.requests.length;
    await changes.send([
      change(cfg.keys.workspace, next.segmentId, 'p-sms-bad', { plan: 'pro', name: 'Bad', phone: '5550101' }),
      change(cfg.keys.workspace, next.segmentId, 'p-sms-stop', {
        plan: 'pro',
        name: 'Stop',
        phone: '+15550107777',
      }),
    ]);
    await eventually(
      'both suppressed',
      async () => (await stats(next.id)).suppressed.byReason.suppression_list === 2,
    );
    expect(sms.requests.length).toBe(before);
  });

  it('push: FCM v1 message with a service account’s OAuth token; no token → suppressed', async () => {
    const c = await createCampaign({
      channel: 'push',
      push: { title: 'Hey {{ traits.name }}', body: 'Plan {{ traits.plan }}', tokenTrait: 'deviceToken' },
    });
    await changes.send([
      change(cfg.keys.workspace, c.segmentId, 'p-push', { plan: 'pro', name: 'Cy', deviceToken: 'tok-1' }),
      change(cfg.keys.workspace, c.segmentId, 'p-notoken', { plan: 'pro', name: 'Di' }),
    ]);
    const sent = await eventually('the push message', () => push.messages[0]);
    expect(sent.bearer).toMatch(/^ya29\./);
    expect(push.grants).toHaveLength(1);
    expect(sent.message).toMatchObject({
      token: 'tok-1',
      notification: { title: 'Hey Cy', body: 'Plan pro' },
    });
    expect((sent.message.data as Record<string, string>).sendKey).toMatch(/^msg_/);
    await eventually('stats', async () => {
      const s = await stats(c.id);
      return s.sent === 1 && s.suppressed.byReason.no_address === 1;
    });
    expect(push.messages).toHaveLength(1);
  });

  it('push: a token FCM calls unregistered fails once and goes on the suppression list; the next send to it is suppressed', async () => {
    const c = await createCampaign({ channel: 'push', push: { title: 'Hi', body: 'There' } });
    await changes.send([
      change(cfg.keys.workspace, c.segmentId, 'p-gone', { plan: 'pro', pushToken: 'gone' }),
    ]);
    await eventually('failed as invalid', async () => (await stats(c.id)).failed === 1);
    const list = (await (await api('/v1/suppressions')).json()) as {
      suppressions: Array<{ kind: string; value: string }>;
    };
    expect(list.suppressions).toContainEqual({ kind: 'device', value: 'gone' });
    // another person holding the same (dead) token: not tried again
    await changes.send([
      change(cfg.keys.workspace, c.segmentId, 'p-gone-2', { plan: 'pro', pushToken: 'gone' }),
    ]);
    await eventually(
      'suppressed',
      async () => (await stats(c.id)).suppressed.byReason.suppression_list === 1,
    );
    expect((await stats(c.id)).failed).toBe(1);
    // an operator can take it off the list
    expect((await api('/v1/suppressions?deviceToken=gone', { method: 'DELETE' })).status).toBe(204);
  });

  it('paused campaigns send nothing; resumed ones do', async () => {
    const receiver = await startWebhookReceiver();
    try {
      const c = await createCampaign({ channel: 'webhook', webhook: { url: receiver.url } });
      const paused = await api(`/v1/campaigns/${c.id}/pause`, { method: 'POST' });
      expect(((await paused.json()) as { status: string; version: number }).status).toBe('paused');
      await new Promise((r) => setTimeout(r, 600));
      await changes.send([change(cfg.keys.workspace, c.segmentId, 'p-paused', { plan: 'pro' })]);
      await new Promise((r) => setTimeout(r, 1500));
      expect(receiver.deliveries).toHaveLength(0);
      const resumed = await api(`/v1/campaigns/${c.id}/resume`, { method: 'POST' });
      expect(((await resumed.json()) as { status: string; version: number }).version).toBe(3);
      await new Promise((r) => setTimeout(r, 600));
      await changes.send([change(cfg.keys.workspace, c.segmentId, 'p-resumed', { plan: 'pro' })]);
      await eventually('a delivery after resume', () => receiver.deliveries.length === 1);
      expect(JSON.parse(receiver.deliveries[0]!.body).profileId).toBe('p-resumed');
    } finally {
      await receiver.close();
    }
  });

  it('receiver down past every retry → dead letter; cdp dlq replay delivers it', async () => {
    let up = false;
    const receiver = await startWebhookReceiver(() => (up ? 200 : 503));
    try {
      const c = await createCampaign({ channel: 'webhook', webhook: { url: receiver.url } });
      await changes.send([change(cfg.keys.workspace, c.segmentId, 'p-dlq', { plan: 'pro' })]);
      await eventually('failed in stats', async () => (await stats(c.id)).failed === 1, 30_000);
      expect(receiver.deliveries).toHaveLength(3); // CDP_ACTIVATION_MAX_ATTEMPTS
      up = true;
      const r = await replayDeadLetters({ brokers: cfg.kafka.brokers, topicPrefix: cfg.kafka.topicPrefix });
      expect(r).toEqual({ replayed: 1, skipped: 0 });
      await eventually('delivered after replay', async () => (await stats(c.id)).sent === 1);
      expect(receiver.deliveries).toHaveLength(4);
      // a second replay finds nothing new
      expect(
        (await replayDeadLetters({ brokers: cfg.kafka.brokers, topicPrefix: cfg.kafka.topicPrefix }))
          .replayed,
      ).toBe(0);
    } finally {
      await receiver.close();
    }
  });
});
