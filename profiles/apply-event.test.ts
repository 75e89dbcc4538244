// Identity resolution and profile updates, against a real redis-server.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { NormalizedEvent } from '../schemas/event.ts';
import { type IdentityKind, workspaceKeys } from '../schemas/redis-keys.ts';
import { uniqueId } from '../test/harness.ts';
import {
  type ApplyOptions,
  defineApplyEvent,
  forLuaJson,
  type ProfileState,
  parseApplyResults,
  queueApplyEvent,
  queueApplyEvents,
} from './apply-event.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  defineApplyEvent(redis);
});
afterAll(() => redis.disconnect());

let seq = 0;
function event(
  e: Partial<NormalizedEvent> & Pick<NormalizedEvent, 'type'>,
  at = '2026-01-01T00:00:00.000Z',
): NormalizedEvent {
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
    ...e,
  };
}

function workspace(maxIdentities = 100, extra: Partial<ApplyOptions> = {}) {
  const keys = workspaceKeys(uniqueId('apply'), 'ws');
  let n = 0;
  const apply = async (...events: NormalizedEvent[]): Promise<ProfileState[]> => {
    const pipe = redis.pipeline();
    for (const e of events)
      queueApplyEvent(pipe, keys.tag, e, {
        dedupTtlSeconds: 3600,
        maxIdentities,
        newProfileId: () => `p${++n}`,
        ...extra,
      });
    const res = (await pipe.exec()) ?? [];
    return res.map(([err, raw]) => {
      if (err) throw err;
      return parseApplyResults(raw)[0] as ProfileState;
    });
  };
  const owner = (kind: IdentityKind, v: string) => redis.get(keys.identity(kind, v));
  return { keys, apply, owner };
}

