// Push to every device of a person, end to end over the real services: events with
// `context.device.token` through ingest (HTTP) → Kafka → processor (devices in Redis,
// segment entry) → activation → an FCM HTTP v1 stand-in that checks the OAuth grant and the
// message shape (test/push-providers.ts); the ledger read back through the stats API.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushDeviceStore } from '../../activation/push-devices.ts';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startFcm } from '../push-providers.ts';

let cfg: Config;
let running: RunningServices;
let fcm: Awaited<ReturnType<typeof startFcm>>;
let redis: Redis;
let store: ReturnType<typeof pushDeviceStore>;

const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });
const api = (path: string, init: RequestInit = {}) =>
  fetch(`${running.urls.query}${path}`, { ...init, headers: { ...admin(), ...(init.headers ?? {}) } });

async function ingest(path: string, body: unknown): Promise<number> {
  const res = await fetch(`${running.urls.ingest}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
  await res.text();
  return res.status;
}

/** What a mobile SDK puts in every event's context once the app has a push token. */
const device = (id: string, token: unknown, type = 'android') => ({
  device: { id, token, type, manufacturer: 'Google', model: 'Pixel 8' },
  app: { name: 'Shop', version: '4.2.0', build: '420', namespace: 'com.shop.app' },
  os: { name: type === 'ios' ? 'iOS' : 'Android', version: '17' },
});

async function profileOf(kind: 'user' | 'anon', id: string): Promise<string | null> {
  return redis.get(workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).identity(kind, id));
}
async function tokensOf(kind: 'user' | 'anon', id: string): Promise<string[]> {
  const pid = await profileOf(kind, id);
  return pid ? (await store.list(cfg.keys.workspace, pid)).map((d) => d.token).sort() : [];
}
const waitTokens = (kind: 'user' | 'anon', id: string, want: string[]) =>
  eventually(`devices of ${kind}:${id} = ${want.join(',')}`, async () => {
    const got = await tokensOf(kind, id);
    return JSON.stringify(got) === JSON.stringify([...want].sort()) ? got : undefined;
  });

/** A push campaign on a segment of its own (traits.plan == plan). */
async function pushCampaign(plan: string) {
  const seg = await api('/v1/segments', {
    method: 'POST',
    body: JSON.stringify({ name: uniqueId('s'), rule: { '==': [{ var: 'traits.plan' }, plan] } }),
  });
  expect(seg.status).toBe(201);
  const segmentId = ((await seg.json()) as { id: string }).id;
  const res = await api('/v1/campaigns', {
    method: 'POST',
    body: JSON.stringify({
      name: uniqueId('c'),
      segmentId,
      on: 'enter',
      channel: 'push',
      push: { title: 'Hi {{ traits.name }}', body: 'Your plan: {{ traits.plan }}' },
    }),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  const c = (await res.json()) as { id: string };
  await new Promise((r) => setTimeout(r, 600)); // definitions reach the workers
  return c;
}

async function stats(id: string) {
  return (await (await api(`/v1/campaigns/${id}/stats`)).json()) as {
    sent: number;
    failed: number;
    retried: number;
    suppressed: { total: number; byReason: Record<string, number> };
  };
}

const delivered = (token: string) =>
  fcm.messages.filter((m) => (m.message as { token: string }).token === token).length;
const tried = (token: string) => fcm.attempts.filter((t) => t === token).length;
const settle = () => new Promise((r) => setTimeout(r, 1500));

beforeAll(async () => {
  fcm = await startFcm({ now: Date.now });
  cfg = testConfig({
    CDP_PUSH_BASE_URL: fcm.url,
    CDP_PUSH_FCM_SERVICE_ACCOUNT: fcm.serviceAccountJson,
    CDP_ACTIVATION_MAX_ATTEMPTS: '3',
    CDP_ACTIVATION_RETRY_BASE_MS: '100',
    CDP_CHANNEL_TIMEOUT_MS: '2000',
  });
  running = await startServices(
    cfg,
    ['ingest', 'processor', 'activation', 'ledger', 'query'],
    testLogger(cfg),
  );
  redis = new Redis(cfg.redis.url);
  store = pushDeviceStore(redis, cfg.redis.prefix);
});

afterAll(async () => {
  await running?.stop();
  await fcm?.close();
  redis?.disconnect();
});

describe('push to every device of a person', () => {
  it('two devices (one from before sign-in, joined by the merge) each get exactly one notification', async () => {
    const c = await pushCampaign('p1');
    const [t1, t2] = [uniqueId('tok-phone-'), uniqueId('tok-tablet-')];
    expect(
      await ingest('/v1/screen', { anonymousId: 'anon-1', name: 'Home', context: device('phone-1', t1) }),
    ).toBe(200);
    expect(
      await ingest('/v1/track', { userId: 'user-1', event: 'App Opened', context: device('tablet-1', t2) }),
    ).toBe(200);
    await waitTokens('anon', 'anon-1', [t1]);
    await waitTokens('user', 'user-1', [t2]);
    // sign-in on the phone: the anonymous profile joins the person, who enters the segment
    expect(
      await ingest('/v1/identify', {
        userId: 'user-1',
        anonymousId: 'anon-1',
        traits: { plan: 'p1', name: 'Ada' },
      }),
    ).toBe(200);
    await eventually('both devices notified', () => delivered(t1) === 1 && delivered(t2) === 1);
    await settle();
    expect([delivered(t1), delivered(t2)]).toEqual([1, 1]);
    const sent = fcm.messages.find((m) => (m.message as { token: string }).token === t1)!.message as {
      notification: unknown;
      data: Record<string, string>;
    };
    expect(sent.notification).toEqual({ title: 'Hi Ada', body: 'Your plan: p1' });
    await eventually('one send in the ledger', async () => (await stats(c.id)).sent === 1);
    expect(await tokensOf('user', 'user-1')).toEqual([t1, t2].sort());
  });

  it('a retry after one device failed (503) goes only to that device', async () => {
    const c = await pushCampaign('p2');
    const [ta, tb] = [uniqueId('tok-a-'), uniqueId('tok-b-')];
    await ingest('/v1/track', { userId: 'user-2', event: 'App Opened', context: device('a-2', ta) });
    await ingest('/v1/track', { userId: 'user-2', event: 'App Opened', context: device('b-2', tb, 'ios') });
    await waitTokens('user', 'user-2', [ta, tb]);
    fcm.failNext(tb);
    await ingest('/v1/identify', { userId: 'user-2', traits: { plan: 'p2', name: 'Bo' } });
    await eventually('the failed device reached on the retry', () => delivered(tb) === 1);
    await settle();
    expect({ a: [tried(ta), delivered(ta)], b: [tried(tb), delivered(tb)] }).toEqual({
      a: [1, 1],
      b: [2, 1],
    });
    const s = await eventually('sent after one retry', async () => {
      const x = await stats(c.id);
      return x.sent === 1 ? x : undefined;
    });
    expect(s.retried).toBe(1);
    // the record of the devices reached is gone once the send is done
    const tag = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).tag;
    expect(await redis.keys(`${tag}:pushdone:*`)).toEqual([]);
  });

  it('an UNREGISTERED token leaves the profile, with no suppression entry, and the next campaign goes only to the other device', async () => {
    const first = await pushCampaign('p3');
    const ok = uniqueId('tok-ok-');
    await ingest('/v1/track', { userId: 'user-3', event: 'App Opened', context: device('ok-3', ok) });
    await ingest('/v1/track', { userId: 'user-3', event: 'App Opened', context: device('old-3', 'gone') });
    await waitTokens('user', 'user-3', [ok, 'gone']);
    const goneBefore = tried('gone');
    await ingest('/v1/identify', { userId: 'user-3', traits: { plan: 'p3' } });
    await eventually('the live device notified', () => delivered(ok) === 1);
    await waitTokens('user', 'user-3', [ok]);
    expect(tried('gone') - goneBefore).toBe(1);
    const keys = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace);
    expect(await redis.sismember(keys.suppressions, 'device:gone')).toBe(0);
    expect(await redis.exists(keys.deviceOwner('i:old-3'))).toBe(0);
    await eventually('sent once', async () => (await stats(first.id)).sent === 1);

    const second = await pushCampaign('p3b');
    await ingest('/v1/identify', { userId: 'user-3', traits: { plan: 'p3b' } });
    await eventually('the live device notified again', () => delivered(ok) === 2);
    await eventually('the second campaign sent', async () => (await stats(second.id)).sent === 1);
    await settle();
    expect(tried('gone') - goneBefore).toBe(1);
  });

  it('a phone another person signs in on leaves the first person: only the new one is notified', async () => {
    const c = await pushCampaign('p4');
    const shared = uniqueId('tok-shared-');
    await ingest('/v1/track', {
      userId: 'ada-4',
      event: 'App Opened',
      context: device('shared-4', shared, 'ios'),
    });
    await waitTokens('user', 'ada-4', [shared]);
    await ingest('/v1/track', {
      userId: 'bob-4',
      event: 'App Opened',
      context: device('shared-4', shared, 'ios'),
    });
    await waitTokens('user', 'bob-4', [shared]);
    expect(await tokensOf('user', 'ada-4')).toEqual([]);
    await ingest('/v1/identify', { userId: 'ada-4', traits: { plan: 'p4', name: 'Ada' } });
    await ingest('/v1/identify', { userId: 'bob-4', traits: { plan: 'p4', name: 'Bob' } });
    const s = await eventually('one sent, one without an address', async () => {
      const x = await stats(c.id);
      return x.sent === 1 && x.suppressed.byReason.no_address === 1 ? x : undefined;
    });
    expect(s.failed).toBe(0);
    await settle();
    expect(delivered(shared)).toBe(1);
    const m = fcm.messages.find((x) => (x.message as { token: string }).token === shared)!.message as {
      notification: { title: string };
    };
    expect(m.notification.title).toBe('Hi Bob');
  });

  it('hostile devices are bounded: a huge or non-string token is not kept (the event is), 1,000 devices keep the newest 20', async () => {
    const t0 = Date.parse('2026-12-01T00:00:00Z');
    expect(
      await ingest('/v1/identify', {
        userId: 'user-5',
        traits: { plan: 'free' },
        context: device('huge-5', 'x'.repeat(5000)),
      }),
    ).toBe(200);
    expect(
      await ingest('/v1/track', { userId: 'user-5', event: 'X', context: device('obj-5', { a: [1] }) }),
    ).toBe(200);
    expect(await ingest('/v1/track', { userId: 'user-5', event: 'X', context: device('num-5', 42) })).toBe(
      200,
    );
    const pid = await eventually('the profile', async () => {
      const p = await profileOf('user', 'user-5');
      return p &&
        (await redis.hget(workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).profileTraits(p), 'plan'))
        ? p
        : undefined;
    });
    for (let b = 0; b < 2; b++)
      expect(
        await ingest('/v1/batch', {
          batch: Array.from({ length: 500 }, (_, i) => {
            const n = b * 500 + i;
            return {
              type: 'track',
              event: 'App Opened',
              userId: 'user-5',
              timestamp: new Date(t0 + n * 1000).toISOString(),
              context: device(`flood-${n}`, `tok-flood-${n}`),
            };
          }),
        }),
      ).toBe(200);
    const want = Array.from({ length: 20 }, (_, i) => `tok-flood-${980 + i}`);
    await waitTokens('user', 'user-5', want);
    const keys = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace);
    expect(await redis.hlen(keys.profileDevices(pid))).toBe(20);
    const owners = await redis.keys(`${keys.tag}:dev:i:flood-*`);
    expect(owners).toHaveLength(20);
    expect(
      await redis.exists(
        keys.deviceOwner('i:huge-5'),
        keys.deviceOwner('i:obj-5'),
        keys.deviceOwner('i:num-5'),
      ),
    ).toBe(0);
  });
});
