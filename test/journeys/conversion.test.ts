// Conversion by branch and a holdout's lift. The run state (run-state.lua) records the way
// each run left a split, branch or wait-until; a goal reached within the goal's window of
// entering counts for those arms, while the run is under way or after it ended (completed,
// exited, held out), once per run, and a merge carries the arms to the survivor. End to
// end: people split between a send and a holdout, both groups convert, the stats show the
// rate of each arm and the lift.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runStore } from '../../activation/journeys/run-state.ts';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import type { Config } from '../../runtime/config.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis.disconnect());

describe('conversion by arm (run state)', () => {
  const DAY = 86_400_000;

  it('a conversion counts for the arms a run took, within the window, once, during or after the run', async () => {
    const prefix = uniqueId('cv');
    const runs = runStore(redis, prefix);
    const stats = () => redis.hgetall(workspaceKeys(prefix, 'ws').journeyStats('j'));
    const a = { workspaceId: 'ws', journeyId: 'j', profileId: 'a' };
    const b = { ...a, profileId: 'b' };
    const c = { ...a, profileId: 'c' };
    // a: split → variant:1 → branch no → wait; converts while waiting
    const ra = (await runs.enter(a, 1, 's', 0)).run;
    expect(
      await runs.movePath(
        a,
        ra,
        [
          { from: 's', to: 'br', reason: '', arm: 'variant:1' },
          { from: 'br', to: 'w', reason: '', arm: 'no' },
        ],
        10,
      ),
    ).toBe(2);
    expect(await runs.move(a, ra, 'w', '', 20, 'converted', { windowMs: DAY })).toBe(true);
    // after its run converted, it does not count again
    expect(await runs.convertAfterExit(a, 30, DAY)).toBe(false);
    // b: held out at the split (its run ends there), converts a day later: counted once
    const rb = (await runs.enter(b, 1, 's', 0)).run;
    expect(await runs.movePath(b, rb, [{ from: 's', to: '', reason: 'holdout', arm: 'holdout' }], 5)).toBe(1);
    expect(await runs.convertAfterExit(b, DAY - 1, DAY)).toBe(true);
    expect(await runs.convertAfterExit(b, DAY, DAY)).toBe(false);
    // c: held out, converts after the window: not counted
    const rc = (await runs.enter(c, 1, 's', 0)).run;
    await runs.movePath(c, rc, [{ from: 's', to: '', reason: 'holdout', arm: 'holdout' }], 5);
    expect(await runs.convertAfterExit(c, DAY + 1, DAY)).toBe(false);
    expect(await stats()).toMatchObject({
      'arm:s:variant:1': '1',
      'arm:br:no': '1',
      'arm:s:holdout': '2',
      'conv:s:variant:1': '1',
      'conv:br:no': '1',
      'conv:s:holdout': '1',
      convertedAfterExit: '1',
      'converted:w': '1',
    });
    // an active run does not convert "after exit"
    const d = { ...a, profileId: 'd' };
    await runs.enter(d, 1, 's', 0);
    expect(await runs.convertAfterExit(d, 10, DAY)).toBe(false);
  });

  it('a conversion at the goal after the window ends the run but counts for no arm', async () => {
    const prefix = uniqueId('cv');
    const runs = runStore(redis, prefix);
    const a = { workspaceId: 'ws', journeyId: 'j', profileId: 'a' };
    const r = (await runs.enter(a, 1, 's', 0)).run;
    await runs.movePath(a, r, [{ from: 's', to: 'w', reason: '', arm: 'variant:0' }], 1);
    expect(await runs.move(a, r, 'w', '', 5000, 'converted', { windowMs: 4000 })).toBe(true);
    const s = await redis.hgetall(workspaceKeys(prefix, 'ws').journeyStats('j'));
    expect(s['converted:w']).toBe('1');
    expect(s['conv:s:variant:0']).toBeUndefined();
  });

  it('a new run forgets the last one’s arms; a merge carries them to the survivor', async () => {
    const prefix = uniqueId('cv');
    const runs = runStore(redis, prefix);
    const stats = () => redis.hgetall(workspaceKeys(prefix, 'ws').journeyStats('j'));
    const a = { workspaceId: 'ws', journeyId: 'j', profileId: 'a' };
    const b = { ...a, profileId: 'b' };
    // a's first run went yes and ended; its second (after_exit) goes straight to a wait
    const r1 = (await runs.enter(a, 1, 'br', 0, 'after_exit')).run;
    await runs.movePath(a, r1, [{ from: 'br', to: '', reason: 'completed', arm: 'yes' }], 1);
    const r2 = (await runs.enter(a, 1, 'w', 2, 'after_exit')).run;
    expect(r2).toBe(r1 + 1);
    // b: split variant:0, waiting; merged into c (who has no run): the run and its arm move
    const rb = (await runs.enter(b, 1, 's', 0)).run;
    await runs.movePath(b, rb, [{ from: 's', to: 'w', reason: '', arm: 'variant:0' }], 1);
    const c = { ...a, profileId: 'c' };
    expect((await runs.merge(b, c, 3)).result).toBe('moved');
    const state = await runs.peek(c);
    expect(await runs.move(c, state.run, 'w', '', 4, 'converted', { windowMs: 1000 })).toBe(true);
    expect(await runs.move(a, r2, 'w', '', 4, 'converted', { windowMs: 1000 })).toBe(true);
    const s = await stats();
    // a's second run took no arm: the yes of its first is not credited
    expect(s['conv:br:yes']).toBeUndefined();
    expect(s['conv:s:variant:0']).toBe('1');
  });
});