describe('identity resolution', () => {
  it('takes ids, trait names and groups with lone surrogates (as U+FFFD) and unicode intact', async () => {
    const w = workspace();
    const [s] = await w.apply(
      event({
        type: 'identify',
        userId: 'u-\ud800-x',
        anonymousId: 'a-é-😀',
        traits: { 'k\udc00': 'v\ud83d', name: 'Zoë 😀', quote: 'say "hi" \\ \n' },
      }),
    );
    expect(s!.identities.sort()).toEqual(['anon:a-é-😀', 'user:u-\ufffd-x']);
    expect(s!.traits).toEqual({ 'k\ufffd': 'v\ud83d', name: 'Zoë 😀', quote: 'say "hi" \\ \n' });
    expect(await w.owner('user', 'u-\ufffd-x')).toBe(s!.profileId);
    const [g] = await w.apply(
      event({ type: 'group', userId: 'u-\ud800-x', groupId: 'acct\udfff', traits: { 'tier\ud800': 'gold' } }),
    );
    expect(g!.profileId).toBe(s!.profileId);
    expect(await redis.smembers(w.keys.profileGroups(s!.profileId))).toEqual(['acct\ufffd']);
  });

  it('anonymous browsing, then identify: the earlier events belong to the person', async () => {
    const w = workspace();
    const [browse] = await w.apply(event({ type: 'page', anonymousId: 'a1' }));
    const [ident] = await w.apply(
      event({ type: 'identify', userId: 'u1', anonymousId: 'a1', traits: { plan: 'pro' } }),
    );
    expect(ident!.profileId).toBe(browse!.profileId);
    expect(ident!.identities.sort()).toEqual(['anon:a1', 'user:u1']);
    expect(ident!.traits).toEqual({ plan: 'pro' });
  });

  it('two devices of one user merge into the older profile', async () => {
    const w = workspace();
    const [laptop] = await w.apply(
      event({ type: 'identify', userId: 'u1', anonymousId: 'laptop' }, '2026-01-01T00:00:00Z'),
    );
    const [phone] = await w.apply(
      event(
        { type: 'track', event: 'x', anonymousId: 'phone', context: { traits: { color: 'red' } } },
        '2026-01-02T00:00:00Z',
      ),
    );
    expect(phone!.profileId).not.toBe(laptop!.profileId);
    const [login] = await w.apply(
      event({ type: 'identify', userId: 'u1', anonymousId: 'phone' }, '2026-01-03T00:00:00Z'),
    );
    expect(login!.profileId).toBe(laptop!.profileId);
    expect(login!.merged).toEqual([phone!.profileId]);
    expect(login!.traits).toEqual({ color: 'red' });
    expect(await w.owner('anon', 'phone')).toBe(laptop!.profileId);
    // the merged-away id resolves to the survivor
    expect(await redis.hget(w.keys.profile(phone!.profileId), 'mergedInto')).toBe(laptop!.profileId);
  });

  it('never merges two different userIds', async () => {
    const w = workspace();
    const [a] = await w.apply(event({ type: 'identify', userId: 'alice', anonymousId: 'shared-device' }));
    const [b] = await w.apply(event({ type: 'identify', userId: 'bob', anonymousId: 'shared-device' }));
    expect(b!.profileId).not.toBe(a!.profileId);
    expect(b!.conflicts).toEqual(['anon:shared-device']);
    expect(await w.owner('anon', 'shared-device')).toBe(a!.profileId);
    expect(await w.owner('user', 'bob')).toBe(b!.profileId);
  });

  it('alias links a previous id to the userId', async () => {
    const w = workspace();
    const [anon] = await w.apply(event({ type: 'track', event: 'x', anonymousId: 'visitor-9' }));
    const [alias] = await w.apply(event({ type: 'alias', userId: 'u9', previousId: 'visitor-9' }));
    expect(alias!.profileId).toBe(anon!.profileId);
    expect(await w.owner('user', 'u9')).toBe(anon!.profileId);
  });

  it('a replayed messageId changes nothing and still reports the profile', async () => {
    const w = workspace();
    const first = event({ type: 'identify', userId: 'u1', traits: { plan: 'pro' } });
    await w.apply(first);
    const [again] = await w.apply({ ...first, traits: { plan: 'free' } });
    expect(again!.duplicate).toBe(true);
    expect(again!.traits).toEqual({ plan: 'pro' });
  });

  it('reports identity-graph changes with a growing version, and the merged ids transitively', async () => {
    const w = workspace();
    const [a] = await w.apply(event({ type: 'page', anonymousId: 'a' }, '2026-01-01T00:00:00Z'));
    expect(a!.created).toBe(true);
    const v1 = a!.identityVersion;
    expect(v1).toBeGreaterThan(0);
    // nothing new linked: no change
    const [again] = await w.apply(event({ type: 'track', event: 'x', anonymousId: 'a' }));
    expect(again!.identityVersion).toBe(0);
    const [b] = await w.apply(event({ type: 'page', anonymousId: 'b' }, '2026-01-02T00:00:00Z'));
    const [c] = await w.apply(event({ type: 'page', anonymousId: 'c' }, '2026-01-03T00:00:00Z'));
    // b absorbs c (b is older), then a absorbs b: a answers for both
    const [bc] = await w.apply(
      event({ type: 'identify', userId: 'u', anonymousId: 'b' }, '2026-01-04T00:00:00Z'),
    );
    const [link] = await w.apply(
      event({ type: 'alias', userId: 'u', previousId: 'c' }, '2026-01-04T00:00:00Z'),
    );
    expect(bc!.profileId).toBe(b!.profileId);
    expect(link!.merged).toEqual([c!.profileId]);
    const ab = event({ type: 'identify', userId: 'u', anonymousId: 'a' }, '2026-01-05T00:00:00Z');
    const [merged] = await w.apply(ab);
    expect(merged!.profileId).toBe(a!.profileId);
    expect(merged!.merged.sort()).toEqual([b!.profileId, c!.profileId].sort());
    expect(merged!.identities.sort()).toEqual(['anon:a', 'anon:b', 'anon:c', 'user:u']);
    expect(merged!.identityVersion).toBeGreaterThan(link!.identityVersion);
    expect(link!.identityVersion).toBeGreaterThan(bc!.identityVersion);
    // a replay reports the current version and state again, so a crashed publish is repeated
    const [replay] = await w.apply(ab);
    expect(replay!.duplicate).toBe(true);
    expect(replay!.identityVersion).toBe(merged!.identityVersion);
    expect(replay!.merged.sort()).toEqual(merged!.merged.sort());
  });

  it('several events in one call apply in order, each seeing the ones before', async () => {
    const keys = workspaceKeys(uniqueId('apply'), 'ws');
    let n = 0;
    const pipe = redis.pipeline();
    queueApplyEvents(
      pipe,
      keys.tag,
      [
        event({ type: 'page', anonymousId: 'laptop' }, '2026-01-01T00:00:00Z'),
        event({ type: 'page', anonymousId: 'phone' }, '2026-01-02T00:00:00Z'),
        event({ type: 'identify', userId: 'u', anonymousId: 'laptop', traits: { plan: 'pro' } }),
        event({ type: 'identify', userId: 'u', anonymousId: 'phone' }),
      ],
      { dedupTtlSeconds: 3600, maxIdentities: 100, newProfileId: () => `p${++n}` },
    );
    const [err, raw] = (await pipe.exec())![0]!;
    expect(err).toBeNull();
    const states = parseApplyResults(raw);
    expect(states.map((s) => s!.profileId)).toEqual(['p1', 'p2', 'p1', 'p1']);
    expect(states[3]!.merged).toEqual(['p2']);
    expect(states[3]!.traits).toEqual({ plan: 'pro' });
    expect(states[3]!.identities.sort()).toEqual(['anon:laptop', 'anon:phone', 'user:u']);
  });

  it("with readState 'changed', sends back only the state of profiles whose identity changed", async () => {
    const keys = workspaceKeys(uniqueId('apply'), 'ws');
    let n = 0;
    const opts = { dedupTtlSeconds: 3600, maxIdentities: 100, newProfileId: () => `p${++n}` };
    const call = async (events: NormalizedEvent[]) => {
      const pipe = redis.pipeline();
      queueApplyEvents(pipe, keys.tag, events, opts, [], Date.now(), 'changed');
      const [err, raw] = (await pipe.exec())![0]!;
      expect(err).toBeNull();
      return parseApplyResults(raw);
    };
    const first = await call([
      event({ type: 'identify', userId: 'u1', anonymousId: 'a1', traits: { plan: 'pro' } }),
      event({ type: 'track', event: 'Viewed', userId: 'u1' }),
    ]);
    // the new profile: its last event carries its state, identifiers included
    expect(first.map((s) => s!.complete)).toEqual([false, true]);
    expect(first[1]!.identities.sort()).toEqual(['anon:a1', 'user:u1']);
    expect(first[1]!.traits).toEqual({ plan: 'pro' });
    const second = await call([
      event({ type: 'identify', userId: 'u1', traits: { plan: 'team' } }),
      event({ type: 'page', anonymousId: 'a2' }),
      event({ type: 'identify', userId: 'u1', anonymousId: 'a2' }),
    ]);
    // u1 (p1) applied without a change; a2's new profile (created: a change); the merge
    // into p1 (a change): state sent; the trait was written all the same
    const anon = second[1]!.profileId;
    expect(second.map((s) => s!.profileId)).toEqual(['p1', anon, 'p1']);
    expect(second.map((s) => s!.complete)).toEqual([false, true, true]);
    expect(second[2]!.merged).toEqual([anon]);
    expect(second[2]!.traits).toEqual({ plan: 'team' });
    // nothing changed the graph: nothing read
    const third = await call([event({ type: 'track', event: 'Viewed', userId: 'u1' })]);
    expect(third[0]!.complete).toBe(false);
    expect(third[0]!.identityVersion).toBe(0);
    expect(await redis.hget(keys.profile('p1'), 'lastSeenAt')).not.toBeNull();
  });

  it('takes any string: half a surrogate pair, backslashes, NUL, emoji, quotes', async () => {
    const w = workspace();
    const odd = ['\ud800', 'x\udfff', '\\ud800', '\\\ud83d', 'a\u0000b', '😀', '"\'{}[]', '\\', 'é'];
    const [s] = await w.apply(
      event({
        type: 'identify',
        userId: `u${odd.join('|')}`,
        anonymousId: 'a\ud800',
        traits: Object.fromEntries(odd.map((v, i) => [`k${i}${v}`, v])),
      }),
    );
    // half a pair becomes U+FFFD, as a separate command argument would in UTF-8; all else
    // arrives as sent
    const utf8 = (v: string) => Buffer.from(v, 'utf8').toString('utf8');
    expect(s!.identities.sort()).toEqual(
      [`anon:${utf8('a\ud800')}`, `user:${utf8(`u${odd.join('|')}`)}`].sort(),
    );
    // trait values travel as JSON text, which keeps even half a pair as its escape
    expect(s!.traits).toEqual(Object.fromEntries(odd.map((v, i) => [utf8(`k${i}${v}`), v])));
    expect(await w.owner('user', utf8(`u${odd.join('|')}`))).toBe(s!.profileId);
  });

  it('forLuaJson replaces only escapes of half a surrogate pair', () => {
    const cases = ['\ud800', '\\ud800', '\\\ud800', '\\\\ud800', 'ok', '😀', '\udbff\udc00'];
    for (const c of cases) {
      const json = forLuaJson(JSON.stringify([c]));
      expect(JSON.parse(json)[0]).toBe(Buffer.from(c, 'utf8').toString('utf8'));
    }
  });

  it('traits are last-write-wins by event time, not arrival order', async () => {
    const w = workspace();
    await w.apply(event({ type: 'identify', userId: 'u1', traits: { plan: 'pro' } }, '2026-01-02T00:00:00Z'));
    const [late] = await w.apply(
      event({ type: 'identify', userId: 'u1', traits: { plan: 'free', seats: 3 } }, '2026-01-01T00:00:00Z'),
    );
    expect(late!.traits).toEqual({ plan: 'pro', seats: 3 });
    expect(late!.firstSeenAt).toBe('2026-01-01T00:00:00.000Z');
    expect(late!.lastSeenAt).toBe('2026-01-02T00:00:00.000Z');
  });

  it('links at most the identifier limit, recording the excess', async () => {
    const w = workspace(3);
    await w.apply(event({ type: 'identify', userId: 'u1', anonymousId: 'a1' }));
    await w.apply(event({ type: 'identify', userId: 'u1', anonymousId: 'a2' }));
    const [over] = await w.apply(event({ type: 'identify', userId: 'u1', anonymousId: 'a3' }));
    expect(over!.limited).toEqual(['anon:a3']);
    expect(await w.owner('anon', 'a3')).toBeNull();
  });

  it('links configured external ids, ignores other types and configured junk values', async () => {
    const w = workspace(100, { externalIdTypes: new Set(['crm_id']), junkIds: new Set(['guest']) });
    const crm = (id: unknown, type = 'crm_id') => ({ externalIds: [{ id, type, collection: 'users' }] });
    const [web] = await w.apply(
      event({ type: 'page', anonymousId: 'web', context: crm('C-7') }, '2026-01-01T00:00:00Z'),
    );
    const [app] = await w.apply(
      event({ type: 'screen', anonymousId: 'app', context: crm('C-7') }, '2026-01-02T00:00:00Z'),
    );
    // the same CRM id on a second device is the same person
    expect(app!.profileId).toBe(web!.profileId);
    expect(app!.identities.sort()).toEqual(['anon:app', 'anon:web', 'ext.crm_id:C-7']);
    expect(await w.owner('ext.crm_id', 'C-7')).toBe(web!.profileId);
    // a type nobody configured links nothing; a numeric id is taken as its string
    const [other] = await w.apply(
      event({ type: 'page', anonymousId: 'x', context: crm('C-7', 'ga_client') }),
    );
    expect(other!.profileId).not.toBe(web!.profileId);
    const [num] = await w.apply(event({ type: 'page', anonymousId: 'y', context: crm(42) }));
    expect(num!.identities.sort()).toEqual(['anon:y', 'ext.crm_id:42']);
    // configured junk: never an identifier; an event with nothing else makes no profile
    const [guest] = await w.apply(event({ type: 'page', anonymousId: 'z', userId: 'GUEST' }));
    expect(guest!.identities).toEqual(['anon:z']);
    const [none] = await w.apply(event({ type: 'track', event: 'x', userId: 'guest' }));
    expect(none).toBeNull();
    expect(await w.owner('user', 'guest')).toBeNull();
  });

  it('group attaches the person to an account whose traits are last-write-wins; a merge keeps it', async () => {
    const w = workspace();
    const [joined] = await w.apply(
      event(
        { type: 'group', userId: 'u1', groupId: 'acme', traits: { plan: 'enterprise', seats: 50 } },
        '2026-01-02T00:00:00Z',
      ),
    );
    // an older group call arriving late does not overwrite the newer account traits
    await w.apply(
      event(
        { type: 'group', userId: 'u2', groupId: 'acme', traits: { plan: 'trial' } },
        '2026-01-01T00:00:00Z',
      ),
    );
    const acct = `${w.keys.tag}:acct:acme:t`;
    expect(await redis.hgetall(acct)).toEqual({ plan: '"enterprise"', seats: '50' });
    // the group's traits are the account's, not the person's
    expect(joined!.traits).toEqual({});
    expect(await redis.smembers(`${w.keys.profile(joined!.profileId)}:groups`)).toEqual(['acme']);
    // a device of u1 that joined another account: after the merge the person is in both
    const [device] = await w.apply(
      event({ type: 'group', anonymousId: 'dev', groupId: 'beta' }, '2026-01-03T00:00:00Z'),
    );
    const [merged] = await w.apply(event({ type: 'identify', userId: 'u1', anonymousId: 'dev' }));
    expect(merged!.merged).toEqual([device!.profileId]);
    expect((await redis.smembers(`${w.keys.profile(merged!.profileId)}:groups`)).sort()).toEqual([
      'acme',
      'beta',
    ]);
  });

  it('concurrent merges from many clients converge on one survivor', async () => {
    for (let round = 0; round < 5; round++) {
      const keys = workspaceKeys(uniqueId('race'), 'ws');
      const clients = Array.from({ length: 8 }, () => {
        const c = new Redis(inject('redisUrl'));
        defineApplyEvent(c);
        return c;
      });
      // each device browses anonymously, then logs in as the same user, all at once
      await Promise.all(
        clients.map(async (c, i) => {
          const pipe = c.pipeline();
          queueApplyEvent(pipe, keys.tag, event({ type: 'page', anonymousId: `d${i}` }), {
            dedupTtlSeconds: 60,
            maxIdentities: 100,
          });
          queueApplyEvent(
            pipe,
            keys.tag,
            event({ type: 'identify', userId: 'same-user', anonymousId: `d${i}` }),
            { dedupTtlSeconds: 60, maxIdentities: 100 },
          );
          await pipe.exec();
        }),
      );
      const owners = new Set(
        await Promise.all(clients.map((_, i) => redis.get(keys.identity('anon', `d${i}`)))),
      );
      expect(owners.size).toBe(1);
      expect([...owners][0]).toBe(await redis.get(keys.identity('user', 'same-user')));
      for (const c of clients) c.disconnect();
    }
  });
});

