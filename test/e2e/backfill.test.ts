// A segment created after its members already exist: backfilled over existing profiles,
// handed over to streaming, each member entering exactly once.
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });
/** Sends one event to ingest; answers the status. */
const send = (path: string, body: Record<string, unknown>) =>
  fetch(`${running.urls.ingest}/v1/${path}`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  }).then((r) => r.status);
const identify = (userId: string, plan: string) => send('identify', { userId, traits: { plan } });

beforeAll(async () => {
  cfg = testConfig();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});
afterAll(() => running?.stop());

describe('segment backfill', () => {
  it('evaluates a new segment over existing profiles, then streams, with one entry each', async () => {
    for (const [u, plan] of [
      ['b1', 'pro'],
      ['b2', 'pro'],
      ['b3', 'free'],
      ['b4', 'pro'],
    ] as const)
      expect(await identify(u, plan)).toBe(200);
    await eventually('four profiles', async () => {
      const r = await fetch(`${running.urls.query}/v1/profiles?userId=b4`, { headers: admin() });
      return r.status === 200;
    });

    const changes: SegmentChange[] = [];
    const reader = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING }).consumer({
      groupId: `${cfg.kafka.topicPrefix}-bf`,
    });
    await reader.connect();
    await reader.subscribe({ topic: topics(cfg.kafka.topicPrefix).segmentChanges, fromBeginning: true });
    await reader.run({
      eachMessage: async ({ message }) => void changes.push(JSON.parse(String(message.value))),
    });

    const created = (await (
      await fetch(`${running.urls.query}/v1/segments`, {
        method: 'POST',
        headers: admin(),
        body: JSON.stringify({ name: 'Pro', rule: { '==': [{ var: 'traits.plan' }, 'pro'] } }),
      })
    ).json()) as { id: string };

    const done = await eventually('the backfill to finish', async () => {
      const s = (await (
        await fetch(`${running.urls.query}/v1/segments/${created.id}`, { headers: admin() })
      ).json()) as {
        backfill: { status: string; scanned: number };
      };
      return s.backfill.status === 'ready' ? s.backfill : undefined;
    });
    expect(done.scanned).toBeGreaterThanOrEqual(4);
    const members = async () =>
      (
        (await (
          await fetch(`${running.urls.query}/v1/segments/${created.id}/members`, { headers: admin() })
        ).json()) as {
          count: number;
        }
      ).count;
    expect(await members()).toBe(3);

    // streaming takes over: a new pro user enters, an existing one leaves
    expect(await identify('b5', 'pro')).toBe(200);
    expect(await identify('b1', 'free')).toBe(200);
    await eventually('b5 in, b1 out', async () => (await members()) === 3 && changes.length >= 5);
    await new Promise((r) => setTimeout(r, 500));
    const mine = changes.filter((c) => c.segmentId === created.id);
    const entered = mine.filter((c) => c.type === 'entered');
    expect(entered).toHaveLength(4); // b1, b2, b4 by backfill, b5 by streaming: once each
    expect(new Set(entered.map((c) => c.profileId)).size).toBe(4);
    expect(mine.filter((c) => c.type === 'exited')).toHaveLength(1);

    // an edit is a new version, backfilled: members who no longer match exit, new ones enter
    const edited = await fetch(`${running.urls.query}/v1/segments/${created.id}`, {
      method: 'PUT',
      headers: admin(),
      body: JSON.stringify({ name: 'Free', rule: { '==': [{ var: 'traits.plan' }, 'free'] } }),
    });
    expect(((await edited.json()) as { version: number }).version).toBe(2);
    await eventually('version 2 backfilled', async () => {
      const s = (await (
        await fetch(`${running.urls.query}/v1/segments/${created.id}`, { headers: admin() })
      ).json()) as {
        backfill: { status: string };
      };
      return s.backfill.status === 'ready';
    });
    await eventually('b1 and b3 members', async () => (await members()) === 2);
    const v2of = () => changes.filter((c) => c.segmentId === created.id && c.segmentVersion === 2);
    await eventually('five version-2 changes', () => v2of().length >= 5);
    await new Promise((r) => setTimeout(r, 300));
    const v2 = v2of();
    expect(v2.filter((c) => c.type === 'entered')).toHaveLength(2); // b1, b3
    expect(v2.filter((c) => c.type === 'exited')).toHaveLength(3); // b2, b4, b5
    await reader.disconnect();
  });

  it('counts events from before the segment existed, from ClickHouse history, with merged persons', async () => {
    const order = (who: Record<string, string>, revenue: number, daysAgo: number) =>
      send('track', {
        ...who,
        event: 'Order Completed',
        properties: { revenue },
        timestamp: new Date(Date.now() - daysAgo * 86_400_000).toISOString(),
      });
    // h1: two big orders; h2: one big, one small; h3: one big as an anonymous visitor and one
    // after signing up (the same person); h4: two big orders, one outside the 30-day window
    const sent = await Promise.all([
      order({ userId: 'h1' }, 100, 3),
      order({ userId: 'h1' }, 200, 10),
      order({ userId: 'h2' }, 100, 3),
      order({ userId: 'h2' }, 10, 4),
      order({ anonymousId: 'h3-visitor' }, 80, 5),
      order({ userId: 'h4' }, 90, 2),
      order({ userId: 'h4' }, 90, 45),
    ]);
    expect(sent.every((s) => s === 200)).toBe(true);
    expect(await send('identify', { userId: 'h3', anonymousId: 'h3-visitor' })).toBe(200);
    expect(await order({ userId: 'h3' }, 70, 1)).toBe(200);
    // wait until all of it is in history
    await eventually('the orders in ClickHouse', async () => {
      const r = await fetch(`${running.urls.query}/v1/profiles?userId=h3`, { headers: admin() });
      if (r.status !== 200) return false;
      const { id } = (await r.json()) as { id: string };
      const ev = await fetch(`${running.urls.query}/v1/profiles/${id}/events?limit=10`, { headers: admin() });
      const body = (await ev.json()) as { events: unknown[] };
      return body.events.length >= 3;
    });

    const created = (await (
      await fetch(`${running.urls.query}/v1/segments`, {
        method: 'POST',
        headers: admin(),
        body: JSON.stringify({
          name: 'Two big orders in 30 days',
          rule: {
            '>=': [{ event_count: ['Order Completed', '30d', { '>=': [{ var: 'revenue' }, 50] }] }, 2],
          },
        }),
      })
    ).json()) as { id: string };
    await eventually('the backfill to finish', async () => {
      const s = (await (
        await fetch(`${running.urls.query}/v1/segments/${created.id}`, { headers: admin() })
      ).json()) as { backfill: { status: string } };
      return s.backfill.status === 'ready';
    });
    const memberIds = async () =>
      (
        (await (
          await fetch(`${running.urls.query}/v1/segments/${created.id}/members?limit=100`, {
            headers: admin(),
          })
        ).json()) as { members: string[] }
      ).members.sort();
    const pidOf = async (userId: string) =>
      (
        (await (
          await fetch(`${running.urls.query}/v1/profiles?userId=${userId}`, { headers: admin() })
        ).json()) as {
          id: string;
        }
      ).id;
    expect(await memberIds()).toEqual([await pidOf('h1'), await pidOf('h3')].sort());

    // streaming goes on from the seeded counts: h2's second big order makes two
    expect(await order({ userId: 'h2' }, 60, 0)).toBe(200);
    const h2 = await pidOf('h2');
    await eventually('h2 enters', async () => (await memberIds()).includes(h2));
    expect((await memberIds()).length).toBe(3);
  });

  it('previews a rule over the profiles, with counts from history, and saves nothing', async () => {
    for (const [u, tier] of [
      ['v1', 'gold'],
      ['v2', 'gold'],
      ['v3', 'silver'],
    ])
      expect(await send('identify', { userId: u, traits: { tier } })).toBe(200);
    expect(await send('track', { userId: 'v2', event: 'Preview Order', properties: { n: 1 } })).toBe(200);
    expect(await send('track', { userId: 'v3', event: 'Preview Order', properties: { n: 2 } })).toBe(200);
    await eventually('the orders in history', async () => {
      const r = await fetch(`${running.urls.query}/v1/profiles?userId=v3`, { headers: admin() });
      if (r.status !== 200) return false;
      const { id } = (await r.json()) as { id: string };
      const ev = (await (
        await fetch(`${running.urls.query}/v1/profiles/${id}/events`, { headers: admin() })
      ).json()) as { events: Array<{ event: string }> };
      return ev.events.some((e) => e.event === 'Preview Order');
    });
    const before = await (await fetch(`${running.urls.query}/v1/segments`, { headers: admin() })).text();
    const preview = (rule: unknown, sampleSize?: number) =>
      fetch(`${running.urls.query}/v1/segments/preview`, {
        method: 'POST',
        headers: admin(),
        body: JSON.stringify({ rule, ...(sampleSize === undefined ? {} : { sampleSize }) }),
      });
    const rule = {
      or: [
        { '==': [{ var: 'traits.tier' }, 'gold'] },
        { '>=': [{ event_count: ['Preview Order', '1d', { '>': [{ var: 'n' }, 1] }] }, 1] },
      ],
    };
    const full = (await (await preview(rule)).json()) as {
      sampled: number;
      matched: number;
      totalProfiles: number;
      estimatedSize: number;
      exact: boolean;
      sample: Array<{ userId: string | null }>;
    };
    // v1 and v2 by tier, v3 by its order with n > 1 (v2's order has n = 1)
    expect(full.exact).toBe(true);
    expect(full.matched).toBe(3);
    expect(full.estimatedSize).toBe(3);
    expect(full.sample.map((p) => p.userId).sort()).toEqual(['v1', 'v2', 'v3']);
    expect(full.totalProfiles).toBe(full.sampled);

    // a partial sample estimates from the live profile count the processor keeps
    const part = (await (await preview(rule, 2)).json()) as typeof full;
    expect(part.sampled).toBe(2);
    expect(part.exact).toBe(false);
    expect(part.totalProfiles).toBe(full.totalProfiles);

    // bad input: a clear 400; nothing saved either way
    const bad = await preview({ event_count: ['x', '9y'] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/window/);
    expect((await preview(rule, 0)).status).toBe(400);
    expect((await preview({ nope: [1] })).status).toBe(400);
    expect(await (await fetch(`${running.urls.query}/v1/segments`, { headers: admin() })).text()).toBe(
      before,
    );
  });
});
