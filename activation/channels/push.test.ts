// The push channel against local providers that check the real contracts (test/push-providers.ts):
// FCM HTTP v1 with a service account's OAuth token (fetched once, renewed before it expires
// and when refused), APNs over HTTP/2 with an ES256 provider token (renewed after 40 minutes
// and when Apple calls it expired); gone device tokens are marked invalid, throttling retried.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CampaignDefinition } from '../../schemas/campaign.ts';
import { change } from '../../test/activation-peers.ts';
import { startApns, startFcm } from '../../test/push-providers.ts';
import type { PushDevice, PushTargets, SendRequest } from './channel.ts';
import { parseServiceAccount } from './google-oauth.ts';
import { pushChannel } from './push.ts';

let clock = Date.parse('2026-06-01T10:00:00Z');
const now = () => clock;
let fcm: Awaited<ReturnType<typeof startFcm>>;
let apns: Awaited<ReturnType<typeof startApns>>;

beforeAll(async () => {
  fcm = await startFcm({ now });
  apns = await startApns({ now, teamId: 'TEAM123456', keyId: 'KEY1234567', topic: 'com.shop.app' });
});
afterAll(async () => {
  await fcm?.close();
  await apns?.close();
});

function request(token: string): SendRequest {
  const at = new Date(clock).toISOString();
  const campaign: CampaignDefinition = {
    id: 'cmp_push',
    workspaceId: 'ws',
    name: 'Push',
    segmentId: 'seg',
    on: 'enter',
    channel: 'push',
    push: { title: 'Hi {{ traits.name }}', body: 'Your plan: {{ traits.plan }}', data: { screen: 'offers' } },
    status: 'active',
    version: 1,
    createdAt: at,
    updatedAt: at,
  };
  return {
    campaign,
    change: change('ws', 'seg', 'p1', { name: 'Ada', plan: 'pro', pushToken: token }),
    sendKey: `msg_${Math.random().toString(36).slice(2)}`,
    recipient: token,
    unsubscribeUrl: 'http://127.0.0.1/unused',
    nowMs: clock,
  };
}

