// A quiet-hours delay inside a journey, on the real stack (ingest → Kafka → processor →
// journey runner → activation worker → webhook; ledgers in ClickHouse), with the clock of
// the runner and the activation worker injected so the night is the same on every machine.
// A send step inside quiet hours is delayed by activation (ledger `delayed`, then `sent`
// when they end); the run does not wait for it: it moves on to its wait at once, the wait
// counted from arriving there, and the next send is again subject to quiet hours; each
// goes once when they end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startJourneys } from '../../activation/journeys/start-journeys.ts';
import { startActivation } from '../../activation/main.ts';
import { type RunningServices, startServices } from '../../cli/services.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import type { RunningService } from '../../runtime/service.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let clients: Clients;
let activation: RunningService;
let runner: RunningService;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let ch: ClickHouseClient;
// 23:00 in New York (EDT, −04:00): quiet hours 21:00–08:00 there end at 12:00Z
let clock = Date.parse('2026-03-11T03:00:00Z');

const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);
const ingest = ingestApi(
  () => running.urls.ingest!,
  () => cfg,
);
const hook = (k: string) => `${receiver.url}?k=${k}`;
/** The steps (`k`) delivered to a user, in the order they arrived. */
const delivered = (userId: string) =>
  receiver.deliveries
    .filter((d) => (JSON.parse(d.body) as { userId: string }).userId === userId)
    .map((d) => new URL(d.url ?? '', 'http://x').searchParams.get('k'));
const settle = () => new Promise((r) => setTimeout(r, 1500));

async function journey(body: unknown): Promise<string> {
  const created = await api('POST', '/v1/journeys', body);
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const id = created.body.id as string;
  expect((await api('POST', `/v1/journeys/${id}/activate`)).body.status).toBe('active');
  return id;
}
const stats = async (id: string) => (await api('GET', `/v1/journeys/${id}/stats`)).body;
const profileId = async (userId: string) =>
  (await api('GET', `/v1/profiles?userId=${userId}`)).body.id as string;

/** The activation ledger of a journey's send step for one profile, in order. */
async function ledger(journeyId: string, node: string, profile: string) {
  const rs = await ch.query({
    query: `SELECT outcome, reason, not_before, at FROM activation_ledger
            WHERE workspace_id = {ws:String} AND campaign_id = {c:String} AND profile_id = {p:String}
            ORDER BY at`,
    query_params: { ws: cfg.keys.workspace, c: `${journeyId}@1.${node}`, p: profile },
    format: 'JSONEachRow',
  });
  return (await rs.json<{ outcome: string; reason: string; not_before: string | null }>()).map((r) => ({
    outcome: r.outcome,
    reason: r.reason,
    notBefore: r.not_before ? new Date(`${r.not_before.replace(' ', 'T')}Z`).toISOString() : null,
  }));
}
async function steps(journeyId: string, profile: string) {
  const rs = await ch.query({
    query: `SELECT node_id, step, detail FROM journey_steps
            WHERE workspace_id = {ws:String} AND journey_id = {j:String} AND profile_id = {p:String}
            ORDER BY at, step`,
    query_params: { ws: cfg.keys.workspace, j: journeyId, p: profile },
    format: 'JSONEachRow',
  });
  return rs.json<{ node_id: string; step: string; detail: string }>();
}

beforeAll(async () => {
  cfg = testConfig({ CDP_QUIET_HOURS: '21:00-08:00', CDP_DEFAULT_TIMEZONE: 'UTC' });
  receiver = await startWebhookReceiver();
  const log = testLogger(cfg);
  // the pipeline on real time; the runner and the activation worker on the test's clock
  running = await startServices(cfg, ['processor', 'ledger', 'query', 'ingest'], log);
  clients = createClients(cfg, log);
  activation = await startActivation(cfg, clients, log.child({ service: 'activation' }), {
    now: () => clock,
  });
  runner = await startJourneys(cfg, clients, log.child({ service: 'journeys' }), { now: () => clock });
  ch = await createClickHouse(cfg.clickhouse);
});

afterAll(async () => {
  await runner?.stop();
  await activation?.stop();
  await running?.stop();
  await clients?.close();
  await receiver?.close();
});

