// What a client (public) write key may change on a known person, and the per-profile
// bounds on identifiers and traits, against a real redis-server (apply-event.lua).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { NormalizedEvent } from '../schemas/event.ts';
import { type IdentityKind, workspaceKeys } from '../schemas/redis-keys.ts';
import { uniqueId } from '../test/harness.ts';
import {
  type ApplyOptions,
  defineApplyEvent,
  type ProfileState,
  parseApplyResults,
  queueApplyEvent,
} from './apply-event.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  defineApplyEvent(redis);
});
afterAll(() => redis.disconnect());

let seq = 0;
let clock = Date.parse('2026-01-01T00:00:00Z');
/** An event one second after the previous one; `client` sent with a client key. */
function event(e: Partial<NormalizedEvent> & Pick<NormalizedEvent, 'type'>, client = false): NormalizedEvent {
  clock += 1000;
  const at = new Date(clock).toISOString();
  return {
    workspaceId: 'ws',
    messageId: `m${++seq}`,
    userId: null,
    anonymousId: null,
    properties: {},
    traits: {},
    context: {},
    integrations: {},
    timestamp: at,
    receivedAt: at,
    keyKind: client ? 'client' : 'server',
    ...e,
  };
}
const client = (e: Partial<NormalizedEvent> & Pick<NormalizedEvent, 'type'>) => event(e, true);

function workspace(extra: Partial<ApplyOptions> = {}) {
  const keys = workspaceKeys(uniqueId('ck'), 'ws');
  let n = 0;
  const apply = async (e: NormalizedEvent): Promise<ProfileState> => {
    const pipe = redis.pipeline();
    queueApplyEvent(pipe, keys.tag, e, {
      dedupTtlSeconds: 3600,
      maxIdentities: 100,
      newProfileId: () => `p${++n}`,
      ...extra,
    });
    const [[err, raw]] = (await pipe.exec()) as [[Error | null, unknown]];
    if (err) throw err;
    return parseApplyResults(raw)[0]!;
  };
  const owner = (kind: IdentityKind, v: string) => redis.get(keys.identity(kind, v));
  const profile = async (pid: string) => ({
    traits: Object.fromEntries(
      Object.entries(await redis.hgetall(keys.profileTraits(pid))).map(([k, v]) => [k, JSON.parse(v)]),
    ),
    ids: (await redis.smembers(keys.profileIdentities(pid))).sort(),
    mergedInto: await redis.hget(keys.profile(pid), 'mergedInto'),
  });
  return { keys, apply, owner, profile };
}

/** Ada, known: a server identify with her userId, email and phone. */
async function knownVictim(w: ReturnType<typeof workspace>) {
  const s = await w.apply(
    event({
      type: 'identify',
      userId: 'ada',
      anonymousId: 'ada-laptop',
      traits: { email: 'ada@example.com', phone: '+4420000001', pushToken: 'tok-ada', plan: 'pro' },
    }),
  );
  return s.profileId;
}