describe('conversion by branch with a holdout (end to end)', () => {
  let cfg: Config;
  let running: RunningServices;
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  let ch: ClickHouseClient;
  const api = adminApi(
    () => running.urls.query!,
    () => cfg,
  );
  const ingest = ingestApi(
    () => running.urls.ingest!,
    () => cfg,
  );

  beforeAll(async () => {
    cfg = testConfig();
    receiver = await startWebhookReceiver();
    running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
    ch = await createClickHouse(cfg.clickhouse);
  });
  afterAll(async () => {
    await running?.stop();
    await receiver?.close();
  });

  it('people held out and people messaged both convert; the stats give each arm’s rate and the lift', async () => {
    const seg = (
      await api('POST', '/v1/segments', { name: 'Trial', rule: { '==': [{ var: 'traits.plan' }, 'trial'] } })
    ).body.id as string;
    const created = await api('POST', '/v1/journeys', {
      name: 'Trial nurture',
      entry: { segment: seg, on: 'enter' },
      goal: { event: 'Upgraded', within: 'P7D' },
      nodes: [
        { id: 's', type: 'split', variants: [{ weight: 1, next: 'mail' }], holdout: 50 },
        {
          id: 'mail',
          type: 'send',
          channel: 'webhook',
          webhook: { url: `${receiver.url}?k=mail` },
          next: 'w',
        },
        { id: 'w', type: 'wait', for: 'P1D' },
      ],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    await api('POST', `/v1/journeys/${id}/activate`);
    const users = Array.from({ length: 40 }, (_, i) => `u${i}`);
    await ingest('/v1/batch', {
      batch: users.map((userId) => ({ type: 'identify', userId, traits: { plan: 'trial' } })),
    });
    await eventually(
      'everyone through the split',
      async () => {
        const s = (await api('GET', `/v1/journeys/${id}/stats`)).body;
        const arms = s.branches?.s ?? {};
        return (arms.holdout?.entered ?? 0) + (arms['variant:0']?.entered ?? 0) === users.length;
      },
      30_000,
    );
    // who went where, from the ledger in ClickHouse
    const profileOf = new Map<string, string>();
    for (const u of users) profileOf.set(u, (await api('GET', `/v1/profiles?userId=${u}`)).body.id as string);
    const arm = new Map<string, string>();
    await eventually('the split steps in ClickHouse', async () => {
      const rs = await ch.query({
        query: `SELECT profile_id, step FROM journey_steps
                WHERE workspace_id = {ws:String} AND journey_id = {j:String} AND node_id = 's'`,
        query_params: { ws: cfg.keys.workspace, j: id },
        format: 'JSONEachRow',
      });
      for (const r of await rs.json<{ profile_id: string; step: string }>()) arm.set(r.profile_id, r.step);
      return arm.size === users.length;
    });
    const held = users.filter((u) => arm.get(profileOf.get(u)!) === 'holdout');
    const messaged = users.filter((u) => arm.get(profileOf.get(u)!) === 'split');
    // a 50% holdout of 40 (a hash of the run, so the sizes vary a little but are not lopsided)
    expect(held.length).toBeGreaterThan(5);
    expect(messaged.length).toBeGreaterThan(5);
    expect(held.length + messaged.length).toBe(users.length);
    await eventually('every messaged person sent to', () =>
      messaged.every((u) =>
        receiver.deliveries.some((d) => d.url?.endsWith('?k=mail') && d.body.includes(`"${u}"`)),
      ),
    );
    expect(receiver.deliveries.filter((d) => held.some((u) => d.body.includes(`"userId":"${u}"`)))).toEqual(
      [],
    );

    // 2 held-out people convert (their runs ended at the split), one of them twice;
    // 4 messaged people convert while they wait (their runs end as converted)
    const heldConv = held.slice(0, 2);
    const msgConv = messaged.slice(0, 4);
    await ingest('/v1/batch', {
      batch: [...heldConv, heldConv[0]!, ...msgConv].map((userId) => ({
        type: 'track',
        userId,
        event: 'Upgraded',
      })),
    });
    const stats = await eventually(
      'the conversions counted',
      async () => {
        const s = (await api('GET', `/v1/journeys/${id}/stats`)).body;
        return s.branches?.s?.holdout?.converted === 2 && s.branches?.s?.['variant:0']?.converted === 4
          ? s
          : undefined;
      },
      30_000,
    );
    const hRate = 2 / held.length;
    const tRate = 4 / messaged.length;
    expect(stats.convertedAfterExit).toBe(2);
    expect(stats.nodes.w.converted).toBe(4);
    expect(stats.holdouts.s.treatment).toEqual({ entered: messaged.length, converted: 4, rate: tRate });
    expect(stats.holdouts.s.holdout).toEqual({ entered: held.length, converted: 2, rate: hRate });
    expect(stats.holdouts.s.lift).toBeCloseTo((tRate - hRate) / hRate, 10);
    expect(stats.holdouts.s.difference).toBeCloseTo(tRate - hRate, 10);
    expect(stats.holdouts.s.confidence).toBeGreaterThanOrEqual(0);
    expect(stats.holdouts.s.confidence).toBeLessThan(1);
    // the conversions after exit are on the ledger too
    await eventually('converted_after_exit rows', async () => {
      const rs = await ch.query({
        query: `SELECT count() AS n FROM journey_steps
                WHERE workspace_id = {ws:String} AND journey_id = {j:String} AND step = 'converted_after_exit'`,
        query_params: { ws: cfg.keys.workspace, j: id },
        format: 'JSONEachRow',
      });
      return Number((await rs.json<{ n: string }>())[0]?.n) === 2;
    });
  });

  it('refuses a goal window that is not a duration', async () => {
    const seg = (await api('POST', '/v1/segments', { name: 'Any', rule: { '==': [{ var: 'traits.x' }, 1] } }))
      .body.id as string;
    const bad = await api('POST', '/v1/journeys', {
      name: 'x',
      entry: { segment: seg, on: 'enter' },
      goal: { event: 'Upgraded', within: '7 days' },
      nodes: [{ id: 'a', type: 'exit' }],
    });
    expect(bad).toEqual({
      status: 400,
      body: { error: 'goal.within: not an ISO 8601 duration such as "P7D" (at most 10 years)' },
    });
  });
});
