// What keeps many waits on time (bench/scenarios/journeys.ts measures it at 100,000): the
// moves of one advance go to Redis as one atomic path that stops where the run no longer
// is, and a timer tick that claimed a full batch is followed at once, not after the poll
// interval. On the real stack: Kafka, Redis and run-state.lua.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runStore } from '../../activation/journeys/run-state.ts';
import { startJourneys } from '../../activation/journeys/start-journeys.ts';
import { createClients } from '../../runtime/clients.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { JourneyDefinition } from '../../schemas/journey.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis.disconnect());

describe('journey runner throughput', () => {
  it('moves a run along a path in one step, stopping at the first move the run is not at', async () => {
    const prefix = uniqueId('rp');
    const runs = runStore(redis, prefix);
    const ref = { workspaceId: 'ws1', journeyId: 'j1', profileId: 'p1' };
    const stats = () => redis.hgetall(workspaceKeys(prefix, 'ws1').journeyStats('j1'));
    const { run } = await runs.enter(ref, 1, 'w', 1000);
    // wait → update → end, in one call
    expect(
      await runs.movePath(
        ref,
        run,
        [
          { from: 'w', to: 'u', reason: '' },
          { from: 'u', to: '', reason: 'completed' },
        ],
        2000,
      ),
    ).toBe(2);
    expect(await runs.peek(ref)).toMatchObject({ active: false, node: '' });
    expect(await stats()).toMatchObject({
      entered: '1',
      'now:w': '0',
      'passed:w': '1',
      'now:u': '0',
      'passed:u': '1',
      'ended:completed': '1',
    });
    // a second worker with the same path: nothing moves, nothing is counted twice
    expect(
      await runs.movePath(
        ref,
        run,
        [
          { from: 'w', to: 'u', reason: '' },
          { from: 'u', to: '', reason: 'completed' },
        ],
        3000,
      ),
    ).toBe(0);
    expect(await stats()).toMatchObject({ 'passed:w': '1', 'passed:u': '1', 'ended:completed': '1' });

    // a run someone else moved to `b` already: a path from `w` through `b` stops at once
    // (its later move from `b` is not made: it belongs to the other worker's path)
    const other = { ...ref, profileId: 'p2' };
    const r2 = (await runs.enter(other, 1, 'w', 1000)).run;
    expect(await runs.move(other, r2, 'w', 'b', 1500)).toBe(true);
    expect(
      await runs.movePath(
        other,
        r2,
        [
          { from: 'w', to: 'b', reason: '' },
          { from: 'b', to: 'x', reason: '' },
        ],
        2000,
      ),
    ).toBe(0);
    expect(await runs.peek(other)).toMatchObject({ active: true, node: 'b' });
    expect(await runs.movePath(other, r2, [], 2000)).toBe(0);
  });

  it('a tick that claimed a full batch is followed at once: many waits due together end together', async () => {
    const cfg = testConfig();
    const log = testLogger(cfg);
    const clients = createClients(cfg, log);
    const ws = cfg.keys.workspace;
    const k = workspaceKeys(cfg.redis.prefix, ws);
    const at = new Date().toISOString();
    const def: JourneyDefinition = {
      id: 'jrn_burst',
      workspaceId: ws,
      name: 'burst',
      entry: { segment: 'seg_burst', on: 'enter' },
      nodes: [
        { id: 'w', type: 'wait', for: 'P1D', next: 'x' },
        { id: 'x', type: 'exit' },
      ],
      status: 'active',
      version: 1,
      createdAt: at,
      updatedAt: at,
    };
    await new DefinitionStore(clients.redis(), cfg.redis.prefix).putMany([
      { kind: 'journeys', def },
      { kind: 'journeyVersions', def, field: 'jrn_burst@1' },
    ]);
    // the runner's clock jumps a day ahead once everyone waits: all 30 are due at once
    let offset = 0;
    const people = 30;
    const runner = await startJourneys(cfg, clients, log, {
      now: () => Date.now() + offset,
      // 3 batches of 10 timers; without the follow-up they are 4 s apart
      timerBatch: 10,
      timerIntervalMs: 4000,
    });
    const producer = clients.kafka().producer();
    await producer.connect();
    try {
      await producer.send(
        topics(cfg.kafka.topicPrefix).segmentChanges,
        Array.from({ length: people }, (_, i) => {
          const c: SegmentChange = {
            workspaceId: ws,
            profileId: `p${i}`,
            segmentId: 'seg_burst',
            segmentVersion: 1,
            type: 'entered',
            epoch: 1,
            messageId: `m${i}`,
            occurredAt: at,
            userId: `u${i}`,
            traits: {},
          };
          return { key: `${ws}:p${i}`, value: JSON.stringify(c) };
        }),
      );
      const stat = async (f: string) => Number((await redis.hget(k.journeyStats('jrn_burst'), f)) ?? 0);
      // everyone waiting with their timer set (a run is counted at `w` before its timer is)
      const due = globalKeys(cfg.redis.prefix).journeysDue;
      await eventually(
        'every timer set',
        async () => (await stat('now:w')) === people && (await redis.zcard(due)) === people,
        60_000,
      );
      offset = 86_400_000 + 60_000;
      await eventually('every wait ended', async () => (await stat('ended:exited')) === people, 60_000);
      const ended = await Promise.all(
        Array.from({ length: people }, async (_, i) =>
          Number(await redis.hget(k.journeyRun('jrn_burst', `p${i}`), 'endedAt')),
        ),
      );
      // all three batches within one poll interval of each other (else ≥ 8 s apart)
      expect(Math.max(...ended) - Math.min(...ended)).toBeLessThan(3000);
    } finally {
      await producer.disconnect();
      await runner.stop();
      await clients.close();
    }
  });
});
