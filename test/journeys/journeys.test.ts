// Journeys end to end on the real stack (ingest → Kafka → processor → segment changes and
// journey signals → journey runner → activation worker → webhook; steps in ClickHouse):
// a segment-entry journey with a send, a wait and a branch on traits; an event-entry journey
// with a wait until an event (met in the same batch as the entry, or timed out), a trait
// update through the pipeline and a goal; pause while people wait, an edit while they are in
// flight (they stay on their version), re-entry refused; and two runners in one group, every
// step once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startJourneys } from '../../activation/journeys/start-journeys.ts';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import type { RunningService } from '../../runtime/service.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger } from '../harness.ts';
import { type Delivery, startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let ch: ClickHouseClient;
let pro: string;
let vip: string;

const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);
const ingest = ingestApi(
  () => running.urls.ingest!,
  () => cfg,
);
const hook = (k: string) => `${receiver.url}?k=${k}`;
/** Deliveries to step `k` for a user. */
const got = (k: string, userId: string): Delivery[] =>
  receiver.deliveries.filter(
    (d) => d.url?.endsWith(`?k=${k}`) && (JSON.parse(d.body) as { userId: string }).userId === userId,
  );
async function journey(body: unknown): Promise<string> {
  const created = await api('POST', '/v1/journeys', body);
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  expect(created.body).toMatchObject({ version: 1, status: 'draft' });
  const id = created.body.id as string;
  expect((await api('POST', `/v1/journeys/${id}/activate`)).body.status).toBe('active');
  return id;
}
async function steps(journeyId: string, userId?: string) {
  const rs = await ch.query({
    query: `SELECT s.profile_id AS profile_id, s.node_id AS node_id, s.step AS step, s.detail AS detail, s.version AS version
            FROM journey_steps AS s
            WHERE s.workspace_id = {ws:String} AND s.journey_id = {j:String}
            ORDER BY s.at, s.step`,
    query_params: { ws: cfg.keys.workspace, j: journeyId },
    format: 'JSONEachRow',
  });
  const rows = await rs.json<{
    profile_id: string;
    node_id: string;
    step: string;
    detail: string;
    version: number;
  }>();
  if (!userId) return rows;
  const p = await api('GET', `/v1/profiles?userId=${userId}`);
  return rows.filter((r) => r.profile_id === p.body.id);
}

beforeAll(async () => {
  cfg = testConfig();
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  ch = await createClickHouse(cfg.clickhouse);
  const seg = async (name: string, rule: unknown) =>
    (await api('POST', '/v1/segments', { name, rule })).body.id as string;
  pro = await seg('Pro', { '==': [{ var: 'traits.plan' }, 'pro'] });
  vip = await seg('VIP', { '==': [{ var: 'traits.tier' }, 'vip'] });
});

afterAll(async () => {
  await running?.stop();
  await receiver?.close();
});

