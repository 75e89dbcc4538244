// Soft bounces are sent again: a campaign email the provider soft-bounced goes out once more
// after the configured delay, through the running activation worker and a real SMTP server,
// as a send of its own (send key `.r1`, its own Message-ID and ledger row), rendered from the
// profile's traits as they are then; the policy still decides (an address hard-bounced since
// is suppressed); past the last delay nothing more is scheduled; what is not ours is ignored;
// the same provider event scheduled again (a crash after scheduling, a lost `done` marker)
// queues nothing more; a webhook whose tags are not signed for the workspace brings no resend.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootSendKey, softBounceResender } from '../../activation/soft-bounce-resend.ts';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { createRedis, type Redis } from '../../runtime/redis.ts';
import { suppressionMember } from '../../schemas/contact.ts';
import { emailTagSecret, emailTagSignature } from '../../schemas/email-tags.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { topics } from '../../schemas/topics.ts';
import { change, segmentChangeProducer, startSmtpServer } from '../activation-peers.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let changes: Awaited<ReturnType<typeof segmentChangeProducer>>;
let redis: Redis;

const api = (path: string, init: RequestInit = {}) =>
  fetch(`${running.urls.query}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' },
  });

async function emailCampaign(reentry: 'once' | 'every' = 'once') {
  const seg = await api('/v1/segments', {
    method: 'POST',
    body: JSON.stringify({ name: uniqueId('s'), rule: { '==': [{ var: 'traits.plan' }, 'pro'] } }),
  });
  const segmentId = ((await seg.json()) as { id: string }).id;
  const res = await api('/v1/campaigns', {
    method: 'POST',
    body: JSON.stringify({
      name: uniqueId('c'),
      segmentId,
      on: 'enter',
      channel: 'email',
      email: { subject: 'Hello {{ traits.name }}', text: 'Plan {{ traits.plan }}' },
      policy: { reentry },
    }),
  });
  expect(res.status).toBe(201);
  await new Promise((r) => setTimeout(r, 600));
  return (await res.json()) as { id: string; segmentId: string };
}

/** The profile's traits as the processor keeps them (hash trait → JSON value). */
async function setTraits(profileId: string, traits: Record<string, unknown>) {
  const key = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).profileTraits(profileId);
  await redis.hset(key, Object.fromEntries(Object.entries(traits).map(([k, v]) => [k, JSON.stringify(v)])));
}

const mailsTo = (addr: string) => smtp.mails.filter((m) => m.to.includes(addr));

beforeAll(async () => {
  smtp = await startSmtpServer();
  cfg = testConfig({
    SMTP_URL: smtp.url,
    CDP_EMAIL_FROM: 'Shop <news@shop.test>',
    CDP_POSTMARK_WEBHOOK_USER: 'pm',
    CDP_POSTMARK_WEBHOOK_PASSWORD: 'pm-secret',
    CDP_EMAIL_SOFT_BOUNCE_RESENDS: '1',
  });
  running = await startServices(cfg, ['ingest', 'activation', 'ledger', 'query'], testLogger(cfg));
  cfg.unsubscribe.publicUrl = running.urls.query!;
  changes = await segmentChangeProducer(cfg.kafka.brokers, topics(cfg.kafka.topicPrefix).segmentChanges);
  redis = createRedis(cfg.redis.url, testLogger(cfg), 'soft-bounce-test');
});

afterAll(async () => {
  await changes?.close();
  await running?.stop();
  redis?.disconnect();
  await smtp?.close();
});

describe('soft-bounce resends', () => {
  it('sends the email again after each delay, as a send of its own, then stops', async () => {
    const c = await emailCampaign('once');
    const pid = uniqueId('p');
    const email = `${pid}@example.test`;
    const traits = { plan: 'pro', name: 'Ada', email };
    await setTraits(pid, traits);
    await changes.send([change(cfg.keys.workspace, c.segmentId, pid, traits)]);
    const first = await eventually('the first mail', () => mailsTo(email)[0]);
    const key = first.headers.get('x-cdp-send-key')!;
    expect(rootSendKey(key)).toBe(key);

    // the name changed since: the resend says what the profile says now
    await setTraits(pid, { name: 'Ada L.' });
    const resender = softBounceResender({ redis, redisPrefix: cfg.redis.prefix, delaysS: [1, 1] });
    const bounce = {
      workspaceId: cfg.keys.workspace,
      provider: 'sendgrid',
      address: email,
      campaignId: c.id,
      profileId: pid,
      reason: 'sendgrid blocked',
    };
    const at = Date.now();
    const one = await resender.schedule({
      ...bounce,
      sendKey: key,
      eventId: 'sendgrid:e1',
      at: new Date(at),
    });
    expect(one).toMatchObject({ kind: 'scheduled', n: 1, sendKey: `${key}.r1`, atMs: at + 1000 });
    const second = await eventually('the resend', () => mailsTo(email)[1], 15_000);
    expect(second.headers.get('x-cdp-send-key')).toBe(`${key}.r1`);
    expect(second.headers.get('message-id')).not.toBe(first.headers.get('message-id'));
    expect(second.headers.get('subject')).toBe('Hello Ada L.');

    // the resend bounced softly too: one more, then no more
    const two = await resender.schedule({
      ...bounce,
      sendKey: `${key}.r1`,
      eventId: 'sendgrid:e2',
      at: new Date(),
    });
    expect(two).toMatchObject({ kind: 'scheduled', n: 2, sendKey: `${key}.r2` });
    await eventually('the second resend', () => mailsTo(email)[2], 15_000);
    expect(
      await resender.schedule({ ...bounce, sendKey: `${key}.r2`, eventId: 'sendgrid:e3', at: new Date() }),
    ).toEqual({
      kind: 'exhausted',
      n: 2,
    });
    await new Promise((r) => setTimeout(r, 2500));
    expect(mailsTo(email)).toHaveLength(3);

    // each is its own ledger row under the campaign and its segment
    const rows = await eventually('three sent rows', async () => {
      const r = (await (await api(`/v1/ledger?campaignId=${c.id}&outcome=sent`)).json()) as {
        items: Array<{ sendKey: string; segmentId: string }>;
      };
      return r.items.length === 3 ? r.items : undefined;
    });
    expect(rows.map((r) => r.sendKey).sort()).toEqual([key, `${key}.r1`, `${key}.r2`].sort());
    expect(new Set(rows.map((r) => r.segmentId))).toEqual(new Set([c.segmentId]));
  });

  it("through the ingest host: Postmark's SoftBounce webhook for our send brings the resend; a redelivery does not", async () => {
    const c = await emailCampaign('once');
    const pid = uniqueId('p');
    const email = `${pid}@example.test`;
    const traits = { plan: 'pro', name: 'Cy', email };
    await setTraits(pid, traits);
    await changes.send([change(cfg.keys.workspace, c.segmentId, pid, traits)]);
    const first = await eventually('the first mail', () => mailsTo(email)[0]);
    const key = first.headers.get('x-cdp-send-key')!;
    // what Postmark posts for a soft bounce, its Metadata being what we sent with the message
    const bounce = {
      RecordType: 'Bounce',
      ID: Math.floor(Math.random() * 1e9),
      Type: 'SoftBounce',
      TypeCode: 4096,
      Name: 'Soft bounce',
      MessageID: '883953f4-6105-42a2-a16a-77a8eac79483',
      Description: 'The server was unable to deliver your message (ex: unknown user, mailbox not found).',
      Details: '452 4.2.2 Mailbox full',
      Email: email,
      BouncedAt: new Date().toISOString(),
      Metadata: {
        cdp_send_key: key,
        cdp_campaign: c.id,
        cdp_profile: pid,
        cdp_ws: cfg.keys.workspace,
        cdp_sig: emailTagSignature(emailTagSecret(cfg.unsubscribe.secret), {
          workspaceId: cfg.keys.workspace,
          sendKey: key,
          campaignId: c.id,
          profileId: pid,
        }),
      },
      MessageStream: 'broadcast',
    };
    const post = (b: unknown = bounce) =>
      fetch(`${running.urls.ingest}/v1/webhooks/email/postmark/${cfg.keys.workspace}`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from('pm:pm-secret').toString('base64')}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify(b),
      });
    // forged first: the same send's tags unsigned, and signed for another workspace
    const { cdp_sig: _sig, ...unsigned } = bounce.Metadata;
    expect((await post({ ...bounce, ID: bounce.ID + 1, Metadata: unsigned })).status).toBe(200);
    const otherWs = {
      ...bounce.Metadata,
      cdp_ws: 'ws_other',
      cdp_sig: emailTagSignature(emailTagSecret(cfg.unsubscribe.secret), {
        workspaceId: 'ws_other',
        sendKey: key,
        campaignId: c.id,
        profileId: pid,
      }),
    };
    expect((await post({ ...bounce, ID: bounce.ID + 2, Metadata: otherWs })).status).toBe(200);
    expect((await post()).status).toBe(200);
    expect((await post()).status).toBe(200); // Postmark redelivers: one resend all the same
    const second = await eventually('the resend', () => mailsTo(email)[1], 15_000);
    expect(second.headers.get('x-cdp-send-key')).toBe(`${key}.r1`);
    await new Promise((r) => setTimeout(r, 2500));
    expect(mailsTo(email)).toHaveLength(2);
    // the soft bounce is in the campaign's ledger beside both sends
    await eventually('ledger rows', async () => {
      const r = (await (await api(`/v1/ledger?campaignId=${c.id}`)).json()) as {
        items: Array<{ outcome: string; sendKey: string }>;
      };
      const got = r.items.map((i) => `${i.outcome}:${i.sendKey}`).sort();
      return got.join() === [`sent:${key}`, `sent:${key}.r1`, `soft_bounced:${key}`].sort().join();
    });
  });

  it('a resend is decided afresh: an address hard-bounced since is suppressed', async () => {
    const c = await emailCampaign('every');
    const pid = uniqueId('p');
    const email = `${pid}@example.test`;
    const traits = { plan: 'pro', name: 'Bo', email };
    await setTraits(pid, traits);
    await changes.send([change(cfg.keys.workspace, c.segmentId, pid, traits)]);
    const first = await eventually('the first mail', () => mailsTo(email)[0]);
    await redis.sadd(
      workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).suppressions,
      suppressionMember('email', email),
    );
    const resender = softBounceResender({ redis, redisPrefix: cfg.redis.prefix, delaysS: [0] });
    await resender.schedule({
      workspaceId: cfg.keys.workspace,
      provider: 'postmark',
      address: email,
      sendKey: first.headers.get('x-cdp-send-key')!,
      campaignId: c.id,
      profileId: pid,
      eventId: 'postmark:Bounce:1',
      at: new Date(),
      reason: 'postmark SoftBounce',
    });
    await eventually('the resend suppressed', async () => {
      const r = (await (await api(`/v1/ledger?campaignId=${c.id}&outcome=suppressed`)).json()) as {
        items: Array<{ reason: string }>;
      };
      return r.items.some((i) => i.reason === 'suppression_list');
    });
    expect(mailsTo(email)).toHaveLength(1);
  });

  it('is idempotent per provider event: the same event again (a crash after scheduling) queues nothing more', async () => {
    const resender = softBounceResender({ redis, redisPrefix: cfg.redis.prefix, delaysS: [3600, 7200] });
    const root = `msg_${uniqueId('').padEnd(32, 'z')}`;
    const queued = async () =>
      (await redis.zrange(globalKeys(cfg.redis.prefix).activationDelayed, 0, -1))
        .map((m) => JSON.parse(m) as { job: { resend?: { of: string; n: number } } })
        .filter((d) => d.job.resend?.of === root)
        .map((d) => d.job.resend!.n)
        .sort();
    const ev = {
      workspaceId: cfg.keys.workspace,
      provider: 'ses',
      address: 'idem@example.test',
      sendKey: root,
      campaignId: 'cmp_idem',
      profileId: 'p-idem',
      eventId: 'ses:m-idem:idem@example.test',
      at: new Date(),
      reason: 'Transient/MailboxFull',
    };
    const first = await resender.schedule(ev);
    expect(first).toMatchObject({ kind: 'scheduled', n: 1, sendKey: `${root}.r1` });
    expect(first).not.toHaveProperty('already');
    // the webhook crashed before its `done` marker: SNS redelivers, the hook runs again
    for (let i = 0; i < 3; i++) expect(await resender.schedule(ev)).toEqual({ ...first, already: true });
    expect(await queued()).toEqual([1]);
    // a different event of the same send is the next resend; a third is past the last delay
    expect(await resender.schedule({ ...ev, eventId: 'ses:m-idem-2:idem@example.test' })).toMatchObject({
      kind: 'scheduled',
      n: 2,
    });
    expect(await resender.schedule({ ...ev, eventId: 'ses:m-idem-3:idem@example.test' })).toEqual({
      kind: 'exhausted',
      n: 2,
    });
    expect(await resender.schedule({ ...ev, eventId: 'ses:m-idem-2:idem@example.test' })).toMatchObject({
      n: 2,
      already: true,
    });
    expect(await queued()).toEqual([1, 2]);
    // ours only (an hour away: they would not go during this file anyway)
    const delayed = globalKeys(cfg.redis.prefix).activationDelayed;
    for (const m of await redis.zrange(delayed, 0, -1)) if (m.includes(root)) await redis.zrem(delayed, m);
  });

  it('ignores what it cannot tie to a campaign send of ours', async () => {
    const resender = softBounceResender({ redis, redisPrefix: cfg.redis.prefix, delaysS: [0] });
    const base = {
      workspaceId: cfg.keys.workspace,
      provider: 'ses',
      address: 'x@example.test',
      eventId: 'ses:m-1:x@example.test',
      at: new Date(),
      reason: 'ses Transient',
    };
    const cases = [
      { ...base },
      { ...base, sendKey: 'not-ours', campaignId: 'c', profileId: 'p' },
      { ...base, sendKey: `msg_${'a'.repeat(32)}`, profileId: 'p' },
      { ...base, sendKey: `msg_${'a'.repeat(32)}`, campaignId: 'j1@2.n3', profileId: 'p' },
      { ...base, sendKey: `msg_${'a'.repeat(32)}`, campaignId: 'c', profileId: 'p x' },
      { ...base, sendKey: `msg_${'a'.repeat(32)}`, campaignId: 'c'.repeat(201), profileId: 'p' },
      { ...base, sendKey: `msg_${'a'.repeat(32)}`, campaignId: 'c', profileId: 'p', eventId: '' },
    ];
    for (const ev of cases) expect((await resender.schedule(ev)).kind, JSON.stringify(ev)).toBe('untracked');
    const off = softBounceResender({ redis, redisPrefix: cfg.redis.prefix, delaysS: [] });
    expect(
      (await off.schedule({ ...base, sendKey: `msg_${'b'.repeat(32)}`, campaignId: 'c', profileId: 'p' }))
        .kind,
    ).toBe('untracked');
  });
});
