// Push devices recorded by the processor's apply step (apply-event.lua) from
// `context.device.token`, against a real redis-server: per device, moved with the device,
// unioned by merges, bounded, removed by an erasure.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { pushDeviceStore } from '../activation/push-devices.ts';
import { runStep } from '../query/erase-profile.ts';
import { exportProfile } from '../query/export-profile.ts';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { DefinitionStore } from '../runtime/definitions.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { uniqueId } from '../test/harness.ts';
import {
  type ApplyOptions,
  defineApplyEvent,
  deviceOf,
  type ProfileState,
  parseApplyResults,
  queueApplyEvents,
} from './apply-event.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  defineApplyEvent(redis);
});
afterAll(() => redis.disconnect());

let seq = 0;
const T0 = Date.parse('2026-03-01T10:00:00Z');
function event(e: Partial<NormalizedEvent>, atMs = T0 + ++seq * 1000): NormalizedEvent {
  const at = new Date(atMs).toISOString();
  return {
    workspaceId: 'ws',
    type: 'track',
    event: 'App Opened',
    messageId: `m${++seq}`,
    userId: null,
    anonymousId: null,
    properties: {},
    traits: {},
    context: {},
    integrations: {},
    timestamp: at,
    receivedAt: at,
    ...e,
  };
}
const device = (id: string | undefined, token: unknown, type = 'ios') => ({
  device: { ...(id === undefined ? {} : { id }), token, type, model: 'iPhone15,2' },
  app: { name: 'Shop', version: '4.2.0', build: '420' },
});
const hex = (c: string) => c.repeat(64);

function workspace(extra: Partial<ApplyOptions> = {}) {
  const prefix = uniqueId('dev');
  const keys = workspaceKeys(prefix, 'ws');
  const store = pushDeviceStore(redis, prefix);
  let n = 0;
  const opts: ApplyOptions = {
    dedupTtlSeconds: 3600,
    maxIdentities: 100,
    newProfileId: () => `p${++n}`,
    ...extra,
  };
  const apply = async (...events: NormalizedEvent[]): Promise<ProfileState[]> => {
    const pipe = redis.pipeline();
    queueApplyEvents(pipe, keys.tag, events, opts);
    const [[err, raw]] = ((await pipe.exec()) ?? []) as [[Error | null, unknown]];
    if (err) throw err;
    return parseApplyResults(raw) as ProfileState[];
  };
  const devices = async (pid: string) =>
    (await store.list('ws', pid)).map((d) => `${d.key}=${d.type}:${d.token}`).sort();
  return { prefix, keys, store, apply, devices };
}

