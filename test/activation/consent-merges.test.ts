// Contact state follows the person through merges, on the real stack (ingest → Kafka →
// processor merges in Redis → activation → ledger in chDB): consent given on either side of
// a merge holds after it, a change decided for a merged-away profile id is judged by the
// survivor's consent, an unsubscribe link minted before a merge unsubscribes the person
// after it (audited, in consent_log), re-entry records move with the merge, and consent
// comes back after `cdp rebuild` from ClickHouse consent_log.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { runRebuild } from '../../processor/main.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { topics } from '../../schemas/topics.ts';
import { signUnsubscribeToken } from '../../schemas/unsubscribe-token.ts';
import { change, segmentChangeProducer } from '../activation-peers.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices | undefined;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let redis: Redis;
let ch: ClickHouseClient;
let proSegment: string;
let vipSegment: string;
let welcome: string;
let vipOnce: string;

const api = adminApi(
  () => running!.urls.query!,
  () => cfg,
);
const send = (type: string, body: Record<string, unknown>) =>
  ingestApi(
    () => running!.urls.ingest!,
    () => cfg,
  )(`/v1/${type}`, body);
/** The profile an identifier resolves to, once the processor has it. */
const profileOf = (q: string) =>
  eventually(`profile ${q}`, async () => {
    const r = await api('GET', `/v1/profiles?${q}`);
    return r.status === 200 ? (r.body.id as string) : undefined;
  });
/** Waits until the identifier resolves to `pid` (a merge happened). */
const mergedInto = (q: string, pid: string) =>
  eventually(`${q} merged into ${pid}`, async () => (await api('GET', `/v1/profiles?${q}`)).body.id === pid);

async function ledger(campaignId: string, profileId: string) {
  const rs = await ch.query({
    query: `SELECT outcome, reason FROM activation_ledger
            WHERE workspace_id = {ws:String} AND campaign_id = {c:String} AND profile_id = {p:String}
            ORDER BY at`,
    query_params: { ws: cfg.keys.workspace, c: campaignId, p: profileId },
    format: 'JSONEachRow',
  });
  return rs.json<{ outcome: string; reason: string }>();
}
const decided = (campaignId: string, profileId: string) =>
  eventually(`a decision of ${campaignId} for ${profileId}`, async () => {
    const rows = await ledger(campaignId, profileId);
    return rows.length > 0 ? rows : undefined;
  });
const delivered = (profileId: string) =>
  receiver.deliveries.filter((d) => (JSON.parse(d.body) as { profileId: string }).profileId === profileId);

beforeAll(async () => {
  cfg = testConfig();
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  redis = new Redis(cfg.redis.url);
  ch = await createClickHouse(cfg.clickhouse);
  const seg = async (name: string, rule: unknown) =>
    (await api('POST', '/v1/segments', { name, rule })).body.id as string;
  proSegment = await seg('Pro', { '==': [{ var: 'traits.plan' }, 'pro'] });
  vipSegment = await seg('VIP', { '==': [{ var: 'traits.tier' }, 'vip'] });
  const cmp = async (segmentId: string, policy?: unknown) =>
    (
      await api('POST', '/v1/campaigns', {
        name: `on ${segmentId}`,
        segmentId,
        on: 'enter',
        channel: 'webhook',
        webhook: { url: receiver.url },
        ...(policy ? { policy } : {}),
      })
    ).body.id as string;
  welcome = await cmp(proSegment);
  vipOnce = await cmp(vipSegment, { reentry: 'once' });
});

afterAll(async () => {
  await running?.stop();
  await receiver?.close();
  redis?.disconnect();
});

