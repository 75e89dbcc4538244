// Contact policy scenarios with an injected clock, through the running activation worker
// (real Kafka, Redis, chDB) and the query API (consent, suppressions):
// caps across channels, quiet-hour delay then delivery, consent revoked between entry and
// send, re-entry rules, the suppression list.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startActivation, startLedger } from '../../activation/main.ts';
import { createQueryApp } from '../../query/app.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { RunningService } from '../../runtime/service.ts';
import { WriteKeyStore } from '../../runtime/write-keys.ts';
import type { CampaignDefinition, CampaignPolicy } from '../../schemas/campaign.ts';
import { migrate } from '../../schemas/migrations.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { topics } from '../../schemas/topics.ts';
import { change, segmentChangeProducer } from '../activation-peers.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startTwilio } from '../twilio.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let clients: Clients;
let ch: ClickHouseClient;
let activation: RunningService;
let ledger: RunningService;
let defs: DefinitionStore;
let sms: Awaited<ReturnType<typeof startTwilio>>;
let changes: Awaited<ReturnType<typeof segmentChangeProducer>>;
let app: ReturnType<typeof createQueryApp>;
let clock = Date.parse('2026-03-10T12:00:00Z');
const receivers: Array<Awaited<ReturnType<typeof startWebhookReceiver>>> = [];

const receiver = async () => {
  const r = await startWebhookReceiver();
  receivers.push(r);
  return r;
};

async function campaign(
  segmentId: string,
  channel: { webhook: string } | 'sms',
  policy?: CampaignPolicy,
): Promise<CampaignDefinition> {
  const at = new Date(clock).toISOString();
  const def: CampaignDefinition = {
    id: uniqueId('cmp_'),
    workspaceId: cfg.keys.workspace,
    name: 'test',
    segmentId,
    on: 'enter',
    ...(channel === 'sms'
      ? { channel: 'sms' as const, sms: { body: 'hi {{ traits.name }}' } }
      : { channel: 'webhook' as const, webhook: { url: channel.webhook, secret: 'whsec_AAAA' } }),
    ...(policy ? { policy } : {}),
    status: 'active',
    version: 1,
    createdAt: at,
    updatedAt: at,
  };
  await defs.put('campaigns', def);
  return def;
}

async function outcomes(campaignIds: string[]) {
  const rs = await ch.query({
    query: `SELECT campaign_id, profile_id, epoch, outcome, reason, not_before FROM activation_ledger
            WHERE workspace_id = {ws:String} AND campaign_id IN {ids:Array(String)} ORDER BY at, campaign_id`,
    query_params: { ws: cfg.keys.workspace, ids: campaignIds },
    format: 'JSONEachRow',
  });
  return rs.json<{
    campaign_id: string;
    profile_id: string;
    epoch: number;
    outcome: string;
    reason: string;
    not_before: string | null;
  }>();
}

const settle = () => new Promise((r) => setTimeout(r, 800));

beforeAll(async () => {
  sms = await startTwilio({ accountSid: 'AC1', authToken: 'sms-token' });
  cfg = testConfig({
    CDP_SMS_BASE_URL: sms.url,
    CDP_SMS_ACCOUNT_SID: 'AC1',
    CDP_SMS_AUTH_TOKEN: 'sms-token',
    CDP_SMS_FROM: '+15550001',
    CDP_CAP_PER_CHANNEL_PER_DAY: '1',
    CDP_CAP_PER_DAY: '2',
    CDP_QUIET_HOURS: '21:00-08:00',
    CDP_DEFAULT_TIMEZONE: 'UTC',
  });
  const log = testLogger(cfg);
  clients = createClients(cfg, log);
  ch = await clients.clickhouse();
  await migrate(ch);
  defs = new DefinitionStore(clients.redis(), cfg.redis.prefix);
  const admin = clients.kafka().admin();
  await admin.ensureTopics([
    { topic: topics(cfg.kafka.topicPrefix).segmentChanges, partitions: 4 },
    { topic: topics(cfg.kafka.topicPrefix).activationRetry, partitions: 4 },
    { topic: topics(cfg.kafka.topicPrefix).deadLetter, partitions: 1 },
  ]);
  await admin.disconnect();
  activation = await startActivation(cfg, clients, log, { now: () => clock });
  ledger = await startLedger(cfg, clients, log);
  changes = await segmentChangeProducer(cfg.kafka.brokers, topics(cfg.kafka.topicPrefix).segmentChanges);
  app = createQueryApp({
    redis: clients.redis(),
    clickhouse: ch,
    defs,
    writeKeys: new WriteKeyStore(clients.redis(), cfg.redis.prefix),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k) => (k === cfg.keys.adminKey ? cfg.keys.workspace : undefined),
    unsubscribeSecret: cfg.unsubscribe.secret,
    log,
    now: () => new Date(clock),
  });
});