describe('a quiet-hours delay inside a journey', () => {
  it('send → wait → send at night: both delayed to 08:00 local, the run not held up, each sent once', async () => {
    const id = await journey({
      name: 'Night owls',
      entry: { event: 'Night Signup' },
      nodes: [
        { id: 'welcome', type: 'send', channel: 'webhook', webhook: { url: hook('welcome') }, next: 'pause' },
        { id: 'pause', type: 'wait', for: 'PT30M', next: 'tip' },
        { id: 'tip', type: 'send', channel: 'webhook', webhook: { url: hook('tip') } },
      ],
    });
    await ingest('/v1/identify', { userId: 'owl', traits: { timezone: 'America/New_York' } });
    await ingest('/v1/track', { userId: 'owl', event: 'Night Signup' });

    // the welcome is delayed to the end of quiet hours; the run is at the wait already
    const owl = await eventually('owl’s profile', () => profileId('owl'));
    await eventually('the welcome delayed', async () => (await ledger(id, 'welcome', owl)).length > 0);
    expect(await ledger(id, 'welcome', owl)).toEqual([
      { outcome: 'delayed', reason: 'quiet_hours', notBefore: '2026-03-11T12:00:00.000Z' },
    ]);
    expect((await stats(id)).nodes).toMatchObject({ welcome: { now: 0, passed: 1 }, pause: { now: 1 } });
    // the wait counts from arriving at it (23:00 local), not from when the welcome will go
    await eventually('the wait begun', async () => (await steps(id, owl)).some((s) => s.step === 'waiting'));
    expect((await steps(id, owl)).find((s) => s.step === 'waiting')).toMatchObject({
      node_id: 'pause',
      detail: '2026-03-11T03:30:00.000Z',
    });

    // 23:31 local: the wait ends on time; the tip is queued and delayed too, to the same 08:00
    clock = Date.parse('2026-03-11T03:31:00Z');
    await eventually('the run completed', async () => (await stats(id)).ended?.completed === 1, 20_000);
    await eventually('the tip delayed', async () => (await ledger(id, 'tip', owl)).length > 0);
    expect(await ledger(id, 'tip', owl)).toEqual([
      { outcome: 'delayed', reason: 'quiet_hours', notBefore: '2026-03-11T12:00:00.000Z' },
    ]);
    expect((await stats(id)).nodes).toMatchObject({
      welcome: { passed: 1 },
      pause: { now: 0, passed: 1 },
      tip: { now: 0, passed: 1 },
    });

    // a minute before 08:00 local: still nothing
    clock = Date.parse('2026-03-11T11:59:00Z');
    await settle();
    expect(delivered('owl')).toEqual([]);

    // 08:00 local: both go, once each, in the order they were queued (released together:
    // the welcome, first seen earlier, before the tip, though "tip" sorts first)
    clock = Date.parse('2026-03-11T12:00:00Z');
    await eventually('both delivered', () => delivered('owl').length >= 2, 20_000);
    await settle();
    expect(delivered('owl')).toEqual(['welcome', 'tip']);
    for (const node of ['welcome', 'tip'])
      await eventually(`${node}: delayed, then sent`, async () => {
        const rows = await ledger(id, node, owl);
        return rows.map((r) => r.outcome).join() === 'delayed,sent';
      });
  });

  it('a person who converts, or leaves by the exit rule, while their send is delayed does not get it', async () => {
    clock = Date.parse('2026-03-12T03:00:00Z'); // the next night, 23:00 in New York
    const carts = (
      await api('POST', '/v1/segments', {
        name: 'Open carts',
        rule: { '==': [{ var: 'traits.cart' }, 'open'] },
      })
    ).body.id as string;
    const id = await journey({
      name: 'Cart',
      entry: { event: 'Cart Abandoned' },
      goal: { event: 'Order Completed' },
      exitOnSegmentExit: carts,
      nodes: [
        { id: 'nudge', type: 'send', channel: 'webhook', webhook: { url: hook('nudge') }, next: 'later' },
        { id: 'later', type: 'wait', for: 'PT1H', next: 'again' },
        { id: 'again', type: 'send', channel: 'webhook', webhook: { url: hook('again') } },
      ],
    });
    for (const userId of ['lark', 'wren'])
      await ingest('/v1/identify', { userId, traits: { timezone: 'America/New_York', cart: 'open' } });
    const [lark, wren] = await eventually('their profiles', async () => {
      const ids = [await profileId('lark'), await profileId('wren')];
      return ids.every(Boolean) ? ids : undefined;
    });
    for (const userId of ['lark', 'wren']) await ingest('/v1/track', { userId, event: 'Cart Abandoned' });
    await eventually('both nudges delayed', async () =>
      (await Promise.all([ledger(id, 'nudge', lark!), ledger(id, 'nudge', wren!)])).every(
        (l) => l.length > 0,
      ),
    );
    // lark buys; wren empties the cart (leaves the exit rule's segment)
    await ingest('/v1/track', { userId: 'lark', event: 'Order Completed' });
    await ingest('/v1/identify', { userId: 'wren', traits: { cart: 'empty' } });
    await eventually('both runs ended', async () => {
      const s = await stats(id);
      return s.ended?.converted === 1 && s.ended?.segment_exit === 1;
    });
    clock = Date.parse('2026-03-12T12:00:00Z');
    await eventually('the nudges decided at 08:00', async () =>
      (await Promise.all([ledger(id, 'nudge', lark!), ledger(id, 'nudge', wren!)])).every(
        (l) => l.length === 2,
      ),
    );
    await settle();
    expect(delivered('lark')).toEqual([]);
    expect(delivered('wren')).toEqual([]);
    expect(await ledger(id, 'nudge', lark!)).toMatchObject([
      { outcome: 'delayed', reason: 'quiet_hours' },
      { outcome: 'suppressed', reason: 'journey_converted' },
    ]);
    expect(await ledger(id, 'nudge', wren!)).toMatchObject([
      { outcome: 'delayed', reason: 'quiet_hours' },
      { outcome: 'suppressed', reason: 'journey_segment_exit' },
    ]);
  });

  it('a journey paused or archived while a send is delayed: the send does not go when quiet hours end', async () => {
    clock = Date.parse('2026-03-13T03:00:00Z'); // the third night
    const ids: string[] = [];
    for (const name of ['Paused', 'Archived'])
      ids.push(
        await journey({
          name,
          entry: { event: `${name} Signup` },
          nodes: [
            { id: 'hello', type: 'send', channel: 'webhook', webhook: { url: hook(name) }, next: 'w' },
            { id: 'w', type: 'wait', for: 'P1D' },
          ],
        }),
      );
    const [paused, archived] = ids as [string, string];
    await ingest('/v1/identify', { userId: 'moth', traits: { timezone: 'America/New_York' } });
    const moth = await eventually('moth’s profile', () => profileId('moth'));
    for (const name of ['Paused', 'Archived'])
      await ingest('/v1/track', { userId: 'moth', event: `${name} Signup` });
    await eventually('both sends delayed', async () =>
      (await Promise.all([ledger(paused, 'hello', moth), ledger(archived, 'hello', moth)])).every(
        (l) => l.length > 0,
      ),
    );
    expect((await api('POST', `/v1/journeys/${paused}/pause`)).body.status).toBe('paused');
    expect((await api('POST', `/v1/journeys/${archived}/pause`)).body.status).toBe('paused');
    expect((await api('POST', `/v1/journeys/${archived}/archive`)).body.status).toBe('archived');
    await settle(); // the activation worker sees the new status (definitions poll)
    clock = Date.parse('2026-03-13T12:00:00Z');
    await eventually('both decided at 08:00', async () =>
      (await Promise.all([ledger(paused, 'hello', moth), ledger(archived, 'hello', moth)])).every(
        (l) => l.length === 2,
      ),
    );
    await settle();
    expect(delivered('moth')).toEqual([]);
    for (const id of ids)
      expect(await ledger(id, 'hello', moth)).toMatchObject([
        { outcome: 'delayed', reason: 'quiet_hours' },
        { outcome: 'suppressed', reason: 'campaign_paused' },
      ]);
  });
});