describe('client keys on known people', () => {
  it('an anonymous client event with a known email and phone gets its own profile; the victim keeps hers', async () => {
    const w = workspace();
    const victim = await knownVictim(w);
    const before = await w.profile(victim);
    const attack = await w.apply(
      client({
        type: 'identify',
        anonymousId: 'attacker',
        traits: { email: 'ADA@example.com ', phone: '+4499999999', pushToken: 'tok-evil' },
      }),
    );
    expect(attack.profileId).not.toBe(victim);
    expect(attack.merged).toEqual([]);
    expect(attack.refused).toEqual(['email:ada@example.com']);
    expect(await w.profile(victim)).toEqual(before);
    expect(await w.owner('email', 'ada@example.com')).toBe(victim);
    // the same on a track call's context.traits
    const track = await w.apply(
      client({
        type: 'track',
        event: 'x',
        anonymousId: 'attacker-2',
        context: { traits: { email: 'ada@example.com' } },
      }),
    );
    expect(track.profileId).not.toBe(victim);
    expect(track.refused).toEqual(['email:ada@example.com']);
    expect(await w.profile(victim)).toEqual(before);
  });

  it('the same event from a server key still merges (documented behaviour kept)', async () => {
    const w = workspace();
    const victim = await knownVictim(w);
    const s = await w.apply(
      event({
        type: 'identify',
        anonymousId: 'other-device',
        traits: { email: 'ada@example.com', phone: '+44222' },
      }),
    );
    expect(s.profileId).toBe(victim);
    expect(s.refused).toEqual([]);
    expect((await w.profile(victim)).traits.phone).toBe('+44222');
    expect(await w.owner('anon', 'other-device')).toBe(victim);
  });

  it('a client identify with a known userId reaches the person but does not change how she is reached', async () => {
    const w = workspace();
    const victim = await knownVictim(w);
    const s = await w.apply(
      client({
        type: 'identify',
        userId: 'ada',
        anonymousId: 'attacker-browser',
        traits: { email: 'evil@example.com', phone: '+4499999999', pushToken: 'tok-evil', color: 'red' },
      }),
    );
    expect(s.profileId).toBe(victim);
    expect(s.refused.sort()).toEqual([
      'email:evil@example.com',
      'trait:email',
      'trait:phone',
      'trait:pushToken',
    ]);
    const after = await w.profile(victim);
    expect(after.traits).toEqual({
      email: 'ada@example.com',
      phone: '+4420000001',
      pushToken: 'tok-ada',
      plan: 'pro',
      color: 'red',
    });
    // the device's anonymous id is not identity-bearing: it joins (login on a new device)
    expect(after.ids).toEqual([
      'anon:ada-laptop',
      'anon:attacker-browser',
      'email:ada@example.com',
      'user:ada',
    ]);
    expect(await w.owner('email', 'evil@example.com')).toBeNull();
    // sending the values she has is no refusal
    const same = await w.apply(
      client({ type: 'identify', userId: 'ada', traits: { email: 'ada@example.com' } }),
    );
    expect(same.refused).toEqual([]);
  });

  it("her own device's anonymous events from a client key still reach her, with the same limits", async () => {
    const w = workspace();
    const victim = await knownVictim(w);
    for (let i = 0; i < 2; i++) {
      const s = await w.apply(
        client({
          type: 'page',
          anonymousId: 'ada-laptop',
          context: { traits: { phone: '+4499', theme: 'dark' } },
        }),
      );
      expect(s.profileId).toBe(victim);
      expect(s.created).toBe(false);
      expect(s.refused).toEqual(['trait:phone']);
    }
    expect((await w.profile(victim)).traits).toMatchObject({ phone: '+4420000001', theme: 'dark' });
  });

  it('an external id from a client key joins no known person', async () => {
    const w = workspace({ externalIdTypes: new Set(['crm_id']) });
    const victim = (
      await w.apply(
        event({
          type: 'identify',
          anonymousId: 'crm-sync',
          traits: { email: 'bo@example.com' },
          context: { externalIds: [{ id: '42', type: 'crm_id' }] },
        }),
      )
    ).profileId;
    const s = await w.apply(
      client({
        type: 'track',
        event: 'x',
        anonymousId: 'z',
        context: { externalIds: [{ id: '42', type: 'crm_id' }] },
      }),
    );
    expect(s.profileId).not.toBe(victim);
    expect(s.refused).toEqual(['ext.crm_id:42']);
  });

  it('login on a new device: the anonymous history joins the person, its phone does not replace hers', async () => {
    const w = workspace();
    const victim = await knownVictim(w);
    const browsing = await w.apply(
      client({
        type: 'page',
        anonymousId: 'new-phone',
        context: { traits: { phone: '+4477777777', theme: 'dark' } },
      }),
    );
    expect(browsing.profileId).not.toBe(victim);
    const login = await w.apply(client({ type: 'identify', userId: 'ada', anonymousId: 'new-phone' }));
    expect(login.profileId).toBe(victim);
    expect(login.merged).toEqual([browsing.profileId]);
    expect(login.refused).toEqual([]);
    const after = await w.profile(victim);
    expect(after.traits.phone).toBe('+4420000001');
    expect(after.traits.theme).toBe('dark');
    expect(after.ids).toContain('anon:new-phone');
  });

  it('a client key never brings a profile with its own email into a known person', async () => {
    const w = workspace();
    const victim = await knownVictim(w);
    const other = await w.apply(
      client({ type: 'identify', anonymousId: 'x1', traits: { email: 'mallory@example.com' } }),
    );
    const s = await w.apply(client({ type: 'identify', userId: 'ada', anonymousId: 'x1' }));
    expect(s.profileId).toBe(victim);
    expect(s.refused).toEqual(['anon:x1']);
    expect((await w.profile(other.profileId)).mergedInto).toBeNull();
    expect(await w.owner('email', 'mallory@example.com')).toBe(other.profileId);
  });

  it('a new visitor becomes known in one client identify; afterwards she is protected too', async () => {
    const w = workspace();
    const anon = await w.apply(client({ type: 'page', anonymousId: 'v1' }));
    const signup = await w.apply(
      client({
        type: 'identify',
        userId: 'cy',
        anonymousId: 'v1',
        traits: { email: 'cy@example.com', phone: '+1555' },
      }),
    );
    expect(signup.profileId).toBe(anon.profileId);
    expect(signup.refused).toEqual([]);
    expect(signup.identities.sort()).toEqual(['anon:v1', 'email:cy@example.com', 'user:cy']);
    expect(signup.traits).toMatchObject({ email: 'cy@example.com', phone: '+1555' });
    const attack = await w.apply(
      client({ type: 'identify', anonymousId: 'evil', traits: { email: 'cy@example.com' } }),
    );
    expect(attack.profileId).not.toBe(anon.profileId);
    expect(attack.refused).toEqual(['email:cy@example.com']);
  });

  it('an email only claimed by client keys protects nobody; a server key makes it verified', async () => {
    const w = workspace();
    const a = await w.apply(
      client({ type: 'identify', anonymousId: 'a1', traits: { email: 'dee@example.com' } }),
    );
    // two anonymous visitors typing the same email are one (unknown) person, as before
    const b = await w.apply(
      client({ type: 'identify', anonymousId: 'a2', traits: { email: 'dee@example.com' } }),
    );
    expect(b.profileId).toBe(a.profileId);
    expect(b.refused).toEqual([]);
    // the server confirms the email (no userId): from now on she is known
    await w.apply(event({ type: 'identify', anonymousId: 'a1', traits: { email: 'dee@example.com' } }));
    const c = await w.apply(
      client({ type: 'identify', anonymousId: 'a3', traits: { email: 'dee@example.com' } }),
    );
    expect(c.profileId).not.toBe(a.profileId);
    expect(c.refused).toEqual(['email:dee@example.com']);
  });

  it('profiles from before key kinds are known by their email', async () => {
    const w = workspace();
    const old = await w.apply(
      event({ type: 'identify', anonymousId: 'legacy', traits: { email: 'eve@example.com' } }),
    );
    await redis.hdel(w.keys.profile(old.profileId), 'claimed');
    const s = await w.apply(
      client({ type: 'identify', anonymousId: 'new', traits: { email: 'eve@example.com' } }),
    );
    expect(s.profileId).not.toBe(old.profileId);
  });

  it('a workspace that trusts its client keys gets the server behaviour', async () => {
    const w = workspace();
    const victim = await knownVictim(w);
    await redis.hset(w.keys.settings, 'clientKeys', 'trusted');
    const s = await w.apply(
      client({
        type: 'identify',
        anonymousId: 'other',
        traits: { email: 'ada@example.com', phone: '+44333' },
      }),
    );
    expect(s.profileId).toBe(victim);
    expect((await w.profile(victim)).traits.phone).toBe('+44333');
    // and the deployment default can trust them, the workspace restrict them again
    const w2 = workspace({ clientKeys: 'trusted' });
    const v2 = await knownVictim(w2);
    await redis.hset(w2.keys.settings, 'clientKeys', 'restricted');
    const s2 = await w2.apply(
      client({ type: 'identify', anonymousId: 'o', traits: { email: 'ada@example.com' } }),
    );
    expect(s2.profileId).not.toBe(v2);
  });

  it('the protected traits are configurable', async () => {
    const w = workspace({ protectedTraits: ['email', 'whatsapp'] });
    const victim = await knownVictim(w);
    const s = await w.apply(
      client({ type: 'identify', userId: 'ada', traits: { phone: '+4400', whatsapp: '+4401' } }),
    );
    expect(s.refused).toEqual(['trait:whatsapp']);
    expect((await w.profile(victim)).traits.phone).toBe('+4400');
  });
});