describe('FCM HTTP v1 with a service account', () => {
  const channel = () =>
    pushChannel({
      provider: 'fcm',
      baseUrl: fcm.url,
      project: '',
      token: '',
      serviceAccount: fcm.serviceAccountJson,
      timeoutMs: 2000,
      now,
    });

  it('fetches one access token for many sends and renews it before it expires', async () => {
    const push = channel();
    const grants = fcm.grants.length;
    const results = await Promise.all(
      [request('tok-a'), request('tok-b'), request('tok-c')].map((r) => push.send(r)),
    );
    expect(results.map((r) => r.ok)).toEqual([true, true, true]);
    expect(results[0]!.providerId).toMatch(/^projects\/p1\/messages\/\d+$/);
    expect(fcm.grants.length - grants).toBe(1); // three concurrent sends, one grant
    const sent = fcm.messages.at(-1)!.message as { notification: unknown; data: Record<string, string> };
    expect(sent.notification).toEqual({ title: 'Hi Ada', body: 'Your plan: pro' });
    expect(sent.data.screen).toBe('offers');
    expect(sent.data.sendKey).toMatch(/^msg_/);
    // the send key collapses a repeat on the device (Android tag / collapse key, iOS collapse id)
    expect(sent).toMatchObject({
      android: { collapse_key: sent.data.sendKey, notification: { tag: sent.data.sendKey } },
      apns: { headers: { 'apns-collapse-id': sent.data.sendKey } },
    });
    clock += 50 * 60_000; // 50 minutes: still valid, no new grant
    expect((await push.send(request('tok-d'))).ok).toBe(true);
    expect(fcm.grants.length - grants).toBe(1);
    clock += 6 * 60_000; // under five minutes left: renewed before it runs out
    expect((await push.send(request('tok-e'))).ok).toBe(true);
    expect(fcm.grants.length - grants).toBe(2);
    expect(fcm.refusedGrants).toEqual([]);
  });

  it('a token the API refuses (401) is replaced once and the send tried again', async () => {
    const push = channel();
    expect((await push.send(request('tok-f'))).ok).toBe(true);
    const grants = fcm.grants.length;
    fcm.revokeAll();
    const r = await push.send(request('tok-g'));
    expect(r.ok).toBe(true);
    expect(fcm.grants.length - grants).toBe(1);
  });

  it('marks an unregistered or malformed device token invalid (not retried); throttling is retried', async () => {
    const push = channel();
    const gone = await push.send(request('gone'));
    expect(gone).toMatchObject({ ok: false, status: 404, retriable: false, invalidRecipient: true });
    const malformed = await push.send(request('malformed'));
    expect(malformed).toMatchObject({ ok: false, status: 400, retriable: false, invalidRecipient: true });
    const busy = await push.send(request('busy'));
    expect(busy).toMatchObject({ ok: false, status: 429, retriable: true });
    expect(busy.invalidRecipient).toBeUndefined();
  });

  it('a key the token endpoint refuses is a permanent failure naming it; a broken key is refused at start', async () => {
    const other = JSON.parse(fcm.serviceAccountJson) as Record<string, string>;
    // the same account name with another key: the signature does not verify
    const { generateKeyPairSync } = await import('node:crypto');
    other.private_key = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    const push = pushChannel({
      provider: 'fcm',
      baseUrl: fcm.url,
      project: '',
      token: '',
      serviceAccount: JSON.stringify(other),
      timeoutMs: 2000,
      now,
    });
    const r = await push.send(request('tok-h'));
    expect(r).toMatchObject({ ok: false, status: 400, retriable: false });
    expect(r.error).toMatch(/credentials.*invalid_grant/);
    expect(fcm.refusedGrants).toContain('signature');
    expect(() => parseServiceAccount('{"client_email": "x"}')).toThrow(/private_key/);
    expect(() => parseServiceAccount('{not json')).toThrow(/not JSON/);
  });
});

