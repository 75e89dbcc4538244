// The ledger and audit listings on the real stack: a webhook campaign sends to people
// (segment changes on Kafka → activation → ledger sink → ClickHouse), and GET /v1/ledger
// pages through those sends, filters them and streams them as CSV; GET /v1/audit shows the
// campaign's creation with its webhook secret redacted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { topics } from '../../schemas/topics.ts';
import { change, segmentChangeProducer } from '../activation-peers.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let changes: Awaited<ReturnType<typeof segmentChangeProducer>>;

const api = (path: string, init: RequestInit = {}) =>
  fetch(`${running.urls.query}${path}`, {
    ...init,
    headers: {
      authorization: `Bearer ${cfg.keys.adminKey}`,
      'content-type': 'application/json',
      ...(init.headers ?? {}),
    },
  });

beforeAll(async () => {
  receiver = await startWebhookReceiver(() => 200);
  cfg = testConfig();
  running = await startServices(cfg, ['activation', 'ledger', 'query'], testLogger(cfg));
  changes = await segmentChangeProducer(cfg.kafka.brokers, topics(cfg.kafka.topicPrefix).segmentChanges);
});

afterAll(async () => {
  await changes?.close();
  await running?.stop();
  await receiver?.close();
});

describe('ledger and audit listings', () => {
  it('pages through real webhook sends without repeats or gaps, filters them, streams CSV; the audit has the campaign', async () => {
    const seg = await api('/v1/segments', {
      method: 'POST',
      body: JSON.stringify({ name: uniqueId('s'), rule: { '==': [{ var: 'traits.plan' }, 'pro'] } }),
    });
    const segmentId = ((await seg.json()) as { id: string }).id;
    const res = await api('/v1/campaigns', {
      method: 'POST',
      body: JSON.stringify({
        name: uniqueId('c'),
        segmentId,
        on: 'enter',
        channel: 'webhook',
        webhook: { url: receiver.url },
      }),
    });
    expect(res.status).toBe(201);
    const campaign = (await res.json()) as { id: string; webhook: { secret: string } };
    await new Promise((r) => setTimeout(r, 600)); // definitions reach the worker within its poll
    const people = Array.from({ length: 12 }, (_, i) => `lp${i}`);
    await changes.send(people.map((p) => change(cfg.keys.workspace, segmentId, p, { plan: 'pro' })));

    type Send = { profileId: string; outcome: string; campaignId: string; statusCode: number | null };
    type Page = { items: Send[]; nextCursor: string | null };
    await eventually('12 sends in the ledger', async () => {
      const p = (await (
        await api(`/v1/ledger?campaignId=${campaign.id}&outcome=sent&limit=100`)
      ).json()) as Page;
      return p.items.length === 12 ? p : undefined;
    });
    const seen: Send[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `/v1/ledger?campaignId=${campaign.id}&outcome=sent&limit=5${cursor ? `&cursor=${cursor}` : ''}`;
      const r = await api(q);
      expect(r.status).toBe(200);
      const p = (await r.json()) as Page;
      seen.push(...p.items);
      cursor = p.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen.map((s) => s.profileId).sort()).toEqual([...people].sort());
    expect(seen.every((s) => s.campaignId === campaign.id && s.statusCode === 200)).toBe(true);

    const one = (await (await api(`/v1/ledger?campaignId=${campaign.id}&profileId=lp3`)).json()) as Page;
    expect(one.items.map((s) => s.profileId)).toEqual(['lp3']);

    const csv = await (
      await api(`/v1/ledger?campaignId=${campaign.id}&outcome=sent`, { headers: { accept: 'text/csv' } })
    ).text();
    expect(csv.split('\r\n').filter(Boolean)).toHaveLength(13);

    expect((await api('/v1/ledger?cursor=not-a-cursor')).status).toBe(400);

    const audit = await (await api(`/v1/audit?entityType=campaign&entityId=${campaign.id}`)).text();
    expect(JSON.parse(audit).items).toHaveLength(1);
    expect(audit).not.toContain(campaign.webhook.secret);
  });
});