describe('per-profile bounds', () => {
  it('a merge past the identifier limit is refused whole and reported', async () => {
    const w = workspace({ maxIdentities: 4 });
    const a = await w.apply(
      event({ type: 'identify', userId: 'u1', anonymousId: 'a1', traits: { email: 'f@example.com' } }),
    );
    const c = await w.apply(event({ type: 'page', anonymousId: 'c1' }));
    // 3 + 1 identifiers fit
    const s = await w.apply(event({ type: 'identify', userId: 'u1', anonymousId: 'c1' }));
    expect(s.merged).toEqual([c.profileId]);
    expect(s.limited).toEqual([]);
    const d = await w.apply(
      event({ type: 'identify', anonymousId: 'd1', traits: { email: 'g@example.com' } }),
    );
    // 4 + 2 would not: the link is refused, nothing of either profile moved
    const full = await w.apply(
      event({ type: 'identify', anonymousId: 'd1', traits: { email: 'f@example.com' } }),
    );
    expect(full.profileId).toBe(d.profileId);
    expect(full.limited).toEqual(['email:f@example.com']);
    expect(full.merged).toEqual([]);
    expect((await w.profile(a.profileId)).ids).toEqual([
      'anon:a1',
      'anon:c1',
      'email:f@example.com',
      'user:u1',
    ]);
    expect((await w.profile(d.profileId)).ids).toEqual(['anon:d1', 'email:g@example.com']);
    expect((await w.profile(d.profileId)).mergedInto).toBeNull();
    expect(await w.owner('email', 'f@example.com')).toBe(a.profileId);
  });

  it('traits past the count or byte bound are refused and reported; updates still apply', async () => {
    const w = workspace({ maxTraits: 3, maxTraitBytes: 1024 });
    const s1 = await w.apply(event({ type: 'identify', userId: 'g', traits: { a: 1, b: 2 } }));
    expect(s1.limited).toEqual([]);
    const s2 = await w.apply(event({ type: 'identify', userId: 'g', traits: { a: 10, c: 3, d: 4 } }));
    expect(s2.limited).toEqual(['trait:d']);
    expect(s2.traits).toEqual({ a: 10, b: 2, c: 3 });
    const big = 'x'.repeat(1020);
    const s3 = await w.apply(event({ type: 'identify', userId: 'g', traits: { b: big } }));
    expect(s3.limited).toEqual(['trait:b']);
    expect(s3.traits.b).toBe(2);
    const s4 = await w.apply(event({ type: 'identify', userId: 'g', traits: { b: 'x'.repeat(900) } }));
    expect(s4.limited).toEqual([]);
    // a: "10", b: 900 x's quoted, c: "3" — names and JSON values
    expect(await redis.hget(w.keys.profile(s4.profileId), 'tb')).toBe(String(3 + 903 + 2));
  });

  it('a merge past the trait bound is refused whole', async () => {
    const w = workspace({ maxTraits: 3 });
    const a = await w.apply(event({ type: 'identify', userId: 'h', traits: { a: 1, b: 2 } }));
    const b = await w.apply(event({ type: 'identify', anonymousId: 'hb', traits: { a: 5, c: 3 } }));
    // union a, b, c: 3 traits, fits
    const ok = await w.apply(event({ type: 'identify', userId: 'h', anonymousId: 'hb' }));
    expect(ok.merged).toEqual([b.profileId]);
    expect(ok.traits).toEqual({ a: 5, b: 2, c: 3 });
    const c = await w.apply(event({ type: 'identify', anonymousId: 'hc', traits: { d: 4 } }));
    const refused = await w.apply(event({ type: 'identify', userId: 'h', anonymousId: 'hc' }));
    expect(refused.limited).toEqual(['anon:hc']);
    expect(refused.merged).toEqual([]);
    expect((await w.profile(c.profileId)).traits).toEqual({ d: 4 });
    expect((await w.profile(a.profileId)).traits).toEqual({ a: 5, b: 2, c: 3 });
  });
});