describe('journeys', () => {
  let onboarding: string;

  it('refuses a bad definition with a 400 naming the field, and a missing segment', async () => {
    const bad = await api('POST', '/v1/journeys', {
      name: 'x',
      entry: { segment: pro, on: 'enter' },
      nodes: [{ id: 'a', type: 'wait', for: 'PT1S', next: 'missing' }],
    });
    expect(bad).toEqual({ status: 400, body: { error: 'nodes[0].next: no node "missing"' } });
    const noSegment = await api('POST', '/v1/journeys', {
      name: 'x',
      entry: { segment: 'seg_nope', on: 'enter' },
      nodes: [{ id: 'a', type: 'exit' }],
    });
    expect(noSegment).toEqual({ status: 400, body: { error: 'entry.segment: no segment seg_nope' } });
  });

  it('segment entry → send → wait → branch on traits: each person down their path, counted per node', async () => {
    onboarding = await journey({
      name: 'Onboarding',
      entry: { segment: pro, on: 'enter' },
      nodes: [
        { id: 'welcome', type: 'send', channel: 'webhook', webhook: { url: hook('welcome') }, next: 'pause' },
        { id: 'pause', type: 'wait', for: 'PT1S', next: 'check' },
        {
          id: 'check',
          type: 'branch',
          rule: { '==': [{ var: 'traits.activated' }, true] },
          yes: 'done',
          no: 'tip',
        },
        { id: 'tip', type: 'send', channel: 'webhook', webhook: { url: hook('tip') } },
        { id: 'done', type: 'exit' },
      ],
    });
    await ingest('/v1/identify', { userId: 'amy', traits: { plan: 'pro' } });
    await ingest('/v1/identify', { userId: 'ben', traits: { plan: 'pro' } });
    await eventually(
      'both welcomed',
      () => got('welcome', 'amy').length === 1 && got('welcome', 'ben').length === 1,
    );
    await ingest('/v1/identify', { userId: 'ben', traits: { activated: true } });
    await eventually('amy’s tip after the wait', () => got('tip', 'amy').length === 1, 15_000);
    await eventually('both runs ended', async () => {
      const s = await api('GET', `/v1/journeys/${onboarding}/stats`);
      return s.body.ended?.completed === 1 && s.body.ended?.exited === 1 ? s : undefined;
    });
    expect(got('tip', 'ben')).toEqual([]);
    const stats = (await api('GET', `/v1/journeys/${onboarding}/stats`)).body;
    expect(stats).toMatchObject({
      entered: 2,
      nodes: {
        welcome: { now: 0, passed: 2 },
        pause: { now: 0, passed: 2 },
        check: { now: 0, passed: 2 },
        tip: { now: 0, passed: 1 },
        done: { now: 0, exited: 1 },
      },
    });
    await eventually('amy’s steps in ClickHouse', async () => (await steps(onboarding, 'amy')).length >= 6);
    // steps of one advance share a millisecond: compared as a set, each exactly once
    expect(
      (await steps(onboarding, 'amy'))
        .map((r) => `${r.node_id} ${r.step} ${r.step === 'branched' ? r.detail : ''}`)
        .sort(),
    ).toEqual(
      [
        'welcome entered ',
        'welcome queued_send ',
        'pause waiting ',
        'pause waited ',
        'check branched no',
        'tip queued_send ',
      ].sort(),
    );
    // and on her timeline
    const amy = (await api('GET', '/v1/profiles?userId=amy')).body.id as string;
    const timeline = (await api('GET', `/v1/profiles/${amy}/timeline`)).body.items as Array<{
      kind: string;
      journeyId?: string;
      step?: string;
    }>;
    expect(
      timeline
        .filter((i) => i.kind === 'journey' && i.journeyId === onboarding)
        .map((i) => i.step)
        .sort(),
    ).toEqual(['branched', 'entered', 'queued_send', 'queued_send', 'waited', 'waiting']);
  });

  it('re-entry is refused by default: leaving and entering the segment again starts nothing', async () => {
    await ingest('/v1/identify', { userId: 'amy', traits: { plan: 'free' } });
    await ingest('/v1/identify', { userId: 'amy', traits: { plan: 'pro' } });
    await eventually(
      'the refusal counted',
      async () => (await api('GET', `/v1/journeys/${onboarding}/stats`)).body.refused === 1,
    );
    expect(got('welcome', 'amy')).toHaveLength(1);
  });

  it('event entry → wait until an event (met in the entry’s own batch, or timed out) → update or send; a goal converts', async () => {
    const id = await journey({
      name: 'Activation',
      entry: { event: 'Signed Up', where: { '==': [{ var: 'source' }, 'web'] } },
      goal: { event: 'Order Completed' },
      nodes: [
        {
          id: 'w',
          type: 'wait',
          for: { until: { event: 'Activated' }, timeout: 'PT1S' },
          branches: { met: 'mark', timeout: 'remind' },
        },
        { id: 'mark', type: 'update', traits: { journey_state: 'activated' } },
        { id: 'remind', type: 'send', channel: 'webhook', webhook: { url: hook('remind') } },
      ],
    });
    await ingest('/v1/batch', {
      batch: [
        { type: 'track', userId: 'cid', event: 'Signed Up', properties: { source: 'web' } },
        { type: 'track', userId: 'cid', event: 'Activated' },
        { type: 'track', userId: 'dot', event: 'Signed Up', properties: { source: 'web' } },
        { type: 'track', userId: 'eve', event: 'Signed Up', properties: { source: 'web' } },
        { type: 'track', userId: 'fay', event: 'Signed Up', properties: { source: 'app' } },
      ],
    });
    await ingest('/v1/track', { userId: 'eve', event: 'Order Completed' });
    // the update goes through the pipeline as an identify
    await eventually('cid’s trait set by the journey', async () => {
      const p = await api('GET', '/v1/profiles?userId=cid');
      return p.body.traits?.journey_state === 'activated';
    });
    await eventually('dot reminded after the timeout', () => got('remind', 'dot').length === 1, 15_000);
    await eventually(
      'the conversion counted',
      async () => (await api('GET', `/v1/journeys/${id}/stats`)).body.ended?.converted === 1,
    );
    const stats = (await api('GET', `/v1/journeys/${id}/stats`)).body;
    expect(stats).toMatchObject({ entered: 3, nodes: { w: { converted: 1 } } }); // fay's source did not match
    expect(got('remind', 'cid')).toEqual([]);
    expect(got('remind', 'eve')).toEqual([]);
    await eventually('dot’s timeout recorded', async () =>
      (await steps(id, 'dot')).some((r) => r.step === 'timeout'),
    );
    expect((await steps(id, 'cid')).map((r) => r.step)).toContain('met');
  });

  it('a pause holds people where they wait; an edit makes version 2 while they stay on 1; resume sends', async () => {
    const id = await journey({
      name: 'VIP',
      entry: { segment: vip, on: 'enter' },
      nodes: [
        { id: 'w', type: 'wait', for: 'PT1S', next: 's' },
        { id: 's', type: 'send', channel: 'webhook', webhook: { url: hook('v1') } },
      ],
    });
    await ingest('/v1/identify', { userId: 'gus', traits: { tier: 'vip' } });
    await eventually(
      'gus waiting',
      async () => (await api('GET', `/v1/journeys/${id}/stats`)).body.nodes?.w?.now === 1,
    );
    expect((await api('POST', `/v1/journeys/${id}/pause`)).body.status).toBe('paused');
    expect((await api('POST', `/v1/journeys/${id}/activate`)).status).toBe(409);
    const edited = await api('PUT', `/v1/journeys/${id}`, {
      name: 'VIP',
      entry: { segment: vip, on: 'enter' },
      nodes: [
        { id: 'w', type: 'wait', for: 'PT1S', next: 's' },
        { id: 's', type: 'send', channel: 'webhook', webhook: { url: hook('v2') } },
      ],
    });
    expect(edited.body).toMatchObject({ version: 2, status: 'paused' });
    await new Promise((r) => setTimeout(r, 2500)); // past the wait: nothing may be sent while paused
    expect(got('v1', 'gus')).toEqual([]);
    expect((await api('GET', `/v1/journeys/${id}/stats`)).body.nodes.w.now).toBe(1);
    expect((await api('POST', `/v1/journeys/${id}/resume`)).body.status).toBe('active');
    await eventually('gus’s send on version 1 after resume', () => got('v1', 'gus').length === 1, 15_000);
    expect(got('v2', 'gus')).toEqual([]);
    await ingest('/v1/identify', { userId: 'hal', traits: { tier: 'vip' } });
    await eventually(
      'hal, who entered after the edit, on version 2',
      () => got('v2', 'hal').length === 1,
      15_000,
    );
    expect((await api('POST', `/v1/journeys/${id}/archive`)).body.status).toBe('archived');
    expect((await api('PUT', `/v1/journeys/${id}`, edited.body)).status).toBe(409);
  });

  it('a merge keeps one run per journey per person: a second run ends, a lone one moves to the survivor', async () => {
    const id = await journey({
      name: 'Merges',
      entry: { event: 'Browsed' },
      nodes: [
        // long enough for the merges to land while everyone waits
        { id: 'w', type: 'wait', for: 'PT6S', next: 's' },
        { id: 's', type: 'send', channel: 'webhook', webhook: { url: hook('merged') } },
      ],
    });
    const stats = async () => (await api('GET', `/v1/journeys/${id}/stats`)).body;
    // both the known person and their anonymous device are in the journey
    await ingest('/v1/track', { userId: 'jon', event: 'Browsed' });
    await eventually('jon in', async () => (await stats()).nodes?.w?.now === 1);
    await ingest('/v1/track', { anonymousId: 'jon-phone', event: 'Browsed' });
    // only the anonymous device of kim is
    await ingest('/v1/identify', { userId: 'kim' });
    await ingest('/v1/track', { anonymousId: 'kim-phone', event: 'Browsed' });
    await eventually('three runs waiting', async () => (await stats()).nodes?.w?.now === 3);
    const jon = (await api('GET', '/v1/profiles?userId=jon')).body.id as string;
    const kim = (await api('GET', '/v1/profiles?userId=kim')).body.id as string;
    await ingest('/v1/identify', { userId: 'jon', anonymousId: 'jon-phone' });
    await ingest('/v1/identify', { userId: 'kim', anonymousId: 'kim-phone' });
    await eventually('the merges settled', async () => {
      const s = await stats();
      return s.ended?.merged === 1 && s.nodes.w.now + s.nodes.s.now + s.nodes.s.passed === 2 ? s : undefined;
    });
    // one send each, to the surviving profiles
    await eventually(
      'two sends',
      () => receiver.deliveries.filter((d) => d.url?.endsWith('?k=merged')).length === 2,
      15_000,
    );
    await new Promise((r) => setTimeout(r, 1000));
    const sent = receiver.deliveries
      .filter((d) => d.url?.endsWith('?k=merged'))
      .map((d) => (JSON.parse(d.body) as { profileId: string }).profileId)
      .sort();
    expect(sent).toEqual([jon, kim].sort());
  });

  it('erasure ends the person’s runs (counted) and deletes their journey steps', async () => {
    const id = await journey({
      name: 'Trial',
      entry: { event: 'Trial Started' },
      nodes: [{ id: 'w', type: 'wait', for: 'P1D' }],
    });
    await ingest('/v1/track', { userId: 'ivy', event: 'Trial Started' });
    await eventually(
      'ivy waiting',
      async () => (await api('GET', `/v1/journeys/${id}/stats`)).body.nodes?.w?.now === 1,
    );
    const pid = (await api('GET', '/v1/profiles?userId=ivy')).body.id as string;
    await eventually('ivy’s steps stored', async () => (await steps(id)).length >= 2);
    expect((await api('DELETE', `/v1/profiles/${pid}`)).status).toBeLessThan(300);
    await eventually('the run ended as erased', async () => {
      const s = (await api('GET', `/v1/journeys/${id}/stats`)).body;
      return s.nodes.w.now === 0 && s.nodes.w.exited === 1 && s.ended.erased === 1;
    });
    await eventually('ivy’s steps deleted', async () => (await steps(id)).length === 0);
  });

  it('two runners in one group: every wait fires once and every send step sends once', async () => {
    const log = testLogger(cfg);
    const clients = createClients(cfg, log);
    let second: RunningService | undefined;
    try {
      second = await startJourneys(cfg, clients, log.child({ runner: 2 }));
      const seg = (
        await api('POST', '/v1/segments', { name: 'Many', rule: { '==': [{ var: 'traits.batch' }, 'b1'] } })
      ).body.id as string;
      const id = await journey({
        name: 'Many',
        entry: { segment: seg, on: 'enter' },
        nodes: [
          { id: 'w', type: 'wait', for: 'PT1S', next: 's' },
          { id: 's', type: 'send', channel: 'webhook', webhook: { url: hook('many') } },
        ],
      });
      const people = Array.from({ length: 30 }, (_, i) => `many-${i}`);
      await ingest('/v1/batch', {
        batch: people.map((userId) => ({ type: 'identify', userId, traits: { batch: 'b1' } })),
      });
      await eventually(
        '30 sends',
        () => receiver.deliveries.filter((d) => d.url?.endsWith('?k=many')).length >= 30,
        20_000,
      );
      await new Promise((r) => setTimeout(r, 1500)); // a second send would come now
      const many = receiver.deliveries.filter((d) => d.url?.endsWith('?k=many'));
      expect(many).toHaveLength(30);
      expect(new Set(many.map((d) => d.headers['webhook-id'])).size).toBe(30);
      await eventually(
        'every wait recorded',
        async () => (await steps(id)).filter((r) => r.step === 'waited').length >= 30,
      );
      await new Promise((r) => setTimeout(r, 1200));
      expect((await steps(id)).filter((r) => r.step === 'waited')).toHaveLength(30);
    } finally {
      await second?.stop();
      await clients.close();
    }
  });
});
