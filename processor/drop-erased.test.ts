// The tombstone filter of the processor and the history sink, against a real redis-server.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { IncomingMessage } from '../runtime/kafka/index.ts';
import { tombstoneMember } from '../schemas/erasure.ts';
import { globalKeys, workspaceKeys } from '../schemas/redis-keys.ts';
import { uniqueId } from '../test/harness.ts';
import { createErasedFilter } from './drop-erased.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis.disconnect());

const ERASED_AT = Date.parse('2026-06-01T12:00:00Z');
const message = (value: unknown, timestamp: number): IncomingMessage => ({
  topic: 't',
  partition: 0,
  offset: '0',
  key: null,
  value: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)),
  headers: {},
  timestamp,
});
const event = (ws: string, fields: Record<string, unknown>, receivedAt: number) =>
  message(
    { workspaceId: ws, type: 'track', receivedAt: new Date(receivedAt).toISOString(), ...fields },
    receivedAt,
  );

async function setup() {
  const prefix = uniqueId('de');
  const ws = 'ws1';
  await redis.zadd(globalKeys(prefix).erasedWorkspaces, ERASED_AT, ws);
  await redis.zadd(
    workspaceKeys(prefix, ws).erased,
    ERASED_AT,
    tombstoneMember('user', 'gone'),
    ERASED_AT,
    tombstoneMember('anon', 'gone-anon'),
    ERASED_AT,
    tombstoneMember('profile', 'p-gone'),
  );
  let now = ERASED_AT + 1000;
  const filter = createErasedFilter({ redis, redisPrefix: prefix, now: () => now, refreshMs: 1000 });
  await filter.refresh();
  return { prefix, ws, filter, advance: (ms: number) => (now += ms) };
}

describe('erased filter', () => {
  it('drops events of an erased id received before the erasure, keeps later ones and other ids and workspaces', async () => {
    const { ws, filter } = await setup();
    const before = ERASED_AT - 5000;
    const cases = [
      { m: event(ws, { userId: 'gone' }, before), kept: false },
      { m: event(ws, { anonymousId: 'gone-anon', userId: 'new-user' }, before), kept: false },
      { m: event(ws, { userId: 'gone' }, ERASED_AT), kept: false },
      { m: event(ws, { userId: 'gone' }, ERASED_AT + 1), kept: true },
      { m: event(ws, { userId: 'other' }, before), kept: true },
      { m: event('ws2', { userId: 'gone' }, before), kept: true },
      // hostile or broken values are not the filter's to judge: the sink dead-letters them
      { m: message('{not json', before), kept: true },
      { m: message('null', before), kept: true },
      { m: event(ws, { userId: ['gone'] }, before), kept: true },
    ];
    const out = filter.events(cases.map((c) => c.m));
    expect(cases.map((c) => out.includes(c.m))).toEqual(cases.map((c) => c.kept));
    expect(filter.dropped).toBe(3);
  });

  it('drops identity and membership rows of an erased profile id at any time', async () => {
    const { ws, filter } = await setup();
    const gone = message({ workspaceId: ws, profileId: 'p-gone' }, ERASED_AT + 30_000);
    const other = message({ workspaceId: ws, profileId: 'p-new' }, ERASED_AT + 30_000);
    expect(filter.identityChanges([gone, other])).toEqual([other]);
    const rows = [
      { workspace_id: ws, profile_id: 'p-gone' },
      { workspace_id: ws, profile_id: 'p-new' },
      { workspace_id: 'ws2', profile_id: 'p-gone' },
    ];
    expect(filter.memberships(rows)).toEqual([rows[1], rows[2]]);
  });

  it('reads tombstones written after it started, on its next refresh only', async () => {
    const { prefix, ws, filter, advance } = await setup();
    await redis.zadd(workspaceKeys(prefix, ws).erased, ERASED_AT + 2000, tombstoneMember('user', 'later'));
    const m = event(ws, { userId: 'later' }, ERASED_AT);
    await filter.refresh(); // within the refresh interval: the cached copy
    expect(filter.events([m])).toEqual([m]);
    advance(1000);
    await filter.refresh();
    expect(filter.events([m])).toEqual([]);
    // written after the last read by a host whose clock lags: read all the same (the margin)
    await redis.zadd(
      workspaceKeys(prefix, ws).erased,
      ERASED_AT - 30_000,
      tombstoneMember('user', 'lagging'),
    );
    const lagging = event(ws, { userId: 'lagging' }, ERASED_AT - 40_000);
    advance(1000);
    await filter.refresh();
    expect(filter.events([lagging])).toEqual([]);
  });

  it('passes without a look what was produced well after the latest erasure', async () => {
    const { ws, filter } = await setup();
    // received (by its own say) before the erasure, but on Kafka an hour after it: not a late event
    const m = message(
      { workspaceId: ws, userId: 'gone', receivedAt: new Date(ERASED_AT - 1).toISOString() },
      ERASED_AT + 3600_000,
    );
    expect(filter.events([m])).toEqual([m]);
  });
});
