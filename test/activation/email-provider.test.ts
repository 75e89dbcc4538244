// Activation with CDP_EMAIL_PROVIDER=postmark, end to end: segment changes in Kafka, the
// activation, ledger and query services, a Postmark stand-in that checks the server token,
// the message shape and its documented errors (test/email-providers.ts). A send arrives with
// the one-click unsubscribe link of this query service and the send key in Metadata; a 429 is
// retried by the pipeline and then sent once; an inactive recipient (ErrorCode 406) fails once,
// goes on the suppression list, and the next send to that address is suppressed, not tried.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { emailTagSecret, verifyEmailTags } from '../../schemas/email-tags.ts';
import { topics } from '../../schemas/topics.ts';
import { change, segmentChangeProducer } from '../activation-peers.ts';
import { startPostmark } from '../email-providers.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
let postmark: Awaited<ReturnType<typeof startPostmark>>;
let changes: Awaited<ReturnType<typeof segmentChangeProducer>>;

const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });
const api = (path: string, init: RequestInit = {}) =>
  fetch(`${running.urls.query}${path}`, { ...init, headers: { ...admin(), ...(init.headers ?? {}) } });

async function createCampaign() {
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
      channel: 'email',
      email: { subject: 'Welcome, {{ traits.name }}', text: 'Your plan: {{ traits.plan }}' },
    }),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  await new Promise((r) => setTimeout(r, 600)); // definitions reach the worker within its poll
  return (await res.json()) as { id: string; segmentId: string };
}

async function stats(id: string) {
  return (await (await api(`/v1/campaigns/${id}/stats`)).json()) as {
    sent: number;
    failed: number;
    retried: number;
    suppressed: { total: number; byReason: Record<string, number> };
  };
}

beforeAll(async () => {
  postmark = await startPostmark({
    token: 'pm-e2e-token',
    signatures: ['news@shop.test'],
    streams: ['outbound', 'broadcast'],
    inactive: ['bounced@example.test'],
  });
  cfg = testConfig({
    CDP_EMAIL_PROVIDER: 'postmark',
    CDP_POSTMARK_SERVER_TOKEN: 'pm-e2e-token',
    CDP_POSTMARK_BASE_URL: postmark.url,
    CDP_EMAIL_FROM: 'Shop <news@shop.test>',
    CDP_ACTIVATION_MAX_ATTEMPTS: '3',
    CDP_ACTIVATION_RETRY_BASE_MS: '100',
    CDP_CHANNEL_TIMEOUT_MS: '2000',
  });
  running = await startServices(cfg, ['activation', 'ledger', 'query'], testLogger(cfg));
  cfg.unsubscribe.publicUrl = running.urls.query!;
  changes = await segmentChangeProducer(cfg.kafka.brokers, topics(cfg.kafka.topicPrefix).segmentChanges);
});

afterAll(async () => {
  await changes?.close();
  await running?.stop();
  await postmark?.close();
});

describe('email through Postmark', () => {
  it('sends with the unsubscribe link and send key; a 429 is retried and sent once', async () => {
    const c = await createCampaign();
    postmark.throttle(1);
    await changes.send([
      change(cfg.keys.workspace, c.segmentId, 'p-pm', {
        plan: 'pro',
        name: 'Ada',
        email: 'ada@example.test',
      }),
    ]);
    await eventually('sent after a retry', async () => (await stats(c.id)).sent === 1, 20_000);
    const s = await stats(c.id);
    expect(s.retried).toBe(1);
    expect(postmark.refused.filter((r) => r.status === 429)).toHaveLength(1);
    const mails = postmark.sent.filter((m) => m.body.To === 'ada@example.test');
    expect(mails).toHaveLength(1);
    const b = mails[0]!.body as {
      Subject: string;
      TextBody: string;
      Headers: Array<{ Name: string; Value: string }>;
      Metadata: Record<string, string>;
    };
    expect(b.Subject).toBe('Welcome, Ada');
    const headers = Object.fromEntries(b.Headers.map((h) => [h.Name, h.Value]));
    const link = /^<(.+)>$/.exec(headers['List-Unsubscribe'] ?? '')?.[1];
    expect(link).toMatch(new RegExp(`^${running.urls.query}/v1/unsubscribe\\?token=`));
    expect(b.TextBody).toBe(`Your plan: pro\n\nUnsubscribe: ${link}\n`);
    expect(b.Metadata.cdp_send_key).toMatch(/^msg_[A-Za-z0-9_-]{32}$/);
    expect(headers['X-CDP-Send-Key']).toBe(b.Metadata.cdp_send_key);
    // the workspace and a signature over the tags, with the key the ingest webhooks check
    expect(b.Metadata.cdp_ws).toBe(cfg.keys.workspace);
    expect(
      verifyEmailTags(
        emailTagSecret(cfg.unsubscribe.secret),
        {
          workspaceId: b.Metadata.cdp_ws,
          sendKey: b.Metadata.cdp_send_key,
          campaignId: b.Metadata.cdp_campaign,
          profileId: b.Metadata.cdp_profile,
        },
        b.Metadata.cdp_sig,
      ),
    ).toBe(true);
    expect([b.Metadata.cdp_campaign, b.Metadata.cdp_profile]).toEqual([c.id, 'p-pm']);
    // the link works against this query service
    expect((await fetch(link!)).status).toBe(200);
  });

  it('an inactive recipient (406) fails once, is suppressed, and is not tried again', async () => {
    const c = await createCampaign();
    await changes.send([
      change(cfg.keys.workspace, c.segmentId, 'p-bounced', { plan: 'pro', email: 'bounced@example.test' }),
    ]);
    await eventually('failed as invalid', async () => (await stats(c.id)).failed === 1, 20_000);
    expect((await stats(c.id)).retried).toBe(0); // permanent: no retry
    const list = (await (await api('/v1/suppressions')).json()) as {
      suppressions: Array<{ kind: string; value: string }>;
    };
    expect(list.suppressions).toContainEqual({ kind: 'email', value: 'bounced@example.test' });
    // another profile with the same address (other case): suppressed before any provider call
    await changes.send([
      change(cfg.keys.workspace, c.segmentId, 'p-bounced-2', { plan: 'pro', email: 'Bounced@Example.test' }),
    ]);
    await eventually(
      'suppressed',
      async () => (await stats(c.id)).suppressed.byReason.suppression_list === 1,
      20_000,
    );
    expect(postmark.refused.filter((r) => r.code === 406)).toHaveLength(1);
    expect((await stats(c.id)).failed).toBe(1);
  });
});
