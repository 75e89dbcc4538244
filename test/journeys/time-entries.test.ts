// Journeys by the clock, on the real stack (ingest → Kafka → processor → journey runners →
// activation worker → webhook; steps in ClickHouse): a wait until a local time of day in
// the profile's zone (else the deployment's), a broadcast that enters every member of a
// segment once at its time, and a schedule (a cron every second) that enters the members
// at each tick, once per tick, with two runners competing for every occurrence; a
// date-trait entry for people who had the trait before activation and who get it after.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startJourneys } from '../../activation/journeys/start-journeys.ts';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import type { RunningService } from '../../runtime/service.ts';
import { nextLocalTime } from '../../schemas/journey-time.ts';
import { globalKeys } from '../../schemas/redis-keys.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';
import { type Delivery, startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let ch: ClickHouseClient;
let clients: Clients;
let second: RunningService;

const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });
async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${running.urls.query}${path}`, {
    method,
    headers: admin(),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are read field by field
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, any> };
}
async function ingest(path: string, body: unknown) {
  const res = await fetch(`${running.urls.ingest}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
}
const hook = (k: string) => `${receiver.url}?k=${k}`;
const got = (k: string, userId: string): Delivery[] =>
  receiver.deliveries.filter(
    (d) => d.url?.endsWith(`?k=${k}`) && (JSON.parse(d.body) as { userId: string }).userId === userId,
  );
async function journey(body: unknown): Promise<string> {
  const created = await api('POST', '/v1/journeys', body);
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const id = created.body.id as string;
  expect((await api('POST', `/v1/journeys/${id}/activate`)).body.status).toBe('active');
  return id;
}
async function steps(journeyId: string) {
  const rs = await ch.query({
    query: `SELECT s.profile_id AS profile_id, s.node_id AS node_id, s.step AS step, s.detail AS detail,
                   s.message_id AS message_id
            FROM journey_steps AS s
            WHERE s.workspace_id = {ws:String} AND s.journey_id = {j:String}
            ORDER BY s.at, s.step`,
    query_params: { ws: cfg.keys.workspace, j: journeyId },
    format: 'JSONEachRow',
  });
  return rs.json<{ profile_id: string; node_id: string; step: string; detail: string; message_id: string }>();
}
const profileId = async (userId: string) =>
  (await api('GET', `/v1/profiles?userId=${userId}`)).body.id as string;
async function segment(name: string, rule: unknown): Promise<string> {
  const res = await api('POST', '/v1/segments', { name, rule });
  expect(res.status).toBe(201);
  return res.body.id as string;
}
async function members(seg: string, n: number) {
  await eventually(`${n} members in ${seg}`, async () => {
    const m = await api('GET', `/v1/segments/${seg}/members`);
    return m.body.count === n;
  });
}

beforeAll(async () => {
  // the deployment's zone is not UTC, so a profile without one visibly falls back to it
  cfg = testConfig({ CDP_DEFAULT_TIMEZONE: 'America/New_York' });
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  ch = await createClickHouse(cfg.clickhouse);
  // a second runner in the same group: time entries must still enter everyone once
  const log = testLogger(cfg);
  clients = createClients(cfg, log);
  second = await startJourneys(cfg, clients, log.child({ runner: 2 }));
});

afterAll(async () => {
  await second?.stop();
  await clients?.close();
  await running?.stop();
  await receiver?.close();
});

