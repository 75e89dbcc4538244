// Profile hijack through a public key (issue 18, item 2), on the real stack: ingest, Kafka,
// the processor's Lua on Redis, activation with a real SMTP server and an SMS provider
// stand-in. A browser (client) write key is public: whoever has it must not be able to
// attach their events to a known person by sending her email, nor change where her
// messages go. A server key keeps the documented behaviour (an email links to its person).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { startSmtpServer } from '../activation-peers.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startTwilio } from '../twilio.ts';

let cfg: Config;
let running: RunningServices;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let sms: Awaited<ReturnType<typeof startTwilio>>;
let clientKey: string;

const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${running.urls.query}${path}`, {
    method,
    headers: admin(),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Sends one call with a write key, as the browser SDK does (text/plain JSON). */
async function send(key: string, call: string, body: Record<string, unknown>) {
  const res = await fetch(`${running.urls.ingest}/v1/${call}`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}`,
      'content-type': 'text/plain',
    },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
}

interface Profile {
  id: string;
  userIds: string[];
  anonymousIds: string[];
  emails?: string[];
  traits: Record<string, unknown>;
}

async function profileBy(param: string, value: string): Promise<Profile | undefined> {
  const res = await api('GET', `/v1/profiles?${param}=${encodeURIComponent(value)}`);
  return res.status === 200 ? (res.body as unknown as Profile) : undefined;
}

beforeAll(async () => {
  smtp = await startSmtpServer();
  sms = await startTwilio({ accountSid: 'AC1', authToken: 'sms-token' });
  cfg = testConfig({
    SMTP_URL: smtp.url,
    CDP_EMAIL_FROM: 'Shop <news@shop.test>',
    CDP_SMS_BASE_URL: sms.url,
    CDP_SMS_ACCOUNT_SID: 'AC1',
    CDP_SMS_AUTH_TOKEN: 'sms-token',
    CDP_SMS_FROM: '+15550001',
  });
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  cfg.unsubscribe.publicUrl = running.urls.query!;
});

afterAll(async () => {
  await running?.stop();
  await Promise.all([smtp?.close(), sms?.close()]);
});

describe('write key kinds', () => {
  it('a client key is created with its kind; lists show keys masked, the 201 in full', async () => {
    const created = await api('POST', '/v1/write-keys', { name: 'website', kind: 'client' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'website', kind: 'client', workspaceId: cfg.keys.workspace });
    clientKey = created.body.key as string;
    expect(clientKey).toMatch(/^wk_live_.{24}$/);
    const server = await api('POST', '/v1/write-keys', { name: 'backend' });
    expect(server.body.kind).toBe('server');
    expect((await api('POST', '/v1/write-keys', { name: 'x', kind: 'admin' })).status).toBe(400);

    const list = (await api('GET', '/v1/write-keys')).body.writeKeys as Array<{
      id: string;
      key: string;
      kind: string;
    }>;
    const listed = list.find((k) => k.id === created.body.id)!;
    expect(listed.kind).toBe('client');
    expect(listed.key).not.toBe(clientKey);
    expect(listed.key).toBe(`${clientKey.slice(0, 12)}…${clientKey.slice(-4)}`);
    expect(JSON.stringify(list)).not.toContain(clientKey.slice(12, -4));
    // usable at ingest as soon as ingest has reloaded its keys
    await eventually(
      'the client key accepted',
      async () =>
        (
          await fetch(`${running.urls.ingest}/v1/track`, {
            method: 'POST',
            headers: {
              authorization: `Basic ${Buffer.from(`${clientKey}:`).toString('base64')}`,
              'content-type': 'application/json',
            },
            body: JSON.stringify({ anonymousId: uniqueId('warmup'), event: 'Warm Up' }),
          })
        ).status === 200,
      10_000,
      100,
    );
  });

  it('the workspace setting: restricted by default, editable, back to the default with null', async () => {
    expect((await api('GET', '/v1/settings')).body).toEqual({
      clientKeys: 'restricted',
      clientKeysSource: 'default',
      doubleOptIn: null,
    });
    expect((await api('PUT', '/v1/settings', { clientKeys: 'sometimes' })).status).toBe(400);
    expect((await api('PUT', '/v1/settings', { clientKeys: 'trusted' })).body).toEqual({
      clientKeys: 'trusted',
      clientKeysSource: 'workspace',
      doubleOptIn: null,
    });
    expect((await api('PUT', '/v1/settings', { clientKeys: null })).body).toEqual({
      clientKeys: 'restricted',
      clientKeysSource: 'default',
      doubleOptIn: null,
    });
  });
});