describe('APNs with a provider token', () => {
  const device = (c: string) => c.repeat(64);
  const channel = () =>
    pushChannel({
      provider: 'apns',
      baseUrl: '',
      project: '',
      token: '',
      apns: {
        url: apns.url,
        teamId: 'TEAM123456',
        keyId: 'KEY1234567',
        key: apns.keyPem,
        topic: 'com.shop.app',
      },
      timeoutMs: 2000,
      now,
    });

  it('sends over one HTTP/2 session with one provider token, made again after 40 minutes', async () => {
    const push = channel();
    try {
      const results = await Promise.all(['a', 'c', 'e'].map((c) => push.send(request(device(c)))));
      expect(results.map((r) => [r.ok, r.status])).toEqual([
        [true, 200],
        [true, 200],
        [true, 200],
      ]);
      const last = apns.delivered.slice(-3);
      expect(new Set(last.map((d) => d.jwt)).size).toBe(1);
      expect(last[0]!.payload).toMatchObject({
        aps: { alert: { title: 'Hi Ada', body: 'Your plan: pro' } },
        screen: 'offers',
      });
      expect(results[0]!.providerId).toBe(last.find((d) => d.token === device('a'))!.apnsId);
      clock += 41 * 60_000;
      expect((await push.send(request(device('f')))).ok).toBe(true);
      expect(apns.delivered.at(-1)!.jwt).not.toBe(last[0]!.jwt);
    } finally {
      await push.close?.();
    }
  });

  it('the same send carries the same apns-id; an expired provider token is made again and the send retried', async () => {
    const push = channel();
    try {
      const req = request(device('a'));
      await push.send(req);
      await push.send(req);
      const [x, y] = apns.delivered.slice(-2);
      expect(x!.apnsId).toBe(y!.apnsId);
      // and the same collapse id: the repeat replaces the first on the device
      expect(x!.collapseId).toBe(req.sendKey);
      expect(y!.collapseId).toBe(req.sendKey);
      apns.expireTokensBefore(clock + 1000);
      clock += 2000;
      const r = await push.send(request(device('e')));
      expect(r.ok).toBe(true);
      expect(apns.refused.at(-1)).toBe('ExpiredProviderToken');
    } finally {
      await push.close?.();
    }
  });

  it('Unregistered and BadDeviceToken mark the token invalid; TooManyRequests is retried', async () => {
    const push = channel();
    try {
      expect(await push.send(request(device('b')))).toMatchObject({
        ok: false,
        status: 410,
        retriable: false,
        invalidRecipient: true,
      });
      expect(await push.send(request('not-a-token'))).toMatchObject({
        ok: false,
        status: 400,
        retriable: false,
        invalidRecipient: true,
      });
      const busy = await push.send(request(device('d')));
      expect(busy).toMatchObject({ ok: false, status: 429, retriable: true });
      expect(busy.invalidRecipient).toBeUndefined();
    } finally {
      await push.close?.();
    }
  });

  it('refuses a send when APNs is not configured, and a key that is not an EC key at start', () => {
    const none = pushChannel({ provider: 'apns', baseUrl: '', project: '', token: '', timeoutMs: 1000, now });
    return none.send(request(device('a'))).then((r) => {
      expect(r).toMatchObject({ ok: false, retriable: false });
      expect(r.error).toMatch(/APNs is not configured/);
      const rsa = JSON.parse(fcm.serviceAccountJson).private_key as string;
      expect(() =>
        pushChannel({
          provider: 'apns',
          baseUrl: '',
          project: '',
          token: '',
          timeoutMs: 1000,
          now,
          apns: { url: apns.url, teamId: 'T', keyId: 'K', key: rsa, topic: 't' },
        }),
      ).toThrow(/EC/);
    });
  });
});

/** A profile's devices, with what the channel asks to record kept in memory. */
function devices(list: Array<[key: string, token: string, type: string]>, done: string[] = []) {
  const recorded = { delivered: [] as string[], invalid: [] as string[] };
  const targets: PushTargets = {
    list: list.map(([key, token, type]) => ({ key, token, type, seenMs: clock })),
    done: new Set(done),
    delivered: async (keys) => {
      recorded.delivered.push(...keys);
    },
    invalid: async (d: PushDevice) => {
      recorded.invalid.push(d.key);
    },
  };
  return { targets, recorded };
}

