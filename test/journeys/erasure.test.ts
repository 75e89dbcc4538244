// The erasure of a person in journeys, on the real stack (ingest → Kafka → processor →
// journey runner; DELETE /v1/profiles/{id} on the query API): afterwards nothing in Redis
// names the erased profile id (no key, no member of a set or sorted set, no hash field or
// value; the erasure job's own record apart), while everyone else's waits stay and fire;
// a timer set or firing for the erased person afterwards does nothing; what a step under way
// leaves after the journeys step (a run, a timer, ledger rows) the sweep takes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { journeyTimers } from '../../activation/journeys/journey-timers.ts';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { createErasure, runErasure } from '../../query/erasure-job.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { Redis } from '../../runtime/redis.ts';
import { parseTimerMember, timerMember } from '../../schemas/journey-timer.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let clients: Clients;
let redis: Redis;
let ch: ClickHouseClient;

const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);
const ingest = ingestApi(
  () => running.urls.ingest!,
  () => cfg,
);
const hook = (k: string) => `${receiver.url}?k=${k}`;
const sends = (k: string) => receiver.deliveries.filter((d) => d.url?.endsWith(`?k=${k}`));
async function journey(body: unknown): Promise<string> {
  const created = await api('POST', '/v1/journeys', body);
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const id = created.body.id as string;
  expect((await api('POST', `/v1/journeys/${id}/activate`)).body.status).toBe('active');
  return id;
}
const stats = async (id: string) => (await api('GET', `/v1/journeys/${id}/stats`)).body;
const profileId = async (userId: string) =>
  (
    await eventually(`${userId}'s profile`, async () => {
      const p = await api('GET', `/v1/profiles?userId=${userId}`);
      return p.status === 200 ? p : undefined;
    })
  ).body.id as string;
/** Every member of the journey timer sets (due, claimed, parked) that names `pid`, with its set. */
async function timersOf(pid: string): Promise<Array<{ parked: boolean; member: string }>> {
  const g = globalKeys(cfg.redis.prefix);
  const sets = [g.journeysDue, g.journeysLease, ...(await redis.keys(g.journeysParked('*', '*')))];
  const out: Array<{ parked: boolean; member: string }> = [];
  for (const set of sets)
    for (const member of await redis.zrange(set, 0, -1))
      if (parseTimerMember(member)?.ref.profileId === pid)
        out.push({ parked: !sets.slice(0, 2).includes(set), member });
  return out;
}

/**
 * Where Redis still names `pid` under the test's prefix: key names, and the members, fields
 * and values of every key, whatever its type. The erasure job's record (which profile a
 * request named, so a repeated DELETE finds its job) is the only place allowed to.
 */
async function mentions(pid: string): Promise<string[]> {
  const jobs = `${workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).tag}:erasure:`;
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${cfg.redis.prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      if (key.startsWith(jobs)) continue;
      if (key.includes(pid)) found.push(`key ${key}`);
      const type = await redis.type(key);
      const values =
        type === 'string'
          ? [(await redis.get(key)) ?? '']
          : type === 'hash'
            ? Object.entries(await redis.hgetall(key)).flat()
            : type === 'set'
              ? await redis.smembers(key)
              : type === 'zset'
                ? await redis.zrange(key, 0, -1)
                : type === 'list'
                  ? await redis.lrange(key, 0, -1)
                  : type === 'none'
                    ? []
                    : [`(unread ${type})`];
      for (const v of values) if (v.includes(pid)) found.push(`${type} ${key}: ${JSON.stringify(v)}`);
    }
  } while (cursor !== '0');
  return found;
}

beforeAll(async () => {
  cfg = testConfig();
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  clients = createClients(cfg, testLogger(cfg));
  redis = clients.redis();
  ch = await createClickHouse(cfg.clickhouse);
});

afterAll(async () => {
  await clients?.close();
  await running?.stop();
  await receiver?.close();
});

