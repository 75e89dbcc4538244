// The key migration on the real redis-server: global keys written under their old, untagged
// names by an earlier version move to the `{~g}` names, once, also with two processes at once.
import { afterAll, describe, expect, inject, it } from 'vitest';
import { globalKeys, globalTag, legacyGlobalKeys } from '../schemas/redis-keys.ts';
import { warehouseKeys } from '../schemas/warehouse.ts';
import { segmentDef } from '../test/fixtures.ts';
import { credentialKeys } from './channel-credentials.ts';
import { DefinitionStore } from './definitions.ts';
import { createLogger } from './log.ts';
import { createRedis, keySlot } from './redis.ts';
import { migrateRedisKeys } from './redis-migrate.ts';
import { WorkspaceStore } from './workspaces.ts';
import { WriteKeyStore } from './write-keys.ts';

const log = createLogger({ level: 'error', name: 'redis-migrate-test' });
const redis = createRedis(inject('redisUrl'), log, 'redis-migrate-test');
afterAll(() => redis.disconnect());
const uid = () => `rm${Math.random().toString(36).slice(2, 10)}`;

describe('migrateRedisKeys', () => {
  it('moves every kind of old global key to its tagged name, and a second run changes nothing', async () => {
    const prefix = uid();
    const old = legacyGlobalKeys(prefix);
    const now = globalKeys(prefix);
    const dest = { id: 'd1', workspaceId: 'ws_a' };
    await redis
      .multi()
      .hset(old.segments, 'ws_a/s1', '{"id":"s1"}')
      .hset(old.destinations, 'ws_a/d1', JSON.stringify(dest))
      .hset(old.journeys, 'ws_a/j1', '{"id":"j1"}')
      .set(old.revision, '7')
      .hset(old.writeKeys, 'wk_live_x', '{"key":"wk_live_x"}')
      .set(old.writeKeysRevision, '3')
      .zadd(old.timers, 1000, 'ws_a/p1', 2000, 'ws_a/p2')
      .zadd(old.timerLeases, 5000, 'ws_a/p3')
      .zadd(old.activationDelayed, 10, '{"job":1}')
      .zadd(old.journeysDue, 20, 'due-member')
      .zadd(old.destinationRetries('d1'), 30, '{"delivery":1}')
      .zadd(old.journeysParked('ws_a', 'j1'), 40, 'parked-member')
      .exec();

    const first = await migrateRedisKeys(redis, prefix);
    expect(first).toEqual({ renamed: 12, merged: 0, conflicts: [] });
    expect(await redis.hget(now.segments, 'ws_a/s1')).toBe('{"id":"s1"}');
    expect(await redis.get(now.revision)).toBe('7');
    expect(await redis.hget(now.writeKeys, 'wk_live_x')).toBe('{"key":"wk_live_x"}');
    expect(await redis.get(now.writeKeysRevision)).toBe('3');
    expect(await redis.zrange(now.timers, 0, -1, 'WITHSCORES')).toEqual([
      'ws_a/p1',
      '1000',
      'ws_a/p2',
      '2000',
    ]);
    expect(await redis.zscore(now.timerLeases, 'ws_a/p3')).toBe('5000');
    expect(await redis.zscore(now.activationDelayed, '{"job":1}')).toBe('10');
    expect(await redis.zscore(now.journeysDue, 'due-member')).toBe('20');
    expect(await redis.zscore(now.destinationRetries('d1'), '{"delivery":1}')).toBe('30');
    expect(await redis.zscore(now.journeysParked('ws_a', 'j1'), 'parked-member')).toBe('40');
    for (const k of [
      old.segments,
      old.timers,
      old.destinationRetries('d1'),
      old.journeysParked('ws_a', 'j1'),
    ])
      expect(await redis.exists(k)).toBe(0);

    expect(await migrateRedisKeys(redis, prefix)).toEqual({ renamed: 0, merged: 0, conflicts: [] });
    expect(await redis.zcard(now.timers)).toBe(2);
  });

  it('the tagged names put the timer set and its lease, write keys and their revision on one slot', () => {
    const k = globalKeys('cdp');
    const slot = keySlot(k.timers);
    for (const name of [
      k.timerLeases,
      k.writeKeys,
      k.writeKeysRevision,
      k.journeysDue,
      k.journeysLease,
      k.revision,
    ])
      expect(keySlot(name)).toBe(slot);
    // the old names were on different slots (what broke a cluster)
    const o = legacyGlobalKeys('cdp');
    expect(keySlot(o.timers)).not.toBe(keySlot(o.timerLeases));
    // Redis's own answer for the tag, as a check of our CRC16
    expect(keySlot('{user1000}.following')).toBe(keySlot('user1000'));
    expect(keySlot('123456789')).toBe(0x31c3); // the CRC16 check value of the Redis Cluster spec
  });

  it('merges an old key into the new one when both exist (an old-version process wrote after the upgrade)', async () => {
    const prefix = uid();
    const old = legacyGlobalKeys(prefix);
    const now = globalKeys(prefix);
    await redis
      .multi()
      .zadd(old.timers, 100, 'ws/a', 300, 'ws/b')
      .zadd(now.timers, 200, 'ws/b', 400, 'ws/c')
      .hset(old.segments, 'ws/s1', 'old', 'ws/s2', 'old2')
      .hset(now.segments, 'ws/s1', 'new')
      .set(old.revision, '9')
      .set(now.revision, '2')
      .set(old.writeKeys, 'a string where a hash belongs')
      .hset(now.writeKeys, 'k', 'v')
      .exec();
    const r = await migrateRedisKeys(redis, prefix);
    expect(r.merged).toBe(3);
    expect(r.conflicts).toEqual([old.writeKeys]);
    // the earlier due time wins (a timer fires early rather than late), none is lost
    expect(await redis.zrange(now.timers, 0, -1, 'WITHSCORES')).toEqual([
      'ws/a',
      '100',
      'ws/b',
      '200',
      'ws/c',
      '400',
    ]);
    // a definition written under the new name is kept; one only under the old one is added
    expect(await redis.hgetall(now.segments)).toEqual({ 'ws/s1': 'new', 'ws/s2': 'old2' });
    // the revision moved, so readers reload
    expect(await redis.get(now.revision)).toBe('3');
    expect(await redis.exists(old.timers, old.segments, old.revision)).toBe(0);
    // the conflicting key is left for an operator, not dropped
    expect(await redis.get(old.writeKeys)).toBe('a string where a hash belongs');
  });

  it('two processes starting together move each key once and lose nothing', async () => {
    const prefix = uid();
    const old = legacyGlobalKeys(prefix);
    const now = globalKeys(prefix);
    const p = redis.pipeline();
    for (let i = 0; i < 50; i++)
      p.hset(old.destinations, `ws/d${i}`, '{}').zadd(old.destinationRetries(`d${i}`), i, `m${i}`);
    p.zadd(old.timers, 1, 'ws/p');
    await p.exec();
    const other = createRedis(inject('redisUrl'), log, 'redis-migrate-test-2');
    try {
      const [a, b] = await Promise.all([migrateRedisKeys(redis, prefix), migrateRedisKeys(other, prefix)]);
      // 50 retry sets + destinations hash + timers, each moved by exactly one of them
      expect(a.renamed + b.renamed).toBe(52);
      expect(a.merged + b.merged).toBe(0);
    } finally {
      other.disconnect();
    }
    for (let i = 0; i < 50; i++)
      expect(await redis.zscore(now.destinationRetries(`d${i}`), `m${i}`)).toBe(String(i));
    expect(await redis.hlen(now.destinations)).toBe(50);
    expect(await redis.zscore(now.timers, 'ws/p')).toBe('1');
  });

  it("an earlier version's data of every store (its keys without the tag) is read back after the migration", async () => {
    const prefix = uid();
    const now = new Date('2026-06-01T00:00:00Z');
    const ws = new WorkspaceStore(redis, prefix, 'default');
    const acme = await ws.createWorkspace('Acme', now);
    const { person } = await ws.addPerson(acme.id, 'ada@example.com', 'Ada', 'owner', now);
    await ws.addPerson('default', 'ada@example.com', 'Ada', 'marketer', now);
    const { token } = await ws.issueToken(person.id, null, now);
    await ws.archiveWorkspace(acme.id, now);
    const wk = await new WriteKeyStore(redis, prefix).create('default', 'site', now);
    await new DefinitionStore(redis, prefix).put(
      'segments',
      segmentDef('s1', true, { workspaceId: 'default' }),
    );
    const cred = credentialKeys(prefix);
    await redis.multi().hset(cred.hash, 'default:email', '{}').incr(cred.rev).exec();
    const wh = warehouseKeys(prefix);
    await redis
      .multi()
      .hset(wh.defs, 'default/wh1', '{"id":"wh1"}')
      .incr(wh.revision)
      .hset(wh.progress('wh1'), 'cdp.events:0', '{"done":"5"}')
      .hset(wh.stats('wh1'), 'rows', '5')
      .exec();

    // what the stores wrote, as the earlier version named it: `<prefix>:<rest>`
    const tagged = `${globalTag(prefix)}:`;
    const written = (await redis.keys(`${tagged}*`)).sort();
    expect(written.length).toBeGreaterThanOrEqual(14);
    const dumps = new Map<string, string>();
    for (const k of written) {
      dumps.set(k, (await redis.dump(k))!);
      await redis.rename(k, `${prefix}:${k.slice(tagged.length)}`);
    }
    const r = await migrateRedisKeys(redis, prefix);
    expect(r).toEqual({ renamed: written.length, merged: 0, conflicts: [] });
    expect((await redis.keys(`${tagged}*`)).sort()).toEqual(written);
    for (const k of written) expect(await redis.dump(k), k).toBe(dumps.get(k));
    // nothing left under an untagged name
    expect((await redis.keys(`${prefix}:*`)).filter((k) => !k.startsWith(tagged))).toEqual([]);
    // and the stores find it
    expect((await ws.getWorkspace(acme.id))?.name).toBe('Acme');
    expect(await ws.isArchived(acme.id)).toBe(true);
    expect((await ws.personByEmail('ada@example.com'))?.id).toBe(person.id);
    expect(Object.fromEntries(await ws.roles(person.id))).toEqual({
      [acme.id]: 'owner',
      default: 'marketer',
    });
    expect((await ws.listPeople('default')).map((p) => p.id)).toEqual([person.id]);
    expect((await ws.resolveToken(token))?.person.id).toBe(person.id);
    expect((await new WriteKeyStore(redis, prefix).list('default')).map((k) => k.key)).toEqual([wk.key]);
    expect((await new DefinitionStore(redis, prefix).list('segments')).map((d) => d.id)).toEqual(['s1']);
  });
});