describe('journeys by the clock', () => {
  it('a wait until a local time of day: in the profile’s timezone trait, else the deployment’s', async () => {
    await ingest('/v1/identify', { userId: 'kat', traits: { timezone: 'Asia/Kathmandu' } });
    await ingest('/v1/identify', { userId: 'lou', traits: { timezone: 'Not/AZone' } });
    await eventually('kat’s zone stored', async () => {
      const p = await api('GET', '/v1/profiles?userId=kat');
      return p.body.traits?.timezone === 'Asia/Kathmandu';
    });
    // a time of day a few seconds ahead in Kathmandu (+05:45), with seconds
    const target = Math.ceil((Date.now() + 8000) / 1000) * 1000;
    const time = new Intl.DateTimeFormat('en-GB', {
      timeZone: 'Asia/Kathmandu',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    }).format(new Date(target));
    const id = await journey({
      name: 'Tea time',
      entry: { event: 'Tea Ordered' },
      nodes: [
        { id: 'w', type: 'wait', for: { untilLocal: { time } }, next: 's' },
        { id: 's', type: 'send', channel: 'webhook', webhook: { url: hook('tea') } },
      ],
    });
    await ingest('/v1/batch', {
      batch: [
        { type: 'track', userId: 'kat', event: 'Tea Ordered' },
        { type: 'track', userId: 'lou', event: 'Tea Ordered' },
      ],
    });
    const [kat, lou] = [await profileId('kat'), await profileId('lou')];
    const waiting = async (pid: string) =>
      (await steps(id)).find((r) => r.profile_id === pid && r.step === 'waiting')?.detail;
    // lou's zone is not a valid IANA name: New York's wall clock, hours away
    const louDue = nextLocalTime(Date.now() - 60_000, 'America/New_York', { time });
    expect(await eventually('kat waiting', () => waiting(kat))).toBe(new Date(target).toISOString());
    expect(await eventually('lou waiting', () => waiting(lou))).toBe(new Date(louDue).toISOString());
    await eventually('kat’s send at her local time', () => got('tea', 'kat').length === 1, 30_000);
    expect(Date.now()).toBeGreaterThanOrEqual(target);
    expect(got('tea', 'lou')).toEqual([]);
    const stats = (await api('GET', `/v1/journeys/${id}/stats`)).body;
    expect(stats.nodes).toMatchObject({ w: { now: 1, passed: 1 }, s: { passed: 1 } });
  });

  it('a broadcast enters every member of its segment once, at its time, and no one who joins later', async () => {
    const seg = await segment('Broadcast audience', { '==': [{ var: 'traits.bc' }, 'yes'] });
    const people = ['bc-1', 'bc-2', 'bc-3'];
    await ingest('/v1/batch', {
      batch: people.map((userId) => ({ type: 'identify', userId, traits: { bc: 'yes' } })),
    });
    await members(seg, 3);
    const at = new Date(Math.ceil((Date.now() + 4000) / 1000) * 1000);
    const id = await journey({
      name: 'Winter sale',
      entry: { broadcast: { segment: seg, at: at.toISOString() } },
      // after_exit: a person who has finished could enter again, yet not at the same occurrence
      reEntry: 'after_exit',
      nodes: [{ id: 's', type: 'send', channel: 'webhook', webhook: { url: hook('bc') } }],
    });
    while (Date.now() < at.getTime() - 500) {
      expect(receiver.deliveries.filter((d) => d.url?.endsWith('?k=bc'))).toEqual([]);
      await new Promise((r) => setTimeout(r, 100));
    }
    await eventually('everyone sent', () => people.every((p) => got('bc', p).length === 1), 20_000);
    expect(Date.now()).toBeGreaterThanOrEqual(at.getTime());
    await ingest('/v1/identify', { userId: 'bc-late', traits: { bc: 'yes' } });
    await members(seg, 4);
    await new Promise((r) => setTimeout(r, 1500)); // another entry would come now
    for (const p of people) expect(got('bc', p)).toHaveLength(1);
    expect(got('bc', 'bc-late')).toEqual([]);
    const stats = (await api('GET', `/v1/journeys/${id}/stats`)).body;
    expect(stats).toMatchObject({ entered: 3, refused: 0 });
    await eventually('three entries in the ledger', async () =>
      (await steps(id)).filter((r) => r.step === 'entered').length === 3 ? true : undefined,
    );
    expect(new Set((await steps(id)).filter((r) => r.step === 'entered').map((r) => r.message_id))).toEqual(
      new Set([`broadcast@${at.toISOString()}`]),
    );
  });

  it('a schedule (a cron every second) enters its segment’s members at each tick, once per tick', async () => {
    const seg = await segment('Scheduled audience', { '==': [{ var: 'traits.sch' }, 'yes'] });
    const people = ['sch-1', 'sch-2'];
    await ingest('/v1/batch', {
      batch: people.map((userId) => ({ type: 'identify', userId, traits: { sch: 'yes' } })),
    });
    await members(seg, 2);
    const id = await journey({
      name: 'Every second',
      entry: { schedule: { cron: '* * * * * *', tz: 'Europe/Berlin', segment: seg } },
      reEntry: 'after_exit',
      nodes: [{ id: 's', type: 'send', channel: 'webhook', webhook: { url: hook('sch') } }],
    });
    await eventually('three ticks each', () => people.every((p) => got('sch', p).length >= 3), 30_000);
    expect((await api('POST', `/v1/journeys/${id}/pause`)).body.status).toBe('paused');
    await new Promise((r) => setTimeout(r, 1500)); // what was under way settles
    const sent = Object.fromEntries(people.map((p) => [p, got('sch', p).length]));
    await new Promise((r) => setTimeout(r, 1500));
    // paused: no more ticks
    for (const p of people) expect(got('sch', p)).toHaveLength(sent[p]!);
    const pids = await Promise.all(people.map(profileId));
    await eventually('the entries in the ledger', async () => {
      const rows = (await steps(id)).filter((r) => r.step === 'entered');
      return pids.every((pid, i) => rows.filter((r) => r.profile_id === pid).length === sent[people[i]!])
        ? rows
        : undefined;
    });
    const rows = (await steps(id)).filter((r) => r.step === 'entered');
    for (const pid of pids) {
      const occ = rows.filter((r) => r.profile_id === pid).map((r) => r.message_id);
      // one entry per tick: no occurrence twice, each on a whole second
      expect(new Set(occ).size).toBe(occ.length);
      for (const o of occ) expect(o).toMatch(/^schedule@\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z$/);
    }
  });

  it('a date-trait entry: a day before `renewal_date` at a local time, for people who had it (backfill) and who get it later (signal)', async () => {
    const tz = 'Asia/Kathmandu';
    // ahead by enough for the backfill, and then an identify, to set the timers first
    const target = Math.ceil((Date.now() + 18_000) / 1000) * 1000;
    const local = (ms: number, opts: Intl.DateTimeFormatOptions) =>
      new Intl.DateTimeFormat('en-CA', { timeZone: tz, hourCycle: 'h23', ...opts }).format(new Date(ms));
    const at = local(target, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    const today = local(target, { year: 'numeric', month: '2-digit', day: '2-digit' });
    const tomorrow = new Date(Date.parse(`${today}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
    // before the journey exists: found by the backfill on activation
    await ingest('/v1/batch', {
      batch: [
        { type: 'identify', userId: 'dt-old', traits: { timezone: tz, renewal_date: tomorrow } },
        // renewing today: the day before has passed, no entry
        { type: 'identify', userId: 'dt-past', traits: { timezone: tz, renewal_date: today } },
      ],
    });
    await eventually('the traits stored', async () => {
      const p = await api('GET', '/v1/profiles?userId=dt-past');
      return p.body.traits?.renewal_date === today;
    });
    const id = await journey({
      name: 'Renewal reminder',
      entry: { dateTrait: 'renewal_date', offset: '-P1D', at },
      nodes: [{ id: 's', type: 'send', channel: 'webhook', webhook: { url: hook('dt') } }],
    });
    // the backfill over the profiles done (so what follows is the signal's doing)
    await eventually('the backfill done', async () => {
      const raw = await clients
        .redis()
        .hget(globalKeys(cfg.redis.prefix).journeysEntries, `${cfg.keys.workspace}/${id}`);
      return raw ? (JSON.parse(raw) as { done: boolean }).done : undefined;
    });
    // after activation: an identify that sets the trait signals the runner
    await ingest('/v1/identify', { userId: 'dt-new', traits: { timezone: tz } });
    await ingest('/v1/identify', { userId: 'dt-new', traits: { renewal_date: tomorrow } });
    while (Date.now() < target - 500) {
      expect(receiver.deliveries.filter((d) => d.url?.endsWith('?k=dt'))).toEqual([]);
      await new Promise((r) => setTimeout(r, 100));
    }
    await eventually(
      'both reminded',
      () => got('dt', 'dt-old').length === 1 && got('dt', 'dt-new').length === 1,
      30_000,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(target);
    await new Promise((r) => setTimeout(r, 1500)); // a second entry would come now
    expect(got('dt', 'dt-old')).toHaveLength(1);
    expect(got('dt', 'dt-new')).toHaveLength(1);
    expect(got('dt', 'dt-past')).toEqual([]);
    await eventually('the entries in the ledger', async () => {
      const rows = (await steps(id)).filter((r) => r.step === 'entered');
      return rows.length === 2 ? rows : undefined;
    });
    expect(new Set((await steps(id)).filter((r) => r.step === 'entered').map((r) => r.message_id))).toEqual(
      new Set([`dateTrait@${tomorrow}`]),
    );
  });

  it('refuses a time entry that is not one with a 400 naming the field, and an unknown audience', async () => {
    const nodes = [{ id: 'a', type: 'exit' }];
    expect(
      await api('POST', '/v1/journeys', {
        name: 'x',
        entry: { schedule: { cron: '0 25 * * *', segment: 'seg_nope' } },
        nodes,
      }),
    ).toEqual({ status: 400, body: { error: 'entry.schedule.cron: hour: "25" is outside 0-23' } });
    expect(
      await api('POST', '/v1/journeys', {
        name: 'x',
        entry: { broadcast: { segment: 'seg_nope', at: '2030-01-01T09:00:00Z' } },
        nodes,
      }),
    ).toEqual({ status: 400, body: { error: 'entry.broadcast.segment: no segment seg_nope' } });
  });
});
