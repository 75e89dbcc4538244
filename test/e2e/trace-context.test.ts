// W3C trace context through the pipeline on the real stack: a client's `traceparent` on an
// ingest request travels as a Kafka header on the event and on the segment change it causes
// (the only way it can reach activation),
// and the webhook the change sends carries the same trace with a span of its own; a request
// without one (or with a malformed one) adds nothing anywhere.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { adminApi, eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);

const identify = (userId: string, traceparent?: string) =>
  fetch(`${running.urls.ingest}/v1/identify`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
      ...(traceparent ? { traceparent } : {}),
    },
    body: JSON.stringify({ userId, traits: { plan: 'traced' } }),
  });

const delivered = (userId: string) =>
  eventually(
    `the webhook for ${userId}`,
    () => receiver.deliveries.find((d) => (JSON.parse(d.body) as { userId?: string }).userId === userId),
    30_000,
  );

beforeAll(async () => {
  cfg = testConfig({ CDP_DEFINITIONS_POLL_MS: '50' });
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  const seg = await api('POST', '/v1/segments', {
    name: uniqueId('t'),
    rule: { '==': [{ var: 'traits.plan' }, 'traced'] },
  });
  const c = await api('POST', '/v1/campaigns', {
    name: uniqueId('c'),
    segmentId: seg.body.id,
    on: 'enter',
    channel: 'webhook',
    webhook: { url: receiver.url },
  });
  expect(c.status).toBe(201);
  await new Promise((r) => setTimeout(r, 600));
}, 120_000);

afterAll(async () => {
  await running?.stop();
  await receiver?.close();
});

describe('trace context', () => {
  it("carries the caller's trace from the ingest request to the webhook, with a span per hop", async () => {
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = `00-${trace}-00f067aa0ba902b7-01`;
    const user = uniqueId('traced');
    expect((await identify(user, parent)).status).toBe(200);
    const d = await delivered(user);
    const got = String(d.headers.traceparent ?? '');
    expect(got).toMatch(new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`));
    expect(got).not.toBe(parent);
  });

  it('adds nothing when the request had no traceparent, or a malformed one', async () => {
    const plain = uniqueId('plain');
    const bad = uniqueId('bad');
    expect((await identify(plain)).status).toBe(200);
    expect((await identify(bad, '00-zz-not-a-trace')).status).toBe(200);
    expect((await delivered(plain)).headers.traceparent).toBeUndefined();
    expect((await delivered(bad)).headers.traceparent).toBeUndefined();
  });
});
