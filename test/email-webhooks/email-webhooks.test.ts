// Email provider webhooks on the real stack (Kafka, processor, Redis, chDB, query service): a
// person identified with her email gets a Postmark HardBounce over HTTP on the ingest host; the
// address is on the suppression list the query API shows, `Email Bounced` reaches her timeline
// once although Postmark delivered the webhook twice, and the audit log has one row by
// webhook:postmark. Wrong credentials change nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { emailTagSecret, emailTagSignature } from '../../schemas/email-tags.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);
const ingest = ingestApi(
  () => running.urls.ingest!,
  () => cfg,
);
const PM = { user: 'postmark', password: uniqueId('pw-') };

beforeAll(async () => {
  cfg = testConfig({ CDP_POSTMARK_WEBHOOK_USER: PM.user, CDP_POSTMARK_WEBHOOK_PASSWORD: PM.password });
  running = await startServices(cfg, ['processor', 'ledger', 'query', 'ingest'], testLogger(cfg));
});
afterAll(async () => {
  await running?.stop();
});

const postmark = (body: unknown, password = PM.password) =>
  fetch(`${running.urls.ingest}/v1/webhooks/email/postmark/${cfg.keys.workspace}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Basic ${Buffer.from(`${PM.user}:${password}`).toString('base64')}`,
    },
    body: JSON.stringify(body),
  });

describe('email webhooks on the stack', () => {
  it('a Postmark hard bounce suppresses the address, reaches the timeline once and is audited', async () => {
    const userId = uniqueId('u-');
    const email = `${userId}@shop.test`;
    await ingest('/v1/identify', { userId, traits: { email } });
    const pid = (
      await eventually('profile', async () => {
        const p = await api('GET', `/v1/profiles?email=${encodeURIComponent(email)}`);
        return p.status === 200 ? p : undefined;
      })
    ).body.id as string;

    const bounce = {
      RecordType: 'Bounce',
      ID: 777001,
      Type: 'HardBounce',
      Email: email.toUpperCase(),
      BouncedAt: new Date().toISOString(),
      Description: 'The server was unable to deliver your message',
      // as activation sends them: the workspace and a signature over the tags
      Metadata: {
        cdp_send_key: 'msg_stack',
        cdp_ws: cfg.keys.workspace,
        cdp_sig: emailTagSignature(emailTagSecret(cfg.unsubscribe.secret), {
          workspaceId: cfg.keys.workspace,
          sendKey: 'msg_stack',
        }),
      },
    };
    expect((await postmark(bounce, 'wrong')).status).toBe(401);
    const first = await postmark(bounce);
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ processed: 1, suppressed: 1 });
    const again = await postmark(bounce); // Postmark retried
    expect(await again.json()).toMatchObject({ processed: 1, suppressed: 0 });

    const list = await api('GET', '/v1/suppressions?limit=1000');
    expect(list.body.suppressions).toContainEqual({ kind: 'email', value: email });

    const bounced = await eventually('Email Bounced on the timeline', async () => {
      const events = ((await api('GET', `/v1/profiles/${pid}/events`)).body.events ?? []) as Array<{
        event?: string;
        properties: Record<string, unknown>;
      }>;
      const b = events.filter((e) => e.event === 'Email Bounced');
      return b.length > 0 ? b : undefined;
    });
    expect(bounced[0]!.properties).toMatchObject({
      bounceType: 'hard',
      sendKey: 'msg_stack',
      provider: 'postmark',
    });
    // the redelivery is not a second event (give the processor a moment to show it would be)
    await new Promise((r) => setTimeout(r, 1500));
    const events = ((await api('GET', `/v1/profiles/${pid}/events`)).body.events ?? []) as Array<{
      event?: string;
    }>;
    expect(events.filter((e) => e.event === 'Email Bounced')).toHaveLength(1);

    const audit = await eventually('audit row', async () => {
      const a = await api(
        'GET',
        `/v1/audit?entityType=suppression&entityId=${encodeURIComponent(`email:${email}`)}`,
      );
      return a.status === 200 && a.body.items?.length > 0 ? a : undefined;
    });
    // one row although the webhook came twice, by the webhook, with the provider's event
    expect(audit.body.items).toHaveLength(1);
    expect(audit.body.items[0]).toMatchObject({
      actor: 'webhook:postmark',
      action: 'create',
      after: { members: [`email:${email}`], eventId: 'Bounce:777001', sendKey: 'msg_stack' },
    });
  });
});
