// What a journey step reads of a person, against a real redis-server: the person as a
// segment rule sees them (profiles/read.ts), followed to the merge survivor.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readStoredProfiles } from '../../profiles/read.ts';
import { ruleContext, ruleHolds } from '../../profiles/rule-context.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { compileRule } from '../../schemas/rules.ts';
import { uniqueId } from '../../test/harness.ts';
import { readProfileContext } from './profile-context.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis.disconnect());

const T0 = Date.parse('2026-03-01T10:00:00Z');

async function store(prefix: string, ws: string, pid: string, traits: Record<string, string>) {
  const k = workspaceKeys(prefix, ws);
  await redis
    .multi()
    .hset(k.profile(pid), { id: pid, firstSeenAt: T0, lastSeenAt: T0 + 1000 })
    .hset(k.profileTraits(pid), traits)
    .hset(k.profileSegments(pid), { s_in: '1', s_out: '2' })
    .sadd(k.profileIdentities(pid), 'user:u1', 'anon:a1', 'email:x@example.com')
    .exec();
}

describe('readProfileContext', () => {
  it('reads traits as a segment rule does: JSON decoded, a value that is not JSON as its string', async () => {
    const prefix = uniqueId('pc');
    const ws = 'ws';
    await store(prefix, ws, 'p1', { plan: '"pro"', seats: '3', note: 'not json {' });
    const c = await readProfileContext(redis, prefix, ws, 'p1');
    expect(c).toMatchObject({
      profileId: 'p1',
      traits: { plan: 'pro', seats: 3, note: 'not json {' },
      segments: ['s_in'],
      userId: 'u1',
      anonymousId: 'a1',
    });
    expect(c.rule.profile).toEqual({
      id: 'p1',
      firstSeenAt: new Date(T0).toISOString(),
      lastSeenAt: new Date(T0 + 1000).toISOString(),
    });
    // the same context a segment rule is evaluated in
    const [stored] = await readStoredProfiles(redis, workspaceKeys(prefix, ws), ['p1']);
    expect(c.rule).toEqual(ruleContext('p1', stored!, null, {}));
    // so a branch rule on that trait holds where a segment rule does
    const rule = compileRule({ '==': [{ var: 'traits.note' }, 'not json {'] });
    expect(ruleHolds(rule, c.rule)).toBe(true);
  });

  it('follows a merged-away profile to its survivor', async () => {
    const prefix = uniqueId('pc');
    const ws = 'ws';
    const k = workspaceKeys(prefix, ws);
    await store(prefix, ws, 'p2', { plan: '"team"' });
    await redis.hset(k.profile('gone'), { id: 'gone', mergedInto: 'mid' });
    await redis.hset(k.profile('mid'), { id: 'mid', mergedInto: 'p2' });
    const c = await readProfileContext(redis, prefix, ws, 'gone');
    expect(c.profileId).toBe('p2');
    expect(c.traits).toEqual({ plan: 'team' });
    expect(c.rule.profile.id).toBe('p2');
  });

  it('reads a profile that is not stored as empty', async () => {
    const c = await readProfileContext(redis, uniqueId('pc'), 'ws', 'none');
    expect(c).toMatchObject({ profileId: 'none', traits: {}, segments: [], userId: null, anonymousId: null });
  });
});