describe('profile hijack through a public key', () => {
  it("an attacker's client-key events with a known person's email and phone leave her profile and her messages alone", async () => {
    const ada = uniqueId('ada');
    const email = `${ada}@victim.test`;
    const phone = '+15550100';
    await send(cfg.keys.writeKey, 'identify', {
      userId: ada,
      anonymousId: `${ada}-laptop`,
      traits: { email, phone, name: 'Ada', plan: 'free' },
    });
    const victim = await eventually('the victim known', () => profileBy('userId', ada));
    expect(victim.traits).toMatchObject({ email, phone });

    // anonymous events from the attacker's browser, with the public key of the site
    const attacker = uniqueId('attacker');
    await send(clientKey, 'identify', { anonymousId: attacker, traits: { email, phone: '+15559999' } });
    await send(clientKey, 't', {
      anonymousId: attacker,
      event: 'Viewed Account',
      context: { traits: { email, phone: '+15559999', pushToken: 'evil-token' } },
    });
    await send(clientKey, 'identify', { anonymousId: attacker, traits: { email: 'mallory@evil.test' } });
    // and a client identify naming her userId, as a logged-in browser would send it
    await send(clientKey, 'identify', {
      userId: ada,
      anonymousId: `${attacker}-2`,
      traits: { email: 'mallory@evil.test', phone: '+15559999', name: 'Ada L.' },
    });

    // the attacker's anonymous id has a profile of its own once the last of its events is in
    const own = await eventually('the attacker profile with its last email', async () => {
      const p = await profileBy('anonymousId', attacker);
      return p && p.traits.email === 'mallory@evil.test' ? p : undefined;
    });
    expect(own.id).not.toBe(victim.id);
    expect(own.userIds).toEqual([]);
    const after = await eventually('the client identify with her userId applied', async () => {
      const p = await profileBy('userId', ada);
      return p?.traits.name === 'Ada L.' ? p : undefined;
    });
    expect(after.id).toBe(victim.id);
    expect(after.traits).toMatchObject({ email, phone, plan: 'free' });
    expect(after.traits.pushToken).toBeUndefined();
    expect(after.anonymousIds).not.toContain(attacker);
    expect((await profileBy('email', email))?.id).toBe(victim.id);
    expect(await profileBy('email', 'mallory@evil.test')).toMatchObject({ id: own.id });

    // a campaign to her still reaches her address and her phone
    const seg = await api('POST', '/v1/segments', {
      name: `VIP ${ada}`,
      rule: {
        and: [{ '==': [{ var: 'traits.plan' }, 'vip'] }, { '==': [{ var: 'traits.name' }, 'Ada L.'] }],
      },
    });
    expect(seg.status).toBe(201);
    for (const channel of [
      { channel: 'email', email: { subject: 'Hi {{ traits.name }}', text: 'Your VIP offer' } },
      { channel: 'sms', sms: { body: 'VIP offer for {{ traits.name }}' } },
    ])
      expect(
        (
          await api('POST', '/v1/campaigns', {
            name: `VIP ${channel.channel}`,
            segmentId: seg.body.id,
            on: 'enter',
            ...channel,
          })
        ).status,
      ).toBe(201);
    await send(cfg.keys.writeKey, 'identify', { userId: ada, traits: { plan: 'vip' } });
    const mail = await eventually('the VIP mail', () =>
      smtp.mails.find((m) => m.headers.get('subject')?.includes('Ada L.')),
    );
    expect(mail.to).toEqual([email]);
    const text = await eventually('the VIP SMS', () => sms.messages.find((m) => m.body.includes('Ada L.')));
    expect(text.to).toBe(phone);
    expect(smtp.mails.some((m) => m.to.includes('mallory@evil.test'))).toBe(false);
    expect(sms.requests.some((r) => new URLSearchParams(r.body).get('To') === '+15559999')).toBe(false);
    expect(sms.messages.some((m) => m.to === '+15559999')).toBe(false);
  });

  it('the same anonymous event from a server key links to the known person, as documented', async () => {
    const bo = uniqueId('bo');
    const email = `${bo}@example.test`;
    await send(cfg.keys.writeKey, 'identify', { userId: bo, traits: { email, phone: '+15550200' } });
    const known = await eventually('bo known', () => profileBy('userId', bo));
    await send(cfg.keys.writeKey, 'identify', {
      anonymousId: `${bo}-tablet`,
      traits: { email, phone: '+15550201' },
    });
    const linked = await eventually('the tablet linked to bo', () =>
      profileBy('anonymousId', `${bo}-tablet`),
    );
    expect(linked.id).toBe(known.id);
    await eventually(
      'the server key changed her phone',
      async () => (await profileBy('userId', bo))?.traits.phone === '+15550201',
    );
  });
});