describe('consent and contact state across merges', () => {
  it('an opt-out given as an anonymous visitor holds once the visitor merges into the known person', async () => {
    await send('identify', { userId: 'ann' });
    const person = await profileOf('userId=ann');
    await send('track', { anonymousId: 'ann-phone', event: 'Opened App' });
    const visitor = await profileOf('anonymousId=ann-phone');
    expect(visitor).not.toBe(person);
    const put = await api('PUT', `/v1/profiles/${visitor}/consent`, {
      channel: 'webhook',
      subscribed: false,
    });
    expect(put.status).toBe(200);

    // the login joins them (the person is older, so survives) and the person enters Pro
    await send('identify', { userId: 'ann', anonymousId: 'ann-phone', traits: { plan: 'pro' } });
    await mergedInto('anonymousId=ann-phone', person);
    expect(await decided(welcome, person)).toEqual([{ outcome: 'suppressed', reason: 'consent' }]);
    expect(delivered(person)).toEqual([]);
    const consent = await api('GET', `/v1/profiles/${person}/consent`);
    expect(consent.body.consents).toMatchObject([{ channel: 'webhook', purpose: '*', subscribed: false }]);
  });

  it('a change decided for the merged-away id before the merge is judged by the survivor’s consent', async () => {
    await send('identify', { userId: 'bob' });
    const person = await profileOf('userId=bob');
    expect(
      (await api('PUT', `/v1/profiles/${person}/consent`, { channel: 'webhook', subscribed: false })).status,
    ).toBe(200);
    await send('track', { anonymousId: 'bob-laptop', event: 'Visited' });
    const visitor = await profileOf('anonymousId=bob-laptop');
    await send('alias', { userId: 'bob', previousId: 'bob-laptop' });
    await mergedInto('anonymousId=bob-laptop', person);
    // the entry the processor published for the visitor just before the merge, read after it
    const changes = await segmentChangeProducer(
      cfg.kafka.brokers,
      topics(cfg.kafka.topicPrefix).segmentChanges,
    );
    await changes.send([change(cfg.keys.workspace, proSegment, visitor, { plan: 'pro' })]);
    await changes.close();
    expect(await decided(welcome, visitor)).toEqual([{ outcome: 'suppressed', reason: 'consent' }]);
    expect(delivered(visitor)).toEqual([]);
  });

  it('an unsubscribe link minted before a merge unsubscribes the merged person, audited and logged', async () => {
    await send('identify', { userId: 'cat' });
    const person = await profileOf('userId=cat');
    await send('track', { anonymousId: 'cat-web', event: 'Read Newsletter' });
    const visitor = await profileOf('anonymousId=cat-web');
    // a message sent to the visitor carried this link
    const token = signUnsubscribeToken(cfg.unsubscribe.secret, {
      w: cfg.keys.workspace,
      p: visitor,
      c: 'webhook',
      u: 'marketing',
      k: welcome,
    });
    await send('identify', { userId: 'cat', anonymousId: 'cat-web' });
    await mergedInto('anonymousId=cat-web', person);
    const res = await fetch(`${running!.urls.query}/v1/unsubscribe?token=${token}`, {
      method: 'POST',
      headers: { 'user-agent': 'mail-client/1.0' },
    });
    expect(res.status).toBe(200);

    await send('identify', { userId: 'cat', traits: { plan: 'pro' } });
    expect(await decided(welcome, person)).toEqual([{ outcome: 'suppressed', reason: 'consent' }]);
    const audit = await ch.query({
      query: `SELECT actor, entity_id FROM audit_log WHERE workspace_id = {ws:String} AND entity_type = 'consent'
              AND actor = 'unsubscribe_link'`,
      query_params: { ws: cfg.keys.workspace },
      format: 'JSONEachRow',
    });
    expect(await audit.json()).toEqual([{ actor: 'unsubscribe_link', entity_id: person }]);
    const log = await ch.query({
      query: `SELECT profile_id, identifiers, channel, purpose, subscribed, source, campaign_id, user_agent
              FROM consent_log WHERE workspace_id = {ws:String} AND source = 'unsubscribe_link'`,
      query_params: { ws: cfg.keys.workspace },
      format: 'JSONEachRow',
    });
    const [row] = await log.json<{ identifiers: string[] }>();
    expect(row).toMatchObject({
      profile_id: person,
      channel: 'webhook',
      purpose: 'marketing',
      subscribed: 0,
      campaign_id: welcome,
      user_agent: 'mail-client/1.0',
    });
    expect(row!.identifiers.sort()).toEqual(['anon:cat-web', 'user:cat']);
  });

  it('a once-only campaign sent to the visitor is not sent again when the visitor merges into the person', async () => {
    await send('identify', { userId: 'dan' });
    const person = await profileOf('userId=dan');
    await send('identify', { anonymousId: 'dan-tablet', traits: { tier: 'vip' } });
    const visitor = await profileOf('anonymousId=dan-tablet');
    expect(await decided(vipOnce, visitor)).toEqual([{ outcome: 'sent', reason: '' }]);
    // the merge brings tier=vip to the person, who enters VIP: once-only already happened
    await send('identify', { userId: 'dan', anonymousId: 'dan-tablet' });
    await mergedInto('anonymousId=dan-tablet', person);
    expect(await decided(vipOnce, person)).toEqual([{ outcome: 'suppressed', reason: 'reentry_once' }]);
  });

  it('an unsubscribe link minted before an erasure writes nothing about the erased person', async () => {
    await send('identify', { userId: 'zoe' });
    const pid = await profileOf('userId=zoe');
    const token = signUnsubscribeToken(cfg.unsubscribe.secret, {
      w: cfg.keys.workspace,
      p: pid,
      c: 'webhook',
      u: 'marketing',
      k: welcome,
    });
    expect((await api('DELETE', `/v1/profiles/${pid}`)).status).toBeLessThan(300);
    await eventually('zoe erased', async () => (await api('GET', `/v1/profiles/${pid}`)).status === 404);
    const res = await fetch(`${running!.urls.query}/v1/unsubscribe?token=${token}`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(
      (await api('PUT', `/v1/profiles/${pid}/consent`, { channel: 'webhook', subscribed: false })).status,
    ).toBe(404);
    expect(await redis.exists(workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).consent(pid))).toBe(0);
    const log = await ch.query({
      query:
        'SELECT count() AS n FROM consent_log WHERE workspace_id = {ws:String} AND profile_id = {p:String}',
      query_params: { ws: cfg.keys.workspace, p: pid },
      format: 'JSONEachRow',
    });
    expect(await log.json()).toEqual([{ n: 0 }]);
  });

  it('consent comes back from consent_log after Redis lost the profiles and `cdp rebuild` ran', async () => {
    // every event and consent decision is in ClickHouse before Redis is wiped
    const bob = await profileOf('userId=bob');
    await eventually('bob’s events in history', async () => {
      const r = await api('GET', `/v1/profiles/${bob}/events`);
      return (r.body.events as unknown[] | undefined)?.length === 3;
    });
    await running!.stop();
    running = undefined;
    const k = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${k.tag}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');

    const log = testLogger(cfg);
    const clients = createClients(cfg, log);
    try {
      const { consent } = await runRebuild(cfg, clients, log, cfg.keys.workspace);
      expect(consent.applied).toBe(3); // ann (as visitor), bob, cat (link)
    } finally {
      await clients.close();
    }
    for (const userId of ['ann', 'bob']) {
      const pid = await redis.get(k.identity('user', userId));
      expect(pid).toBeTruthy();
      const v = await redis.hget(k.consent(pid!), 'webhook:*');
      expect(v).toMatch(/^revoked:\d+:api$/);
    }
    const cat = await redis.get(k.identity('user', 'cat'));
    expect(cat).toBeTruthy();
    expect(await redis.hget(k.consent(cat!), 'webhook:marketing')).toMatch(/^revoked:\d+:unsubscribe_link$/);
  });
});