describe('push devices from context.device.token', () => {
  it('records each device of a profile with type and last seen; a later token of a device replaces the earlier', async () => {
    const w = workspace();
    const [a] = await w.apply(event({ userId: 'u1', context: device('ios-1', hex('a')) }));
    await w.apply(event({ userId: 'u1', context: device('and-1', 'fcm:tok-1', 'Android') }));
    expect(await w.devices(a!.profileId)).toEqual([`i:and-1=android:fcm:tok-1`, `i:ios-1=ios:${hex('a')}`]);
    // the phone got a new token (reinstall, rotation): one device, the new token
    const at = T0 + 500_000;
    await w.apply(event({ userId: 'u1', context: device('ios-1', hex('c')) }, at));
    const list = await w.store.list('ws', a!.profileId);
    expect(list.map((d) => `${d.key}:${d.token}`).sort()).toEqual([
      'i:and-1:fcm:tok-1',
      `i:ios-1:${hex('c')}`,
    ]);
    expect(list.find((d) => d.key === 'i:ios-1')!.seenMs).toBe(at);
    // an older event arriving late does not bring the old token back
    await w.apply(event({ userId: 'u1', context: device('ios-1', hex('a')) }, at - 60_000));
    expect(await w.devices(a!.profileId)).toContain(`i:ios-1=ios:${hex('c')}`);
    // an event without a token (or without context.device) leaves the devices alone
    await w.apply(event({ userId: 'u1', context: { device: { id: 'ios-1', type: 'ios' } } }));
    await w.apply(event({ userId: 'u1' }));
    expect(await w.devices(a!.profileId)).toHaveLength(2);
  });

  it('a device without an id is keyed by its token, and becomes one device once its id is sent', async () => {
    const w = workspace();
    const [a] = await w.apply(event({ userId: 'u1', context: device(undefined, 'fcm:x', 'android') }));
    expect(await w.devices(a!.profileId)).toEqual(['t:fcm:x=android:fcm:x']);
    await w.apply(event({ userId: 'u1', context: device('and-9', 'fcm:x', 'android') }));
    expect(await w.devices(a!.profileId)).toEqual(['i:and-9=android:fcm:x']);
    expect(await redis.exists(w.keys.deviceOwner('t:fcm:x'))).toBe(0);
  });

  it('a device that another person signs in on leaves the first profile (a shared phone)', async () => {
    const w = workspace();
    const [ada] = await w.apply(event({ userId: 'ada', context: device('phone-1', hex('a')) }));
    await w.apply(event({ userId: 'ada', context: device('tablet', hex('e')) }));
    const [bob] = await w.apply(event({ userId: 'bob', context: device('phone-1', hex('a')) }));
    expect(bob!.profileId).not.toBe(ada!.profileId);
    expect(await w.devices(ada!.profileId)).toEqual([`i:tablet=ios:${hex('e')}`]);
    expect(await w.devices(bob!.profileId)).toEqual([`i:phone-1=ios:${hex('a')}`]);
    expect(await redis.get(w.keys.deviceOwner('i:phone-1'))).toBe(bob!.profileId);
    // after a logout the SDK sends as a new anonymous visitor: the phone goes with it
    const [anon] = await w.apply(
      event({ anonymousId: 'anon-after-logout', context: device('phone-1', hex('a')) }),
    );
    expect(await w.devices(bob!.profileId)).toEqual([]);
    expect(await w.devices(anon!.profileId)).toEqual([`i:phone-1=ios:${hex('a')}`]);
  });

  it('a token is one device’s: registered under another device id or without one, on another profile, it leaves the first', async () => {
    const w = workspace();
    // a server-side call registered the token without a device id for Ada
    const [ada] = await w.apply(
      event({ userId: 'ada', context: device(undefined, 'fcm:shared', 'android') }),
    );
    await w.apply(event({ userId: 'ada', context: device('ada-tablet', 'fcm:tablet', 'android') }));
    // the phone's SDK sends it with its id, signed in as Bob
    const [bob] = await w.apply(
      event({ userId: 'bob', context: device('phone-9', 'fcm:shared', 'android') }),
    );
    expect(await w.devices(ada!.profileId)).toEqual(['i:ada-tablet=android:fcm:tablet']);
    expect(await w.devices(bob!.profileId)).toEqual(['i:phone-9=android:fcm:shared']);
    // the app was reinstalled: a new device id, the same token, now Carol's
    const [carol] = await w.apply(
      event({ userId: 'carol', context: device('phone-9b', 'fcm:shared', 'android') }),
    );
    expect(await w.devices(bob!.profileId)).toEqual([]);
    expect(await w.devices(carol!.profileId)).toEqual(['i:phone-9b=android:fcm:shared']);
    expect(await redis.get(w.keys.deviceToken('fcm:shared'))).toBe('i:phone-9b');
    expect(await redis.exists(w.keys.deviceOwner('t:fcm:shared'), w.keys.deviceOwner('i:phone-9'))).toBe(0);
    // a device's new token frees the old one
    await w.apply(event({ userId: 'ada', context: device('ada-tablet', 'fcm:tablet-2', 'android') }));
    expect(await redis.exists(w.keys.deviceToken('fcm:tablet'))).toBe(0);
    expect(await redis.get(w.keys.deviceToken('fcm:tablet-2'))).toBe('i:ada-tablet');
  });

  it('a clock set ahead cannot pin a device: it counts as seen when it arrived', async () => {
    const w = workspace();
    const now = T0 + 900_000;
    // someone's event claims the phone with a timestamp 23 hours ahead (inside ingest's bounds)
    const ahead = event({ userId: 'mallory', context: device('phone-7', hex('f')) }, now + 23 * 3600_000);
    const [mallory] = await w.apply({ ...ahead, receivedAt: new Date(now).toISOString() });
    expect(await w.devices(mallory!.profileId)).toEqual([`i:phone-7=ios:${hex('f')}`]);
    // the real phone registers again a second later: it is Ada's now
    const [ada] = await w.apply(event({ userId: 'ada', context: device('phone-7', hex('f')) }, now + 1000));
    expect(await w.devices(mallory!.profileId)).toEqual([]);
    expect(await w.devices(ada!.profileId)).toEqual([`i:phone-7=ios:${hex('f')}`]);
  });

  it('token null (or empty) with a device id unregisters the device, wherever it is', async () => {
    const w = workspace();
    const [a] = await w.apply(event({ userId: 'u1', context: device('ios-1', hex('a')) }));
    await w.apply(event({ userId: 'u1', context: device('ios-2', hex('c')) }));
    await w.apply(event({ userId: 'u1', context: device('ios-1', null) }));
    await w.apply(event({ userId: 'u2', context: device('ios-2', '') }));
    expect(await w.devices(a!.profileId)).toEqual([]);
    expect(await redis.exists(w.keys.deviceOwner('i:ios-1'), w.keys.deviceOwner('i:ios-2'))).toBe(0);
    expect(await redis.exists(w.keys.deviceToken(hex('a')), w.keys.deviceToken(hex('c')))).toBe(0);
  });

  it('a replayed event (same messageId) records nothing again', async () => {
    const w = workspace();
    const e = event({ userId: 'u1', context: device('ios-1', hex('a')) });
    const [a] = await w.apply(e);
    await w.apply(event({ userId: 'u1', context: device('ios-1', null) }));
    const [again] = await w.apply(e);
    expect(again!.duplicate).toBe(true);
    expect(await w.devices(a!.profileId)).toEqual([]);
  });

  it('a merge leaves the survivor with both profiles’ devices, the later registration of a shared device winning', async () => {
    const w = workspace();
    const [anon] = await w.apply(event({ anonymousId: 'a1', context: device('ios-1', hex('a')) }));
    await w.apply(
      event({ anonymousId: 'a1', context: device('shared', 'fcm:new', 'android') }, T0 + 900_000),
    );
    const [user] = await w.apply(event({ userId: 'u1', context: device('and-1', 'fcm:1', 'android') }));
    await w.apply(event({ userId: 'u1', context: device('shared', 'fcm:old', 'android') }, T0 + 800_000));
    // shared was re-registered on the anonymous profile last: it is there now
    expect(await w.devices(user!.profileId)).toEqual(['i:and-1=android:fcm:1']);
    const [login] = await w.apply(event({ type: 'identify', userId: 'u1', anonymousId: 'a1' }));
    expect(login!.merged).toHaveLength(1);
    expect([login!.profileId, ...login!.merged].sort()).toEqual([anon!.profileId, user!.profileId].sort());
    const survivor = login!.profileId;
    expect(await w.devices(survivor)).toEqual([
      'i:and-1=android:fcm:1',
      `i:ios-1=ios:${hex('a')}`,
      'i:shared=android:fcm:new',
    ]);
    const gone = login!.merged[0]!;
    expect(await redis.exists(w.keys.profileDevices(gone))).toBe(0);
    for (const k of ['i:and-1', 'i:ios-1', 'i:shared'])
      expect(await redis.get(w.keys.deviceOwner(k))).toBe(survivor);
    // the merged-away id still finds them (activation follows the merge)
    expect(await w.devices(gone)).toHaveLength(3);
  });

  it('a merge past the bound keeps the most recently seen devices', async () => {
    const w = workspace({ maxDevices: 3 });
    const [anon] = await w.apply(
      event({ anonymousId: 'a1', context: device('old-1', 'fcm:o1', 'android') }, T0 + 1),
    );
    await w.apply(
      event({ anonymousId: 'a1', context: device('new-1', 'fcm:n1', 'android') }, T0 + 5_000_000),
    );
    await w.apply(event({ userId: 'u1', context: device('old-2', 'fcm:o2', 'android') }, T0 + 2));
    await w.apply(event({ userId: 'u1', context: device('new-2', 'fcm:n2', 'android') }, T0 + 5_000_001));
    await w.apply(event({ userId: 'u1', context: device('mid', 'fcm:m', 'android') }, T0 + 3_000_000));
    const [login] = await w.apply(event({ type: 'identify', userId: 'u1', anonymousId: 'a1' }));
    expect((await w.devices(login!.profileId)).map((d) => d.split('=')[0])).toEqual([
      'i:mid',
      'i:new-1',
      'i:new-2',
    ]);
    expect(anon).toBeDefined();
    expect(await redis.exists(w.keys.deviceOwner('i:old-1'), w.keys.deviceOwner('i:old-2'))).toBe(0);
  });
});

