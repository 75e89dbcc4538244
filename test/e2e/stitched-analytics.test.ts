// The whole path of identity stitching: events through ingest, the processor's identity
// changes on cdp.identity, the history sink's identity links, and a funnel that counts
// the anonymous visitor who later signed up as one person.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';

let cfg: Config;
let running: RunningServices;

beforeAll(async () => {
  cfg = testConfig();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});
afterAll(() => running?.stop());

const send = (body: Record<string, unknown>) =>
  fetch(`${running.urls.ingest}/v1/batch`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  }).then((r) => r.status);

describe('stitched analytics', () => {
  it('counts an anonymous visitor who signs up on another device as one person in a funnel', async () => {
    const at = (min: number) => new Date(Date.now() - 3_600_000 + min * 60_000).toISOString();
    expect(
      await send({
        batch: [
          // one person: lands anonymously on a laptop, signs up on a phone, buys as a user
          { type: 'track', anonymousId: 'laptop-1', event: 'Viewed Pricing', timestamp: at(0) },
          { type: 'identify', anonymousId: 'phone-1', userId: 'ada', timestamp: at(5) },
          { type: 'identify', anonymousId: 'laptop-1', userId: 'ada', timestamp: at(6) },
          { type: 'track', userId: 'ada', event: 'Order Completed', timestamp: at(10) },
          // someone else only views pricing
          { type: 'track', anonymousId: 'laptop-2', event: 'Viewed Pricing', timestamp: at(1) },
        ],
      }),
    ).toBe(200);
    const funnel = async () => {
      const r = await fetch(`${running.urls.query}/v1/analytics/funnel`, {
        method: 'POST',
        headers: { authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          steps: [{ event: 'Viewed Pricing' }, { event: 'Order Completed' }],
          window: '1d',
          from: new Date(Date.now() - 86_400_000).toISOString(),
          to: new Date(Date.now() + 60_000).toISOString(),
        }),
      });
      expect(r.status).toBe(200);
      return ((await r.json()) as { steps: Array<{ count: number }> }).steps.map((s) => s.count);
    };
    // the order is by a userId, the pricing view by an anonymousId: only the identity links
    // written from the processor's identity changes make them one person
    const counts = await eventually('the stitched funnel', async () => {
      const c = await funnel();
      return c[1] === 1 ? c : undefined;
    });
    expect(counts).toEqual([2, 1]);
  });
});
