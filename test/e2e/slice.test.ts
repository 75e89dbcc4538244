// The thin slice, end to end over HTTP against the real services: ingest (Hono) → Kafka →
// processor (Redis profile, segment evaluation) → cdp.segment-changes → activation
// (signed webhook) and → history sink (ClickHouse) → query API.

import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import type { Config } from '../../runtime/config.ts';
import { type IdentityChange, identityChangeCheck } from '../../schemas/identity-change.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, readTopic, testConfig, testLogger } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let redis: Redis;
let ch: ClickHouseClient;

const basic = () => `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`;
const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });

async function ingest(path: string, body: unknown) {
  return fetch(`${running.urls.ingest}${path}`, {
    method: 'POST',
    headers: { authorization: basic(), 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

beforeAll(async () => {
  cfg = testConfig();
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  redis = new Redis(cfg.redis.url);
  // chDB allows a second client on the same directory within one process
  ch = await createClickHouse(cfg.clickhouse);
});

afterAll(async () => {
  await running?.stop();
  await receiver?.close();
  redis?.disconnect();
});

describe('one event through every stage', () => {
  it('serves OpenAPI 3.1 documents on both ports', async () => {
    for (const url of [running.urls.ingest, running.urls.query]) {
      const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { openapi: string; paths: object };
      expect(doc.openapi).toBe('3.1.0');
      expect(Object.keys(doc.paths).length).toBeGreaterThan(5);
    }
  });

  it('reports ready on both ports', async () => {
    for (const url of [running.urls.ingest, running.urls.query]) {
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      await eventually(`${url}/readyz`, async () => (await fetch(`${url}/readyz`)).status === 200);
    }
  });

  it('identify → Kafka → Redis profile → segment entry → one signed webhook → ClickHouse → query API', async () => {
    // a segment and a campaign on it
    const segRes = await fetch(`${running.urls.query}/v1/segments`, {
      method: 'POST',
      headers: admin(),
      body: JSON.stringify({ name: 'Pro plan', rule: { '==': [{ var: 'traits.plan' }, 'pro'] } }),
    });
    expect(segRes.status).toBe(201);
    const segment = (await segRes.json()) as { id: string; version: number };
    const cmpRes = await fetch(`${running.urls.query}/v1/campaigns`, {
      method: 'POST',
      headers: admin(),
      body: JSON.stringify({
        name: 'Welcome pro',
        segmentId: segment.id,
        on: 'enter',
        channel: 'webhook',
        webhook: { url: receiver.url },
      }),
    });
    expect(cmpRes.status).toBe(201);
    const campaign = (await cmpRes.json()) as { id: string; webhook: { secret: string } };
    expect(campaign.webhook.secret).toMatch(/^whsec_/);
    // no wait: workers check the definitions revision before each batch

    const messageId = `m-${Date.now()}`;
    const res = await ingest('/v1/identify', {
      userId: 'user-42',
      anonymousId: 'anon-42',
      messageId,
      traits: { plan: 'pro', email: 'Ada@Example.com', name: 'Ada' },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ success: true });

    // 1. the Kafka message, keyed by workspace:userId
    const kafka = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId: `${cfg.kafka.topicPrefix}-verify` });
    await consumer.connect();
    await consumer.subscribe({ topic: topics(cfg.kafka.topicPrefix).events, fromBeginning: true });
    const seen: Array<{ key: string; value: Record<string, unknown> }> = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        seen.push({ key: message.key?.toString() ?? '', value: JSON.parse(message.value!.toString()) });
      },
    });
    const msg = await eventually('the event in Kafka', () =>
      seen.find((m) => m.value.messageId === messageId),
    );
    await consumer.disconnect();
    expect(msg.key).toBe(`${cfg.keys.workspace}:user-42`);
    expect(msg.value).toMatchObject({
      type: 'identify',
      userId: 'user-42',
      anonymousId: 'anon-42',
      workspaceId: cfg.keys.workspace,
    });
    expect(typeof msg.value.receivedAt).toBe('string');

    // 2. the Redis profile
    const keys = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace);
    const pid = await eventually('the identity in Redis', () =>
      redis.get(keys.identity('user', 'user-42')).then((v) => v ?? undefined),
    );
    expect(await redis.get(keys.identity('anon', 'anon-42'))).toBe(pid);
    expect(await redis.get(keys.identity('email', 'ada@example.com'))).toBe(pid);
    expect(JSON.parse((await redis.hget(keys.profileTraits(pid), 'plan'))!)).toBe('pro');

    // 2b. the identity change, for stitching history at query time
    const identity = await readTopic<IdentityChange>(
      cfg.kafka.brokers,
      topics(cfg.kafka.topicPrefix).identity,
      `${cfg.kafka.topicPrefix}-verify-identity`,
    );
    const change = await eventually('the identity change in Kafka', () =>
      identity.seen.find((m) => m.value.profileId === pid),
    );
    await identity.stop();
    expect(change.key).toBe(`${cfg.keys.workspace}:${pid}`);
    expect(identityChangeCheck.Check(change.value)).toBe(true);
    expect(change.value.identifiers.sort()).toEqual([
      'anon:anon-42',
      'email:ada@example.com',
      'user:user-42',
    ]);
    expect(change.value.messageId).toBe(messageId);
    await eventually(
      'segment membership',
      async () => (await redis.zscore(keys.segmentMembers(segment.id), pid)) !== null,
    );

    // 3. exactly one webhook, with a valid Standard Webhooks signature
    await eventually('the webhook', () => receiver.deliveries.length >= 1);
    const d = receiver.deliveries[0]!;
    const verified = new Webhook(campaign.webhook.secret).verify(d.body, {
      'webhook-id': String(d.headers['webhook-id']),
      'webhook-timestamp': String(d.headers['webhook-timestamp']),
      'webhook-signature': String(d.headers['webhook-signature']),
    }) as Record<string, unknown>;
    expect(verified).toMatchObject({
      type: 'segment.entered',
      campaignId: campaign.id,
      segmentId: segment.id,
      profileId: pid,
      userId: 'user-42',
      traits: { plan: 'pro', name: 'Ada' },
    });

    // 4. the ClickHouse row
    const row = await eventually('the history row', async () => {
      const rs = await ch.query({
        query:
          'SELECT message_id, type, user_id, anonymous_id FROM events WHERE workspace_id = {ws:String} AND message_id = {id:String}',
        query_params: { ws: cfg.keys.workspace, id: messageId },
        format: 'JSONEachRow',
      });
      return (await rs.json<Record<string, string>>())[0];
    });
    expect(row).toEqual({
      message_id: messageId,
      type: 'identify',
      user_id: 'user-42',
      anonymous_id: 'anon-42',
    });

    // 5. the query API
    const byUser = await fetch(`${running.urls.query}/v1/profiles?userId=user-42`, { headers: admin() });
    expect(byUser.status).toBe(200);
    expect(await byUser.json()).toMatchObject({
      id: pid,
      userIds: ['user-42'],
      anonymousIds: ['anon-42'],
      traits: { plan: 'pro', email: 'Ada@Example.com', name: 'Ada' },
      segments: [segment.id],
    });
    const events = await fetch(`${running.urls.query}/v1/profiles/${pid}/events?limit=10`, {
      headers: admin(),
    });
    expect(events.status).toBe(200);
    const history = (await events.json()) as { events: Array<{ messageId: string }> };
    expect(history.events.map((e) => e.messageId)).toContain(messageId);

    // 6. a replay of the same messageId and a later event that changes nothing: no second webhook
    expect(
      (await ingest('/v1/identify', { userId: 'user-42', messageId, traits: { plan: 'pro' } })).status,
    ).toBe(200);
    const later = `m-later-${Date.now()}`;
    expect(
      (await ingest('/v1/track', { userId: 'user-42', event: 'Viewed Pricing', messageId: later })).status,
    ).toBe(200);
    await eventually('the later event in history', async () => {
      const r = await fetch(`${running.urls.query}/v1/profiles/${pid}/events?limit=10`, { headers: admin() });
      const b = (await r.json()) as { events: Array<{ messageId: string }> };
      return b.events.some((e) => e.messageId === later);
    });
    await eventually('the later event processed', async () => {
      const p = (await (
        await fetch(`${running.urls.query}/v1/profiles/${pid}`, { headers: admin() })
      ).json()) as { lastSeenAt: string };
      return Date.parse(p.lastSeenAt) > Date.parse(String(msg.value.timestamp));
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(receiver.deliveries).toHaveLength(1);

    // 7. the ledger records the send
    const ledger = await eventually('the ledger row', async () => {
      const rs = await ch.query({
        query:
          'SELECT outcome, campaign_id, profile_id FROM activation_ledger WHERE workspace_id = {ws:String}',
        query_params: { ws: cfg.keys.workspace },
        format: 'JSONEachRow',
      });
      const rows = await rs.json<Record<string, string>>();
      return rows.length > 0 ? rows : undefined;
    });
    expect(ledger.filter((r) => r.outcome === 'sent')).toEqual([
      { outcome: 'sent', campaign_id: campaign.id, profile_id: pid },
    ]);
    // the stream and the new segment's backfill may both publish the entry (same epoch, so
    // one send key): the repeat is recorded as waiting for the claim or as a duplicate, never sent
    for (const r of ledger.filter((x) => x.outcome !== 'sent'))
      expect(['delayed', 'skipped_duplicate']).toContain(r.outcome);
  });
});