describe('hostile device input is bounded', () => {
  it('1,000 devices for one profile keep the 20 most recently seen, and no owner record of the dropped', async () => {
    const w = workspace();
    const events = Array.from({ length: 1000 }, (_, i) =>
      event({ userId: 'flood', context: device(`d${i}`, `fcm:tok-${i}`, 'android') }, T0 + i * 1000),
    );
    let pid = '';
    for (let i = 0; i < events.length; i += 250)
      pid = (await w.apply(...events.slice(i, i + 250))).at(-1)!.profileId;
    const list = await w.store.list('ws', pid);
    expect(list).toHaveLength(20);
    expect(list.map((d) => d.key)).toEqual(Array.from({ length: 20 }, (_, i) => `i:d${999 - i}`));
    const owners = await redis.keys(`${w.keys.tag}:dev:*`);
    expect(owners).toHaveLength(20);
    expect(await redis.keys(`${w.keys.tag}:devtok:*`)).toHaveLength(20);
  });

  it('a token longer than 512 characters, or not a string, is not recorded and is reported as limited; the event is applied', async () => {
    const w = workspace();
    const [huge] = await w.apply(
      event({
        type: 'identify',
        userId: 'u1',
        traits: { plan: 'pro' },
        context: device('ios-1', 'x'.repeat(513)),
      }),
    );
    expect(huge!.limited).toEqual(['device:token_length']);
    expect(huge!.traits.plan).toBe('pro');
    const [obj] = await w.apply(event({ userId: 'u1', context: device('ios-1', { evil: true }) }));
    expect(obj!.limited).toEqual(['device:token_type']);
    const [num] = await w.apply(event({ userId: 'u1', context: device('ios-1', 12345) }));
    expect(num!.limited).toEqual(['device:token_type']);
    const [id] = await w.apply(event({ userId: 'u1', context: device('i'.repeat(600), 'fcm:t') }));
    expect(id!.limited).toEqual(['device:id_length']);
    expect(await w.devices(huge!.profileId)).toEqual([]);
    // 512 exactly is fine; an unknown or hostile type is kept as `other`
    const [ok] = await w.apply(
      event({ userId: 'u1', context: device('ios-1', 'y'.repeat(512), '<script>') }),
    );
    expect(ok!.limited).toEqual([]);
    expect(await w.devices(ok!.profileId)).toEqual([`i:ios-1=other:${'y'.repeat(512)}`]);
  });

  it('context.device that is not an object, or a token key that is absent, is nothing', () => {
    const e = (context: Record<string, unknown>) => deviceOf(event({ context }));
    expect(e({ device: 'x' })).toBeUndefined();
    expect(e({ device: [{ token: 'a' }] })).toBeUndefined();
    expect(e({ device: { id: 'x' } })).toBeUndefined();
    expect(e({ device: { token: null } })).toBeUndefined(); // nothing to unregister without an id
    expect(e({ device: { id: 42, token: ' t ' } })).toEqual(['i:42', 't', 'other']);
  });
});

