// A campaign's send rate (policy.rate) on the real stack: two activation workers in one
// group (real Kafka, Redis, chDB ledger), a webhook receiver stamping arrivals. Many people
// entering at once are sent no faster than the rate, each once, none lost; the two workers
// take their slots from one reservation; a lower rate set while sends wait applies to them;
// a malformed rate is a 400 naming the field.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startActivation, startLedger } from '../../activation/main.ts';
import { createQueryApp } from '../../query/app.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { RunningService } from '../../runtime/service.ts';
import { WriteKeyStore } from '../../runtime/write-keys.ts';
import { migrate } from '../../schemas/migrations.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { topics } from '../../schemas/topics.ts';
import { change, segmentChangeProducer } from '../activation-peers.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { type Delivery, startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let clients: Clients;
let ch: ClickHouseClient;
const workers: RunningService[] = [];
let ledger: RunningService;
let changes: Awaited<ReturnType<typeof segmentChangeProducer>>;
let app: ReturnType<typeof createQueryApp>;
const receivers: Array<Awaited<ReturnType<typeof startWebhookReceiver>>> = [];
/** Per worker, the log lines it wrote (to tell which worker decided what). */
const logs: Array<Array<Record<string, unknown>>> = [[], []];

function capturingLogger(into: Array<Record<string, unknown>>) {
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line) into.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return pino({ level: 'debug' }, stream);
}