describe('computed-trait buckets', () => {
  const HOUR = 3_600_000;
  const T0 = Date.parse('2026-06-01T00:00:00Z');
  const apply = async (tag: string, at: number, agg: unknown[], messageId = `m${++seq}`, now = at) => {
    const pipe = redis.pipeline();
    queueApplyEvent(
      pipe,
      tag,
      event({ type: 'track', event: 'Click', userId: 'u', messageId }, new Date(at).toISOString()),
      { dedupTtlSeconds: 3600, maxIdentities: 100, newProfileId: () => 'p1' },
      { add: [], agg: [agg as [string, string, string, number, number]] },
      now,
    );
    const [[err, raw]] = (await pipe.exec()) as [[Error | null, unknown]];
    if (err) throw err;
    return parseApplyResults(raw)[0]!;
  };

  it('keep memory within about 1.25 windows: old buckets trimmed, the hash expires with its window', async () => {
    const keys = workspaceKeys(uniqueId('agg'), 'ws');
    const key = keys.profileAggregate('p1', 'clicks');
    // one click a minute for 3 hours, into a 1 h window of 1 s buckets
    let maxFields = 0;
    for (let i = 0; i <= 180; i++) {
      await apply(keys.tag, T0 + i * 60_000, ['clicks', 'count', '1', 1000, HOUR]);
      maxFields = Math.max(maxFields, await redis.hlen(key));
    }
    expect(maxFields).toBeLessThanOrEqual(1.25 * 60 + 2 + 2); // buckets, plus _k and _o
    const buckets = Object.keys(await redis.hgetall(key)).filter((k) => !k.startsWith('_'));
    expect(Math.min(...buckets.map(Number))).toBeGreaterThan(T0 + 180 * 60_000 - 1.25 * HOUR - 60_000);
    // expires when the newest bucket leaves the window (relative to the injected clock)
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(HOUR - 5_000);
    expect(ttl).toBeLessThanOrEqual(HOUR + 1000);
    // an event already outside the window is not kept
    const before = await redis.hlen(key);
    await apply(keys.tag, T0, ['clicks', 'count', '1', 1000, HOUR], undefined, T0 + 180 * 60_000);
    expect(await redis.hlen(key)).toBe(before);
  });

  it('all-time aggregates are one bucket without expiry; a replayed messageId adds nothing', async () => {
    const keys = workspaceKeys(uniqueId('agg'), 'ws');
    const key = keys.profileAggregate('p1', 'revenue');
    await apply(keys.tag, T0, ['revenue', 'sum', '12.5', 0, 0], 'order-1');
    await apply(keys.tag, T0 + 400 * 86_400_000, ['revenue', 'sum', '7.5', 0, 0], 'order-2');
    const replay = await apply(keys.tag, T0, ['revenue', 'sum', '12.5', 0, 0], 'order-1');
    expect(replay.duplicate).toBe(true);
    expect(await redis.hgetall(key)).toEqual({ _k: 'sum', '0': '20' });
    expect(await redis.pttl(key)).toBe(-1);
  });
});

