// Push to a person's devices through APNs, end to end over the real services: ingest (HTTP)
// → Kafka → processor (devices in Redis) → activation → an APNs stand-in over HTTP/2 that
// verifies the ES256 provider token and Apple's contract (test/push-providers.ts). Only
// the Apple devices are sent to; a token Apple calls Unregistered leaves the profile.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushDeviceStore } from '../../activation/push-devices.ts';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startApns } from '../push-providers.ts';

let cfg: Config;
let running: RunningServices;
let apns: Awaited<ReturnType<typeof startApns>>;
let redis: Redis;

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

const device = (id: string, token: string, type: string) => ({
  device: { id, token, type },
  app: { name: 'Shop', version: '4.2.0', build: '420' },
});

beforeAll(async () => {
  apns = await startApns({ now: Date.now, teamId: 'TEAM123456', keyId: 'KEY1234567', topic: 'com.shop.app' });
  cfg = testConfig({
    CDP_PUSH_PROVIDER: 'apns',
    CDP_PUSH_APNS_URL: apns.url,
    CDP_PUSH_APNS_TEAM_ID: 'TEAM123456',
    CDP_PUSH_APNS_KEY_ID: 'KEY1234567',
    CDP_PUSH_APNS_KEY: apns.keyPem,
    CDP_PUSH_APNS_TOPIC: 'com.shop.app',
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
});

afterAll(async () => {
  await running?.stop();
  await apns?.close();
  redis?.disconnect();
});

describe('push to a person’s Apple devices through APNs', () => {
  it('the iPhone and iPad get one notification each, the Android phone none; an Unregistered token leaves the profile', async () => {
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
        channel: 'push',
        push: { title: 'Hi {{ traits.name }}', body: 'New in pro' },
      }),
    });
    expect(res.status).toBe(201);
    const campaign = (await res.json()) as { id: string };
    await new Promise((r) => setTimeout(r, 600));

    const [phone, pad, dead] = ['1'.repeat(64), '2'.repeat(64), 'b'.repeat(64)];
    for (const [id, token, type] of [
      ['iphone', phone, 'ios'],
      ['ipad', pad, 'ipados'],
      ['pixel', 'fcm-registration-token', 'android'],
      ['old-iphone', dead, 'ios'],
    ] as const)
      expect(
        await ingest('/v1/track', { userId: 'ada', event: 'App Opened', context: device(id, token, type) }),
      ).toBe(200);
    const keys = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace);
    const store = pushDeviceStore(redis, cfg.redis.prefix);
    const tokens = async () => {
      const pid = await redis.get(keys.identity('user', 'ada'));
      return pid ? (await store.list(cfg.keys.workspace, pid)).map((d) => d.token).sort() : [];
    };
    await eventually('four devices', async () => (await tokens()).length === 4);
    const before = apns.delivered.length;
    expect(await ingest('/v1/identify', { userId: 'ada', traits: { plan: 'pro', name: 'Ada' } })).toBe(200);
    await eventually('the dead token gone', async () => !(await tokens()).includes(dead));
    await eventually('sent in the ledger', async () => {
      const s = (await (await api(`/v1/campaigns/${campaign.id}/stats`)).json()) as { sent: number };
      return s.sent === 1;
    });
    await new Promise((r) => setTimeout(r, 1500));
    const got = apns.delivered.slice(before);
    expect(got.map((d) => d.token).sort()).toEqual([phone, pad]);
    expect(got[0]!.payload).toMatchObject({ aps: { alert: { title: 'Hi Ada', body: 'New in pro' } } });
    expect(apns.refused).toContain('Unregistered');
    // the Android device stays: APNs never saw it, and it was not taken off
    expect(await tokens()).toEqual(['fcm-registration-token', phone, pad].sort());
  });
});