const api = (path: string, method: string, body?: unknown) =>
  app.request(path, {
    method,
    headers: { authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

async function segment(): Promise<string> {
  const res = await api('/v1/segments', 'POST', {
    name: 'rate',
    rule: { '==': [{ var: 'traits.plan' }, uniqueId('plan')] },
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function rateCampaign(segmentId: string, url: string, perSecond: number): Promise<string> {
  const res = await api('/v1/campaigns', 'POST', {
    name: 'broadcast',
    segmentId,
    on: 'enter',
    channel: 'webhook',
    webhook: { url },
    policy: { rate: { perSecond } },
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

interface Row {
  profile_id: string;
  outcome: string;
  reason: string;
  campaign_version: number;
  at_ms: string;
  not_before_ms: string | null;
}
async function rows(campaignId: string): Promise<Row[]> {
  const rs = await ch.query({
    query: `SELECT profile_id, outcome, reason, campaign_version, toUnixTimestamp64Milli(at) AS at_ms,
                   toUnixTimestamp64Milli(not_before) AS not_before_ms
            FROM activation_ledger WHERE workspace_id = {ws:String} AND campaign_id = {c:String} ORDER BY at`,
    query_params: { ws: cfg.keys.workspace, c: campaignId },
    format: 'JSONEachRow',
  });
  return rs.json<Row>();
}

const profileOf = (d: Delivery) => (JSON.parse(d.body) as { profileId: string }).profileId;
const settle = (ms = 800) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  cfg = testConfig({ CDP_DEFAULT_TIMEZONE: 'UTC' });
  const log = testLogger(cfg);
  clients = createClients(cfg, log);
  ch = await clients.clickhouse();
  await migrate(ch);
  const defs = new DefinitionStore(clients.redis(), cfg.redis.prefix);
  const t = topics(cfg.kafka.topicPrefix);
  const admin = clients.kafka().admin();
  await admin.ensureTopics([
    { topic: t.segmentChanges, partitions: 4 },
    { topic: t.activationRetry, partitions: 4 },
    { topic: t.deadLetter, partitions: 1 },
  ]);
  await admin.disconnect();
  for (const into of logs) workers.push(await startActivation(cfg, clients, capturingLogger(into)));
  ledger = await startLedger(cfg, clients, log);
  changes = await segmentChangeProducer(cfg.kafka.brokers, t.segmentChanges);
  app = createQueryApp({
    redis: clients.redis(),
    clickhouse: ch,
    defs,
    writeKeys: new WriteKeyStore(clients.redis(), cfg.redis.prefix),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k) => (k === cfg.keys.adminKey ? cfg.keys.workspace : undefined),
    unsubscribeSecret: cfg.unsubscribe.secret,
    log,
    now: () => new Date(),
  });
  // both workers own partitions of the group before a test counts on it: changes for no
  // campaign until each worker has handled some
  const warm = uniqueId('seg_warm_');
  await eventually(
    'both workers consuming',
    async () => {
      await changes.send(
        Array.from({ length: 16 }, (_, i) => change(cfg.keys.workspace, warm, uniqueId(`w${i}-`), {})),
      );
      return logs.every((l) => l.some((e) => e.msg === 'activation_no_campaign'));
    },
    90_000,
    1000,
  );
}, 120_000);

afterAll(async () => {
  await changes?.close();
  for (const w of workers) await w.stop();
  await ledger?.stop();
  await clients?.close();
  await Promise.all(receivers.map((r) => r.close()));
});

describe('send rate (policy.rate)', () => {
  it('people entering at once are sent at no more than the rate, each once, by two workers sharing it', async () => {
    const r = await startWebhookReceiver();
    receivers.push(r);
    const seg = await segment();
    const N = 20; // per second: a slot every 50 ms
    const M = 60;
    const id = await rateCampaign(seg, r.url, N);
    await settle();
    const people = Array.from({ length: M }, (_, i) => `p-rate-${i}`);
    await changes.send(people.map((p) => change(cfg.keys.workspace, seg, p, {})));
    await eventually('every send delivered', () => r.deliveries.length >= M, 60_000);
    await settle(1500);
    // none lost, none twice
    expect(r.deliveries).toHaveLength(M);
    expect(new Set(r.deliveries.map(profileOf))).toEqual(new Set(people));

    // the slots: one per send, 1000/N ms apart across both workers, none sent before its own
    const ledgerRows = await eventually('the ledger', async () => {
      const got = await rows(id);
      return got.filter((x) => x.outcome === 'sent').length === M ? got : undefined;
    });
    const delayed = ledgerRows.filter((x) => x.outcome === 'delayed');
    expect(delayed.every((x) => x.reason === 'rate_limit')).toBe(true);
    // each person's first delay is to their turn in the queue (a later one, if any, to the
    // time the send schedule gave it)
    const slotOf = new Map<string, number>();
    for (const x of delayed) if (!slotOf.has(x.profile_id)) slotOf.set(x.profile_id, Number(x.not_before_ms));
    expect(slotOf.size).toBeGreaterThanOrEqual(M / 2);
    const slots = [...slotOf.values()].sort((a, b) => a - b);
    for (let i = 1; i < slots.length; i++)
      expect(slots[i]! - slots[i - 1]!).toBeGreaterThanOrEqual(1000 / N - 1);
    for (const d of r.deliveries) {
      const slot = slotOf.get(profileOf(d));
      if (slot !== undefined) expect(d.at!).toBeGreaterThanOrEqual(slot - 1);
    }

    // measured at the receiver: the spread is the rate's, and no faster
    const times = r.deliveries.map((d) => d.at!).sort((a, b) => a - b);
    const span = times.at(-1)! - times[0]!;
    expect(span).toBeGreaterThanOrEqual(((M - 1) * 1000) / N - 300);
    expect((M - 1) / (span / 1000)).toBeLessThanOrEqual(N * 1.1);

    // both workers reserved slots from the one shared rate
    for (const l of logs)
      expect(
        l.some((e) => e.msg === 'activation_decided' && e.campaignId === id && e.reason === 'rate_limit'),
      ).toBe(true);
  }, 120_000);

  it('a worker stopped mid-broadcast and a new one started: every send once, still at the rate', async () => {
    const r = await startWebhookReceiver();
    receivers.push(r);
    const seg = await segment();
    const N = 10;
    const M = 40;
    const id = await rateCampaign(seg, r.url, N);
    await settle();
    const people = Array.from({ length: M }, (_, i) => `p-restart-${i}`);
    await changes.send(people.map((p) => change(cfg.keys.workspace, seg, p, {})));
    await eventually('the first sends', () => r.deliveries.length >= 8, 30_000);
    // the reservations and the parked sends are in Redis: the worker's place goes with neither
    await workers[0]!.stop();
    const fresh: Array<Record<string, unknown>> = [];
    workers[0] = await startActivation(cfg, clients, capturingLogger(fresh));
    await eventually('every send delivered', () => r.deliveries.length >= M, 90_000);
    await settle(1500);
    expect(r.deliveries).toHaveLength(M);
    expect(new Set(r.deliveries.map(profileOf))).toEqual(new Set(people));
    // on the ledger: sent, or (the stop came between the send and its row) found done when
    // the batch came again
    const got = await eventually('every person on the ledger', async () => {
      const all = await rows(id);
      const done = all.filter((x) => x.outcome === 'sent' || x.outcome === 'skipped_duplicate');
      return new Set(done.map((x) => x.profile_id)).size === M ? all : undefined;
    });
    // a change redelivered after the stop reserves a second slot (left unused: the send is
    // then a duplicate); the person's send went after the first
    const slotOf = new Map<string, number>();
    for (const x of got.filter((y) => y.reason === 'rate_limit'))
      slotOf.set(x.profile_id, Math.min(slotOf.get(x.profile_id) ?? Infinity, Number(x.not_before_ms)));
    const slots = [...slotOf.values()].sort((a, b) => a - b);
    for (let i = 1; i < slots.length; i++)
      expect(slots[i]! - slots[i - 1]!).toBeGreaterThanOrEqual(1000 / N - 1);
    for (const d of r.deliveries) {
      const slot = slotOf.get(profileOf(d));
      if (slot !== undefined) expect(d.at!).toBeGreaterThanOrEqual(slot - 1);
    }
    const times = r.deliveries.map((d) => d.at!).sort((a, b) => a - b);
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(((M - 1) * 1000) / N - 300);
  }, 150_000);

  it('sends overdue together (every worker was down past their slots) still go at the rate', async () => {
    const r = await startWebhookReceiver();
    receivers.push(r);
    const seg = await segment();
    const N = 10;
    const M = 40;
    const id = await rateCampaign(seg, r.url, N);
    await settle();
    const people = Array.from({ length: M }, (_, i) => `p-late-${i}`);
    await changes.send(people.map((p) => change(cfg.keys.workspace, seg, p, {})));
    await eventually('the first sends', () => r.deliveries.length >= 3, 30_000);
    const stoppedAt = Date.now();
    await Promise.all(workers.map((w) => w.stop()));
    const before = r.deliveries.length;
    // every slot passes while no worker runs
    await new Promise((res) => setTimeout(res, Math.max(0, (M * 1000) / N - (Date.now() - stoppedAt))));
    for (let i = 0; i < workers.length; i++) {
      const into: Array<Record<string, unknown>> = [];
      logs[i] = into;
      workers[i] = await startActivation(cfg, clients, capturingLogger(into));
    }
    await eventually('every send delivered', () => r.deliveries.length >= M, 90_000);
    await settle(1500);
    expect(r.deliveries).toHaveLength(M);
    expect(new Set(r.deliveries.map(profileOf))).toEqual(new Set(people));
    // the overdue ones did not go at once (all at once: ~M in a second): about N in any
    // second, with room for timers that fire late on a loaded machine
    const late = r.deliveries
      .slice(before)
      .map((d) => d.at!)
      .sort((a, b) => a - b);
    expect(late.length).toBeGreaterThan(2 * N);
    let busiest = 0;
    for (let i = 0, j = 0; i < late.length; i++) {
      while (late[i]! - late[j]! >= 1000) j++;
      busiest = Math.max(busiest, i - j + 1);
    }
    expect(busiest).toBeLessThanOrEqual(2 * N);
    expect(late.at(-1)! - late[0]!).toBeGreaterThanOrEqual(((late.length - 1) * 1000) / N - 300);
    // on the ledger: sent, or (the stop came between the send and its row) found done when
    // the batch came again
    await eventually('every person on the ledger', async () => {
      const done = (await rows(id)).filter((x) => x.outcome === 'sent' || x.outcome === 'skipped_duplicate');
      return new Set(done.map((x) => x.profile_id)).size === M;
    });
  }, 150_000);

  it('a send suppressed at its slot (consent revoked while it waited) is not sent; the others keep theirs', async () => {
    const r = await startWebhookReceiver();
    receivers.push(r);
    const seg = await segment();
    const N = 2; // the last slot 4.5 s ahead: time to revoke before it
    const M = 10;
    const id = await rateCampaign(seg, r.url, N);
    await settle();
    const people = Array.from({ length: M }, (_, i) => `p-gap-${i}`);
    await changes.send(people.map((p) => change(cfg.keys.workspace, seg, p, {})));
    const queued = await eventually('everyone queued', async () => {
      const got = (await rows(id)).filter((x) => x.reason === 'rate_limit');
      return got.length >= M - 1 ? got : undefined;
    });
    // the one whose slot is furthest ahead stops wanting messages before it comes
    const last = queued.reduce((a, b) => (Number(b.not_before_ms) > Number(a.not_before_ms) ? b : a));
    // the person as the processor keeps them (the consent API answers 404 for an unknown id)
    await clients.redis().hset(workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).profile(last.profile_id), {
      id: last.profile_id,
    });
    const put = await api(`/v1/profiles/${last.profile_id}/consent`, 'PUT', {
      channel: '*',
      subscribed: false,
    });
    expect(put.status).toBe(200);
    await eventually('the others delivered', () => r.deliveries.length >= M - 1, 30_000);
    await eventually('suppressed at its slot', async () =>
      (await rows(id)).some(
        (x) => x.profile_id === last.profile_id && x.outcome === 'suppressed' && x.reason === 'consent',
      ),
    );
    await settle(1000);
    expect(r.deliveries.map(profileOf)).not.toContain(last.profile_id);
    expect(r.deliveries).toHaveLength(M - 1);
    // the others kept their slots
    const slotOf = new Map(queued.map((x) => [x.profile_id, Number(x.not_before_ms)]));
    for (const d of r.deliveries) {
      const slot = slotOf.get(profileOf(d));
      if (slot !== undefined) expect(d.at!).toBeGreaterThanOrEqual(slot - 1);
    }
  }, 120_000);

  it('a higher rate set while sends wait brings them forward, each still sent once', async () => {
    const r = await startWebhookReceiver();
    receivers.push(r);
    const seg = await segment();
    const M = 20;
    const id = await rateCampaign(seg, r.url, 2); // 10 s for everyone
    await settle();
    const people = Array.from({ length: M }, (_, i) => `p-fast-${i}`);
    await changes.send(people.map((p) => change(cfg.keys.workspace, seg, p, {})));
    await eventually('the first sends', () => r.deliveries.length >= 2, 30_000);
    const put = await api(`/v1/campaigns/${id}`, 'PUT', {
      name: 'broadcast',
      segmentId: seg,
      on: 'enter',
      channel: 'webhook',
      webhook: { url: r.url },
      policy: { rate: { perSecond: 50 } },
    });
    expect(put.status).toBe(200);
    const changedAt = Date.now();
    const left = M - r.deliveries.length;
    expect(left).toBeGreaterThan(10);
    // at 2/s those left would take (left − 1) / 2 s; at 50/s, well under a second once seen
    await eventually('every send delivered', () => r.deliveries.length >= M, 30_000);
    expect(Date.now() - changedAt).toBeLessThan(((left - 1) * 1000) / 2 - 2000);
    await settle(1000);
    expect(r.deliveries).toHaveLength(M);
    expect(new Set(r.deliveries.map(profileOf))).toEqual(new Set(people));
  }, 120_000);

  it('a lower rate set while sends wait paces those still waiting', async () => {
    const r = await startWebhookReceiver();
    receivers.push(r);
    const seg = await segment();
    const M = 40;
    const id = await rateCampaign(seg, r.url, 10);
    await settle();
    await changes.send(
      Array.from({ length: M }, (_, i) => change(cfg.keys.workspace, seg, `p-slow-${i}`, {})),
    );
    await eventually('the first sends', () => r.deliveries.length >= 5, 30_000);
    const put = await api(`/v1/campaigns/${id}`, 'PUT', {
      name: 'broadcast',
      segmentId: seg,
      on: 'enter',
      channel: 'webhook',
      webhook: { url: r.url },
      policy: { rate: { perSecond: 2 } },
    });
    expect(put.status).toBe(200);
    const changedAt = Date.now();
    await eventually('delayed at the new rate', async () =>
      (await rows(id)).some((x) => x.outcome === 'delayed' && x.campaign_version === 2),
    );
    // seen at once, 10/s would end everything within ~4 s of the start; at 2/s the
    // sends left after the change take (left - 1) / 2 s at least
    await settle(4000);
    const left = M - r.deliveries.filter((d) => d.at! <= changedAt + 1000).length;
    expect(left).toBeGreaterThan(10);
    const after = r.deliveries
      .map((d) => d.at!)
      .filter((t) => t > changedAt + 1000)
      .sort((a, b) => a - b);
    if (after.length >= 2) {
      const rate = (after.length - 1) / ((after.at(-1)! - after[0]!) / 1000);
      expect(rate).toBeLessThanOrEqual(2 * 1.2);
    }
    expect(r.deliveries.length).toBeLessThan(M);
  }, 120_000);

  it('a malformed rate is refused with a 400 naming the field', async () => {
    const seg = await segment();
    const base = {
      name: 'x',
      segmentId: seg,
      on: 'enter',
      channel: 'webhook',
      webhook: { url: 'http://127.0.0.1:9/h' },
    };
    for (const [rate, field] of [
      [{ perSecond: 0 }, 'policy.rate.perSecond'],
      [{ perSecond: -5 }, 'policy.rate.perSecond'],
      [{ perSecond: 1e9 }, 'policy.rate.perSecond'],
      [{ perSecond: 'fast' }, 'policy.rate.perSecond'],
      [{ perMinute: 5 }, 'policy.rate'],
      [{}, 'policy.rate.perSecond'],
      [5, 'policy.rate'],
    ] as const) {
      const res = await api('/v1/campaigns', 'POST', { ...base, policy: { rate } });
      expect(res.status, JSON.stringify(rate)).toBe(400);
      const { error } = (await res.json()) as { error: string };
      expect(error.startsWith(`${field}`), error).toBe(true);
    }
    // a journey's send step takes the same policy, refused the same way
    const step = (rate: unknown) => ({
      name: 'j',
      entry: { segment: seg, on: 'enter' },
      nodes: [
        {
          id: 's',
          type: 'send',
          channel: 'webhook',
          webhook: { url: 'http://127.0.0.1:9/h' },
          policy: { rate },
        },
      ],
    });
    const bad = await api('/v1/journeys', 'POST', step({ perSecond: 0 }));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toContain('policy.rate.perSecond');
    expect((await api('/v1/journeys', 'POST', step({ perSecond: 50 }))).status).toBe(201);

    const ok = await api('/v1/campaigns', 'POST', { ...base, policy: { rate: { perSecond: 0.5 } } });
    expect(ok.status).toBe(201);
    expect(((await ok.json()) as { policy: unknown }).policy).toEqual({ rate: { perSecond: 0.5 } });
  });
});