describe('trait operations (context.traitOps)', () => {
  it('increment adds to a number (absent is 0), add and remove keep a set of strings; a replay adds nothing', async () => {
    const w = workspace();
    const ops = (traitOps: unknown) => event({ type: 'identify', userId: 'u1', context: { traitOps } });
    await w.apply(event({ type: 'identify', userId: 'u1', traits: { score: 5 } }));
    const twice = ops({ increment: { score: 2.5, visits: 1 }, add: { lists: ['vip', 'a/b'] } });
    const [s] = await w.apply(twice, twice);
    expect(s!.traits).toEqual({ score: 7.5, visits: 1, lists: ['vip', 'a/b'] });
    const [t] = await w.apply(
      ops({ increment: { score: -0.5 }, add: { lists: 'vip' }, remove: { lists: ['a/b', 'nope'] } }),
    );
    expect(t!.traits).toEqual({ score: 7, visits: 1, lists: ['vip'] });
    const [u] = await w.apply(ops({ remove: { lists: 'vip' } }));
    expect(u!.traits.lists).toEqual([]);
    // big integers stay integers; fractions keep their precision
    await w.apply(event({ type: 'identify', userId: 'u1', traits: { big: 2 ** 52 } }));
    const [, v] = await w.apply(ops({ increment: { big: 1, frac: 0.1 } }), ops({ increment: { frac: 0.2 } }));
    expect(v!.traits.big).toBe(2 ** 52 + 1);
    expect(v!.traits.frac).toBe(0.1 + 0.2);
  });

  it('an operation on a trait of the wrong kind, or malformed, changes nothing and is reported', async () => {
    const w = workspace();
    await w.apply(event({ type: 'identify', userId: 'u1', traits: { name: 'Ann', tags: { a: 1 } } }));
    const [s] = await w.apply(
      event({
        type: 'identify',
        userId: 'u1',
        context: {
          traitOps: {
            increment: { name: 1, huge: 1e300, nan: 'x' },
            add: { tags: 'x', name: 'y', ok: [1, 'fine', ''] },
          },
        },
      }),
    );
    expect(s!.traits).toEqual({ name: 'Ann', tags: { a: 1 }, ok: ['fine'] });
    expect(s!.limited.sort()).toEqual(['trait:name', 'trait:name', 'trait:tags']);
  });

  it('a client key’s operations are refused; a track event’s are ignored', async () => {
    const w = workspace();
    await w.apply(event({ type: 'identify', userId: 'u1', traits: { score: 1 } }));
    const [c] = await w.apply(
      event({
        type: 'identify',
        userId: 'u1',
        keyKind: 'client',
        context: { traitOps: { increment: { score: 1 } } },
      }),
    );
    expect(c!.traits.score).toBe(1);
    const [t] = await w.apply(
      event({ type: 'track', event: 'x', userId: 'u1', context: { traitOps: { increment: { score: 1 } } } }),
    );
    expect(t!.traits.score).toBe(1);
  });

  it('operations stay within the per-profile trait bounds', async () => {
    const w = workspace(100, { maxTraits: 2 });
    const [s] = await w.apply(
      event({
        type: 'identify',
        userId: 'u1',
        traits: { a: 1 },
        context: { traitOps: { increment: { b: 1, c: 1 } } },
      }),
    );
    expect(s!.traits).toEqual({ a: 1, b: 1 });
    expect(s!.limited).toEqual(['trait:c']);
  });
});