describe('erasure in journeys', () => {
  let ivy: string;
  let trial: string;
  let renewal: string;

  it('leaves nothing in Redis that names the erased person (runs, waits, stale and parked timers, date entries), and others’ waits still fire', async () => {
    // a wait until an event met early: its timeout's timer stays behind (stale), the run
    // waits on at the next node with a timer of its own
    trial = await journey({
      name: 'Trial',
      entry: { event: 'Trial Started' },
      nodes: [
        {
          id: 'w1',
          type: 'wait',
          for: { until: { event: 'Activated' }, timeout: 'P1D' },
          branches: { met: 'w2' },
        },
        { id: 'w2', type: 'wait', for: 'P1D' },
      ],
    });
    // a date entry a year ahead: a timer of the person's own (run 0)
    renewal = await journey({
      name: 'Renewal',
      entry: { dateTrait: 'renewal_date', offset: '-P14D', at: '09:00' },
      nodes: [{ id: 's', type: 'send', channel: 'webhook', webhook: { url: hook('renewal') } }],
    });
    // a wait that ends while its journey is paused: its timer is parked
    const paused = await journey({
      name: 'Paused',
      entry: { event: 'Joined' },
      nodes: [
        { id: 'w', type: 'wait', for: 'PT5S', next: 's' },
        { id: 's', type: 'send', channel: 'webhook', webhook: { url: hook('paused') } },
      ],
    });
    const short = await journey({
      name: 'Short',
      entry: { event: 'Pinged' },
      nodes: [
        { id: 'w', type: 'wait', for: 'PT6S', next: 's' },
        { id: 's', type: 'send', channel: 'webhook', webhook: { url: hook('short') } },
      ],
    });
    const nextYear = `${new Date().getUTCFullYear() + 1}-06-15`;
    for (const userId of ['ivy', 'bob']) {
      await ingest('/v1/identify', { userId, traits: { renewal_date: nextYear } });
      await ingest('/v1/track', { userId, event: 'Trial Started' });
      await ingest('/v1/track', { userId, event: 'Joined' });
    }
    await eventually('both at w1 and in Paused', async () => {
      const [t, p] = [await stats(trial), await stats(paused)];
      return t.nodes?.w1?.now === 2 && p.nodes?.w?.now === 2;
    });
    expect((await api('POST', `/v1/journeys/${paused}/pause`)).body.status).toBe('paused');
    await ingest('/v1/track', { userId: 'ivy', event: 'Activated' });
    ivy = await profileId('ivy');
    const bob = await profileId('bob');
    /** What each timer is: a wait's node in Trial, `$date:` (Renewal), `parked` (Paused), `short`. */
    const kinds = (timers: Array<{ parked: boolean; member: string }>) =>
      timers
        .map(({ parked, member }) => {
          const t = parseTimerMember(member)!;
          if (parked) return 'parked';
          if (t.ref.journeyId === trial) return t.node;
          if (t.ref.journeyId === renewal) return t.node.slice(0, 6);
          return t.ref.journeyId === short ? 'short' : `due in ${t.ref.journeyId}`;
        })
        .sort();
    // ivy: the stale timeout of w1, w2's wait, the date entry, the parked wait
    await eventually('ivy’s four timers', async () => {
      const k = kinds(await timersOf(ivy));
      return JSON.stringify(k) === JSON.stringify(['$date:', 'parked', 'w1', 'w2']) ? k : undefined;
    });
    await eventually('bob’s three timers', async () => {
      const k = kinds(await timersOf(bob));
      return JSON.stringify(k) === JSON.stringify(['$date:', 'parked', 'w1']) ? k : undefined;
    });

    // bob starts a short wait just before the erasure: it fires after it
    await ingest('/v1/track', { userId: 'bob', event: 'Pinged' });
    await eventually('bob waiting', async () => (await stats(short)).nodes?.w?.now === 1);
    const del = await api('DELETE', `/v1/profiles/${ivy}`);
    expect(del.status).toBeLessThan(300);
    const job = del.body.job.id as string;
    const done = await eventually(
      'the erasure done',
      async () => {
        const j = (await api('GET', `/v1/erasures/${job}`)).body;
        return j.status === 'done' ? j : undefined;
      },
      60_000,
    );
    expect(done.counts).toMatchObject({ journeyRuns: 2, journeyTimers: 4 });
    expect(await timersOf(ivy)).toEqual([]);
    expect(await mentions(ivy)).toEqual([]);
    // everyone else's timers stay, and their waits fire
    expect(kinds(await timersOf(bob)).filter((k) => k !== 'short')).toEqual(['$date:', 'parked', 'w1']);
    await eventually('bob’s short wait fired', () => sends('short').length === 1, 20_000);
    const s = await stats(trial);
    expect(s.nodes).toMatchObject({ w1: { now: 1 }, w2: { now: 0, exited: 1 } });
    expect(s.ended).toMatchObject({ erased: 1 });
  });

  it('a timer set or firing for an erased person does nothing, and brings nothing of them back', async () => {
    expect(ivy).toBeDefined();
    const log = testLogger(cfg);
    const timers = journeyTimers({ redis, prefix: cfg.redis.prefix, log, now: Date.now });
    const g = globalKeys(cfg.redis.prefix);
    const ref = { workspaceId: cfg.keys.workspace, journeyId: trial, profileId: ivy };
    // a step that was under way during the erasure sets its next timer, or parks it, now
    await timers.schedule(ref, 1, 'w2', Date.now() + 86_400_000);
    await timers.park(ref, 1, 'w2', Date.now());
    await timers.schedule({ ...ref, journeyId: renewal }, 0, '$date:2099-01-01', Date.now() + 86_400_000);
    expect(await timersOf(ivy)).toEqual([]);
    // timers claimed before the erasure and given back after it fire: the run is gone and
    // the profile is empty, so they do nothing
    const before = [await stats(trial), await stats(renewal)];
    await redis.zadd(g.journeysDue, Date.now(), timerMember(ref, 1, 'w2'));
    await redis.zadd(
      g.journeysDue,
      Date.now(),
      timerMember({ ...ref, journeyId: renewal }, 0, '$date:2030-01-01'),
    );
    await eventually('the stray timers fired and went', async () => (await timersOf(ivy)).length === 0);
    expect(await mentions(ivy)).toEqual([]);
    expect([await stats(trial), await stats(renewal)]).toEqual(before);
  });

  it('a person merged from two profiles, each in the journey: nothing names either profile id afterwards', async () => {
    expect(trial).toBeDefined(); // the first test's journey
    await ingest('/v1/track', { userId: 'kim', event: 'Trial Started' });
    await ingest('/v1/track', { anonymousId: 'kim-phone', event: 'Trial Started' });
    const kim = await profileId('kim');
    const phone = (
      await eventually('the phone’s profile', async () => {
        const p = await api('GET', '/v1/profiles?anonymousId=kim-phone');
        return p.status === 200 ? p : undefined;
      })
    ).body.id as string;
    await eventually(
      'both waiting',
      async () => (await timersOf(kim)).length + (await timersOf(phone)).length === 2,
    );
    await ingest('/v1/identify', { userId: 'kim', anonymousId: 'kim-phone' });
    await eventually('merged (one run ends as merged)', async () => (await stats(trial)).ended?.merged === 1);
    const del = await api('DELETE', '/v1/profiles?userId=kim');
    expect(del.status).toBeLessThan(300);
    const done = await eventually(
      'the erasure done',
      async () => {
        const j = (await api('GET', `/v1/erasures/${del.body.job.id}`)).body;
        return j.status === 'done' ? j : undefined;
      },
      60_000,
    );
    expect(done.counts).toMatchObject({ profiles: 2, journeyRuns: 2, journeyTimers: 2 });
    expect(await mentions(kim)).toEqual([]);
    expect(await mentions(phone)).toEqual([]);
  });

  it('the sweep takes what a journey step under way left after the journeys step: a run, a timer, ledger rows', async () => {
    expect(trial).toBeDefined(); // the first test's journey
    await ingest('/v1/track', { userId: 'eve', event: 'Trial Started' });
    const eve = await profileId('eve');
    await eventually('eve waiting', async () => (await timersOf(eve)).length === 1);
    // her steps so far reach ClickHouse through the journey ledger topic; the sweep's delay is
    // for rows later than that, so wait for these first (a loaded machine lags behind)
    await eventually(
      'eve’s entered and waiting steps in journey_steps',
      async () => {
        const rs = await ch.query({
          query:
            "SELECT countIf(step = 'entered') AS e, countIf(step = 'waiting') AS w FROM journey_steps WHERE workspace_id = {ws:String} AND profile_id = {p:String}",
          query_params: { ws: cfg.keys.workspace, p: eve },
          format: 'JSONEachRow',
        });
        const [row] = await rs.json<{ e: string; w: string }>();
        return Number(row?.e) >= 1 && Number(row?.w) >= 1;
      },
      60_000,
    );
    // the job run by hand on a clock of its own, so what happens between its steps is ours
    let clock = Date.now();
    const deps = {
      redis,
      clickhouse: ch,
      defs: new DefinitionStore(redis, cfg.redis.prefix),
      redisPrefix: cfg.redis.prefix,
      log: testLogger(cfg),
      now: () => new Date(clock),
      sweepDelayMs: 600_000,
    };
    const ws = cfg.keys.workspace;
    const job = await createErasure(deps, ws, eve, 'test');
    const first = await runErasure(deps, ws, job.id);
    expect(first).toMatchObject({ status: 'pending', counts: { journeyRuns: 1, journeyTimers: 1 } });
    expect(first!.done).toContain('journeys');
    expect(await mentions(eve)).toEqual([]);
    // meanwhile, what a step begun before leaves: eve entered again (her profile read before
    // the erasure), a ledger row of it arriving, and a timer it had claimed given back
    const ref = { workspaceId: ws, journeyId: trial, profileId: eve };
    const k = workspaceKeys(cfg.redis.prefix, ws);
    const run = { run: 2, v: 1, node: 'w1', state: 'active', enteredAt: Date.now(), nodeAt: Date.now() };
    await redis.hset(k.journeyRun(trial, eve), run);
    await redis.hincrby(k.journeyStats(trial), 'now:w1', 1);
    await redis.zadd(
      globalKeys(cfg.redis.prefix).journeysDue,
      Date.now() + 86_400_000,
      timerMember(ref, 2, 'w1'),
    );
    await ch.insert({
      table: 'journey_steps',
      format: 'JSONEachRow',
      values: [
        {
          workspace_id: ws,
          at: Date.now(),
          journey_id: trial,
          version: 1,
          profile_id: eve,
          run: 2,
          node_id: 'w1',
          step: 'entered',
          detail: '',
          message_id: '',
        },
      ],
    });
    clock += 600_000;
    expect(await runErasure(deps, ws, job.id)).toMatchObject({ status: 'done' });
    expect(await mentions(eve)).toEqual([]);
    const rs = await ch.query({
      query:
        'SELECT count() AS n FROM journey_steps WHERE workspace_id = {ws:String} AND profile_id = {p:String}',
      query_params: { ws, p: eve },
      format: 'JSONEachRow',
    });
    expect(Number((await rs.json<{ n: string }>())[0]!.n)).toBe(0);
  });
});
