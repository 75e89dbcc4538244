// A segment and a campaign created a moment before an event must act on it, as a new user
// following the README does (create, create, send): workers check the definitions revision
// before each batch instead of trusting their background poll. The poll is set to an hour
// here, so only that check can make these pass. Pause, resume and delete take effect for
// the next change the same way, and a change that no active campaign matched is counted on
// its segment.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;

const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);
const identify = (userId: string, plan: string) =>
  ingestApi(
    () => running.urls.ingest!,
    () => cfg,
  )('/v1/identify', { userId, traits: { plan } });

const deliveredTo = (userId: string) =>
  receiver.deliveries.filter((d) => (JSON.parse(d.body) as { userId: string }).userId === userId);

async function noCampaign(segmentId: string): Promise<{ entered: number; exited: number }> {
  const res = await api('GET', `/v1/segments/${segmentId}`);
  expect(res.status).toBe(200);
  return res.body.noCampaign as { entered: number; exited: number };
}

beforeAll(async () => {
  cfg = testConfig({ CDP_DEFINITIONS_POLL_MS: '3600000' });
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});

afterAll(async () => {
  await running?.stop();
  await receiver?.close();
});

describe('definitions saved just before an event', () => {
  let segmentId: string;
  let campaignId: string;

  it('a segment and a campaign created right before the first matching event send to it', async () => {
    const seg = await api('POST', '/v1/segments', {
      name: 'Pro plan',
      rule: { '==': [{ var: 'traits.plan' }, 'pro'] },
    });
    expect(seg.status).toBe(201);
    segmentId = seg.body.id as string;
    const cmp = await api('POST', '/v1/campaigns', {
      name: 'Welcome',
      segmentId,
      on: 'enter',
      channel: 'webhook',
      webhook: { url: receiver.url },
    });
    expect(cmp.status).toBe(201);
    campaignId = cmp.body.id as string;
    // no pause: the event goes out as soon as the campaign is saved
    await identify('first-user', 'pro');
    const [d] = await eventually('the webhook for the first entrant', () =>
      deliveredTo('first-user').length > 0 ? deliveredTo('first-user') : undefined,
    );
    expect(JSON.parse(d!.body)).toMatchObject({ type: 'segment.entered', campaignId, segmentId });
    expect(await noCampaign(segmentId)).toEqual({ entered: 0, exited: 0 });
  });

  it('a pause stops the next entry at once and the unmatched change is counted; resume sends again', async () => {
    expect((await api('POST', `/v1/campaigns/${campaignId}/pause`)).status).toBe(200);
    await identify('during-pause', 'pro');
    await eventually('the unmatched entry counted', async () => (await noCampaign(segmentId)).entered === 1);
    expect(deliveredTo('during-pause')).toEqual([]);

    expect((await api('POST', `/v1/campaigns/${campaignId}/resume`)).status).toBe(200);
    await identify('after-resume', 'pro');
    await eventually('the webhook after resume', () => deliveredTo('after-resume').length === 1);
  });

  it('a deleted campaign sends nothing for the next entry; exits without a campaign are counted too', async () => {
    expect((await api('DELETE', `/v1/campaigns/${campaignId}`)).status).toBe(204);
    await identify('after-delete', 'pro');
    await identify('first-user', 'free');
    await eventually('the unmatched entry and exit counted', async () => {
      const n = await noCampaign(segmentId);
      return n.entered === 2 && n.exited >= 1;
    });
    expect(deliveredTo('after-delete')).toEqual([]);
  });
});