afterAll(async () => {
  await changes?.close();
  await activation?.stop();
  await ledger?.stop();
  await clients?.close();
  await Promise.all([sms?.close(), ...receivers.map((r) => r.close())]);
});

const api = (path: string, method: string, body?: unknown) =>
  app.request(path, {
    method,
    headers: { authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

describe('contact policy', () => {
  it('caps per channel and across channels, counted per local day', async () => {
    clock = Date.parse('2026-03-10T12:00:00Z');
    const seg = uniqueId('seg_');
    const r = await receiver();
    const a = await campaign(seg, { webhook: r.url });
    const b = await campaign(seg, { webhook: r.url });
    const c = await campaign(seg, 'sms');
    await settle();
    const traits = { name: 'Al', phone: '+15550100' };
    await changes.send([change(cfg.keys.workspace, seg, 'p-cap', traits)]);
    const first = await eventually('three decisions', async () => {
      const o = await outcomes([a.id, b.id, c.id]);
      return o.length === 3 ? o : undefined;
    });
    // one webhook (channel cap 1) and the SMS (total cap 2); the other webhook is capped
    expect(
      first.filter((o) => o.outcome === 'sent'),
      JSON.stringify(first),
    ).toHaveLength(2);
    expect(first.filter((o) => o.outcome === 'suppressed').map((o) => o.reason)).toEqual(['cap_channel']);
    expect(r.deliveries).toHaveLength(1);
    expect(sms.messages).toHaveLength(1);

    // the next day counts afresh
    clock = Date.parse('2026-03-11T12:00:00Z');
    await changes.send([change(cfg.keys.workspace, seg, 'p-cap', traits, 3)]);
    await eventually('three more decisions', async () => (await outcomes([a.id, b.id, c.id])).length === 6);
    expect(r.deliveries).toHaveLength(2);
    expect(sms.messages).toHaveLength(2);
  });

  it('quiet hours in the profile zone delay the send to the allowed time, then it goes out', async () => {
    clock = Date.parse('2026-03-11T03:00:00Z'); // 23:00 in New York (EDT)
    const seg = uniqueId('seg_');
    const r = await receiver();
    const c = await campaign(seg, { webhook: r.url }, { ignoreCaps: true });
    await settle();
    await changes.send([change(cfg.keys.workspace, seg, 'p-quiet', { timezone: 'America/New_York' })]);
    const [delayed] = await eventually('the delay on record', async () => {
      const o = await outcomes([c.id]);
      return o.length > 0 ? o : undefined;
    });
    expect(delayed).toMatchObject({ outcome: 'delayed', reason: 'quiet_hours' });
    expect(Date.parse(`${delayed!.not_before!.replace(' ', 'T')}Z`)).toBe(Date.parse('2026-03-11T12:00:00Z'));
    clock = Date.parse('2026-03-11T11:59:00Z');
    await settle();
    expect(r.deliveries).toHaveLength(0);
    clock = Date.parse('2026-03-11T12:00:00Z'); // 08:00 in New York
    await eventually('the delivery at 08:00 local', () => r.deliveries.length === 1);
    await settle();
    expect(r.deliveries).toHaveLength(1);
  });

  it('consent revoked between entry and send: never sent', async () => {
    clock = Date.parse('2026-03-11T23:00:00Z');
    const seg = uniqueId('seg_');
    const r = await receiver();
    const c = await campaign(seg, { webhook: r.url }, { ignoreCaps: true });
    await settle();
    await changes.send([change(cfg.keys.workspace, seg, 'p-consent', {})]);
    await eventually('delayed', async () => (await outcomes([c.id])).some((o) => o.outcome === 'delayed'));
    // the person as the processor keeps them (the consent API answers 404 for an unknown id)
    await clients.redis().hset(workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).profile('p-consent'), {
      id: 'p-consent',
    });
    const put = await api('/v1/profiles/p-consent/consent', 'PUT', { channel: '*', subscribed: false });
    expect(put.status).toBe(200);
    clock = Date.parse('2026-03-12T08:00:00Z');
    await eventually('suppressed', async () =>
      (await outcomes([c.id])).some((o) => o.outcome === 'suppressed' && o.reason === 'consent'),
    );
    expect(r.deliveries).toHaveLength(0);
  });

  it('re-entry: once ever, or once per N days', async () => {
    clock = Date.parse('2026-04-01T12:00:00Z');
    const seg = uniqueId('seg_');
    const once = await receiver();
    const weekly = await receiver();
    const cOnce = await campaign(seg, { webhook: once.url }, { ignoreCaps: true, reentry: 'once' });
    const cWeekly = await campaign(
      seg,
      { webhook: weekly.url },
      { ignoreCaps: true, reentry: { everyDays: 7 } },
    );
    await settle();
    const enter = async (epoch: number, n: number) => {
      await changes.send([change(cfg.keys.workspace, seg, 'p-re', {}, epoch)]);
      await eventually(`${n} decisions`, async () => (await outcomes([cOnce.id, cWeekly.id])).length === n);
    };
    await enter(1, 2);
    clock = Date.parse('2026-04-03T12:00:00Z');
    await enter(3, 4);
    clock = Date.parse('2026-04-09T12:00:00Z');
    await enter(5, 6);
    expect(once.deliveries).toHaveLength(1);
    expect(weekly.deliveries).toHaveLength(2);
    const reasons = (await outcomes([cOnce.id, cWeekly.id]))
      .filter((o) => o.outcome === 'suppressed')
      .map((o) => o.reason);
    expect(reasons.sort()).toEqual(['reentry_once', 'reentry_once', 'reentry_window']);
  });

  it('the suppression list: an entry blocks, removing it allows', async () => {
    clock = Date.parse('2026-04-10T12:00:00Z');
    const seg = uniqueId('seg_');
    const r = await receiver();
    const c = await campaign(seg, { webhook: r.url }, { ignoreCaps: true });
    await settle();
    expect((await api('/v1/suppressions', 'POST', { email: 'Blocked@Example.com' })).status).toBe(201);
    const list = (await (await api('/v1/suppressions', 'GET')).json()) as { suppressions: unknown[] };
    expect(list.suppressions).toContainEqual({ kind: 'email', value: 'blocked@example.com' });
    await changes.send([
      change(cfg.keys.workspace, seg, 'p-blocked', { email: 'blocked@example.com' }),
      change(cfg.keys.workspace, seg, 'p-free', { email: 'free@example.com' }),
    ]);
    await eventually('two decisions', async () => (await outcomes([c.id])).length === 2);
    expect((await outcomes([c.id])).find((o) => o.profile_id === 'p-blocked')).toMatchObject({
      outcome: 'suppressed',
      reason: 'suppression_list',
    });
    expect(r.deliveries.map((d) => JSON.parse(d.body).profileId)).toEqual(['p-free']);
    expect((await api('/v1/suppressions?email=blocked@example.com', 'DELETE')).status).toBe(204);
    await changes.send([change(cfg.keys.workspace, seg, 'p-blocked', { email: 'blocked@example.com' }, 3)]);
    await eventually('sent after removal', () => r.deliveries.length === 2);
  });
});
