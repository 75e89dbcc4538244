// The migration loop against a real redis-server: paged over the journey's run hashes only,
// resumed after a crash from the saved cursor, counted once per person, waiting for the
// runner's definitions to hold the target version.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../runtime/log.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { uniqueId } from '../../test/harness.ts';
import { journeyMigrations, type MigrationRecord } from './migrations.ts';
import type { RunRef } from './run-state.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis.disconnect());
const log = createLogger({ level: 'silent', name: 'test' });

describe('journey migrations (loop)', () => {
  it('moves every run of the journey once, resumes after a crash, and touches no other journey', async () => {
    const prefix = uniqueId('mig');
    const k = workspaceKeys(prefix, 'ws');
    const pipe = redis.pipeline();
    for (let i = 0; i < 120; i++) pipe.hset(k.journeyRun('j1', `p${i}`), 'state', 'active');
    for (let i = 0; i < 50; i++) pipe.hset(k.journeyRun('j10', `q${i}`), 'state', 'active');
    await pipe.exec();
    const record: MigrationRecord = {
      from: 1,
      to: 2,
      nodes: {},
      status: 'pending',
      cursor: '0',
      moved: 0,
      skipped: 0,
      requestedAt: new Date().toISOString(),
    };
    await redis.hset(globalKeys(prefix).journeysMigrations, 'ws/j1', JSON.stringify(record));
    const moved = new Set<string>();
    const seen: string[] = [];
    let crashAt = 30;
    let loaded = false;
    const make = () =>
      journeyMigrations({
        redis,
        prefix,
        log,
        now: Date.now,
        page: 10,
        registry: { version: () => (loaded ? ({} as never) : undefined) },
        engine: {
          async migrate(ref: RunRef) {
            seen.push(ref.profileId);
            if (--crashAt === 0) throw new Error('killed');
            if (moved.has(ref.profileId)) return 'none';
            moved.add(ref.profileId);
            return ref.profileId.endsWith('7') ? 'skipped' : 'moved';
          },
        },
      });
    // the runner has not loaded version 2 yet: nothing happens
    expect(await make().run('ws', 'j1')).toBe(0);
    expect(seen).toEqual([]);
    loaded = true;
    await expect(make().run('ws', 'j1')).rejects.toThrow('killed');
    const mid = JSON.parse(
      (await redis.hget(globalKeys(prefix).journeysMigrations, 'ws/j1'))!,
    ) as MigrationRecord;
    expect(mid.status).toBe('pending');
    expect(mid.cursor).not.toBe('0');
    // a crash leaves the lease until it lapses: the next runner waits for it
    await redis.del(globalKeys(prefix).journeysMigrationLease('ws', 'j1'));
    await make().run('ws', 'j1');
    const done = JSON.parse(
      (await redis.hget(globalKeys(prefix).journeysMigrations, 'ws/j1'))!,
    ) as MigrationRecord;
    expect(done.status).toBe('done');
    expect(moved.size).toBe(120);
    expect(seen.every((p) => p.startsWith('p'))).toBe(true);
    // the counts are per page: the people moved on the page the crash cut short are moved
    // (once) but not counted, as the page's repeat finds them moved already
    expect(done.moved + done.skipped).toBeGreaterThanOrEqual(120 - 10);
    expect(done.moved + done.skipped).toBeLessThanOrEqual(120);
  });
});