describe('access export and erasure', () => {
  it('the access export lists the devices of the person and of the profiles merged into them', async () => {
    const w = workspace();
    await w.apply(event({ anonymousId: 'a1', context: device('ios-1', hex('a')) }, T0 + 5000));
    await w.apply(event({ userId: 'u1', context: device(undefined, 'fcm:1', 'android') }, T0 + 6000));
    const [login] = await w.apply(event({ type: 'identify', userId: 'u1', anonymousId: 'a1' }));
    // the Redis part of the export comes first; the history part (ClickHouse) is not needed here
    const clickhouse = {
      query: () => {
        throw new Error('no history in this test');
      },
    } as unknown as ClickHouseClient;
    const lines: Array<Record<string, unknown>> = [];
    try {
      const profile = { id: login!.profileId, userIds: ['u1'], anonymousIds: ['a1'], emails: [] };
      for await (const l of exportProfile({ redis, clickhouse, redisPrefix: w.prefix }, 'ws', profile))
        lines.push(JSON.parse(l) as Record<string, unknown>);
    } catch (err) {
      expect((err as Error).message).toMatch(/no history/);
    }
    const devices = lines.filter((l) => l.type === 'push_device');
    const survivor = login!.profileId;
    const other = login!.merged[0]!;
    // both devices are the survivor's after the merge
    expect(devices).toEqual([
      {
        type: 'push_device',
        profileId: survivor,
        deviceId: 'ios-1',
        deviceType: 'ios',
        token: hex('a'),
        lastSeenAt: new Date(T0 + 5000).toISOString(),
      },
      {
        type: 'push_device',
        profileId: survivor,
        deviceType: 'android',
        token: 'fcm:1',
        lastSeenAt: new Date(T0 + 6000).toISOString(),
      },
    ]);
    expect(other).not.toBe(survivor);
    expect(lines[0]!.type).toBe('profile');
  });

  it('removes the devices of the person and of the profiles merged into them, and their owner records', async () => {
    const w = workspace();
    await w.apply(event({ anonymousId: 'a1', context: device('ios-1', hex('a')) }));
    const [u] = await w.apply(event({ userId: 'u1', context: device('and-1', 'fcm:1', 'android') }));
    const [login] = await w.apply(event({ type: 'identify', userId: 'u1', anonymousId: 'a1' }));
    const [other] = await w.apply(event({ userId: 'u2', context: device('and-2', 'fcm:2', 'android') }));
    expect(await w.devices(login!.profileId)).toHaveLength(2);
    await redis.hset(w.keys.erasure('job1'), 'profileId', u!.profileId);
    const defs = { list: async () => [] } as unknown as DefinitionStore;
    await runStep({ redis, clickhouse: {} as ClickHouseClient, defs, redisPrefix: w.prefix }, 'redis', {
      workspaceId: 'ws',
      profileId: u!.profileId,
      jobId: 'job1',
      nowMs: Date.now(),
    });
    for (const pid of [login!.profileId, ...login!.merged]) {
      expect(await redis.exists(w.keys.profileDevices(pid))).toBe(0);
      expect(await w.devices(pid)).toEqual([]);
    }
    expect(await redis.exists(w.keys.deviceOwner('i:ios-1'), w.keys.deviceOwner('i:and-1'))).toBe(0);
    expect(await redis.exists(w.keys.deviceToken(hex('a')), w.keys.deviceToken('fcm:1'))).toBe(0);
    expect(await redis.get(w.keys.deviceToken('fcm:2'))).toBe('i:and-2');
    // someone else's device stays
    expect(await w.devices(other!.profileId)).toEqual(['i:and-2=android:fcm:2']);
    expect(await redis.get(w.keys.deviceOwner('i:and-2'))).toBe(other!.profileId);
  });
});
