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
const identify = (userId: string, plan: string) =>
  fetch(`${running.urls.ingest}/v1/identify`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ userId, traits: { plan } }),
  });

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
      expect((await identify(u, plan)).status).toBe(200);
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
    expect((await identify('b5', 'pro')).status).toBe(200);
    expect((await identify('b1', 'free')).status).toBe(200);
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
});