describe('to every device of a profile', () => {
  const fcmChannel = () =>
    pushChannel({
      provider: 'fcm',
      baseUrl: fcm.url,
      project: '',
      token: '',
      serviceAccount: fcm.serviceAccountJson,
      timeoutMs: 2000,
      now,
    });
  const count = (xs: string[], x: string) => xs.filter((y) => y === x).length;

  it('FCM: one notification per device; a gone token is handed back for removal; ok when any device took it', async () => {
    const push = fcmChannel();
    const { targets, recorded } = devices([
      ['i:and-1', 'dev-tok-1', 'android'],
      ['i:ios-1', 'dev-tok-2', 'ios'],
      ['i:old', 'gone', 'android'],
      ['i:raw-apns', 'f'.repeat(64), 'ios'],
    ]);
    // a raw APNs token (64 hex) is not something FCM can deliver to
    targets.list = push.devicesFor!(targets.list, 'ws1');
    expect(targets.list.map((d) => d.key)).toEqual(['i:and-1', 'i:ios-1', 'i:old']);
    const before = fcm.attempts.length;
    const r = await push.send({ ...request('unused-trait-token'), devices: targets });
    expect(r).toMatchObject({ ok: true, status: 200, delivered: 2, removed: 1 });
    expect(fcm.attempts.slice(before).sort()).toEqual(['dev-tok-1', 'dev-tok-2', 'gone']);
    expect(recorded.invalid).toEqual(['i:old']);
    // nothing left to retry: nothing recorded for a next attempt
    expect(recorded.delivered).toEqual([]);
    const sent = fcm.messages
      .slice(-2)
      .map((m) => m.message as { token: string; data: Record<string, string> });
    expect(new Set(sent.map((m) => m.data.sendKey)).size).toBe(1);
  });

  it('FCM: a device failing with 503 makes the send retriable, the reached ones are recorded, and the next attempt goes only to the rest', async () => {
    const push = fcmChannel();
    fcm.failNext('dev-tok-b');
    const first = devices([
      ['i:a', 'dev-tok-a', 'android'],
      ['i:b', 'dev-tok-b', 'android'],
    ]);
    const req = { ...request('unused'), devices: first.targets };
    const r1 = await push.send(req);
    expect(r1).toMatchObject({ ok: false, status: 503, retriable: true, delivered: 1, removed: 0 });
    expect(r1.error).toMatch(/^1 of 2 device\(s\) to try again/);
    expect(first.recorded.delivered).toEqual(['i:a']);
    const second = devices(
      [
        ['i:a', 'dev-tok-a', 'android'],
        ['i:b', 'dev-tok-b', 'android'],
      ],
      first.recorded.delivered,
    );
    const r2 = await push.send({ ...req, devices: second.targets });
    expect(r2).toMatchObject({ ok: true, delivered: 2 });
    expect(count(fcm.attempts, 'dev-tok-a')).toBe(1);
    expect(count(fcm.attempts, 'dev-tok-b')).toBe(2);
    expect(fcm.messages.filter((m) => (m.message as { token: string }).token === 'dev-tok-b')).toHaveLength(
      1,
    );
  });

  it('FCM: every token gone is a permanent failure marked invalid, each device handed back', async () => {
    const push = fcmChannel();
    const { targets, recorded } = devices([
      ['i:x', 'gone', 'android'],
      ['t:malformed', 'malformed', 'android'],
    ]);
    const r = await push.send({ ...request('unused'), devices: targets });
    expect(r).toMatchObject({
      ok: false,
      retriable: false,
      invalidRecipient: true,
      delivered: 0,
      removed: 2,
    });
    expect(recorded.invalid.sort()).toEqual(['i:x', 't:malformed']);
  });

  it('APNs: only Apple devices, each with its own apns-id; Unregistered is handed back for removal', async () => {
    const push = pushChannel({
      provider: 'apns',
      baseUrl: '',
      project: '',
      token: '',
      apns: {
        url: apns.url,
        teamId: 'TEAM123456',
        keyId: 'KEY1234567',
        key: apns.keyPem,
        topic: 'com.shop.app',
      },
      timeoutMs: 2000,
      now,
    });
    try {
      const { targets, recorded } = devices([
        ['i:phone', '1'.repeat(64), 'ios'],
        ['i:pad', '2'.repeat(64), 'ipados'],
        ['i:android', 'fcm-token', 'android'],
        ['i:dead', 'b'.repeat(64), 'ios'],
      ]);
      targets.list = push.devicesFor!(targets.list, 'ws1');
      expect(targets.list.map((d) => d.key)).toEqual(['i:phone', 'i:pad', 'i:dead']);
      const before = apns.delivered.length;
      const r = await push.send({ ...request('unused'), devices: targets });
      expect(r).toMatchObject({ ok: true, delivered: 2, removed: 1 });
      const got = apns.delivered.slice(before);
      expect(got.map((d) => d.token).sort()).toEqual(['1'.repeat(64), '2'.repeat(64)]);
      expect(new Set(got.map((d) => d.apnsId)).size).toBe(2);
      expect(recorded.invalid).toEqual(['i:dead']);
    } finally {
      await push.close?.();
    }
  });
});
