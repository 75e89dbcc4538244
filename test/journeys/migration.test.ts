// Moving people in flight to a journey's new version, when asked: POST
// /v1/journeys/{id}/migrate {from, nodes}. The journey runner pages the runs of the journey,
// moving each active run of `from` by compare-and-set to the node mapped (or of the same
// id) in the current version, where it goes on: a wait made shorter ends sooner. People at
// a node the new version lacks stay where they are, counted as skipped. Real stack.
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
const ingest = ingestApi(
  () => running.urls.ingest!,
  () => cfg,
);
const sentTo = (k: string) => receiver.deliveries.filter((d) => d.url?.endsWith(`?k=${k}`));

beforeAll(async () => {
  cfg = testConfig();
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});
afterAll(async () => {
  await running?.stop();
  await receiver?.close();
});

async function waitersOn(id: string, node: string, n: number) {
  await eventually(`${n} waiting at ${node}`, async () => {
    const s = (await api('GET', `/v1/journeys/${id}/stats`)).body;
    return s.nodes?.[node]?.now === n;
  });
}
const migration = (id: string, done: (m: Record<string, unknown>) => boolean) =>
  eventually('the migration done', async () => {
    const m = await api('GET', `/v1/journeys/${id}/migration`);
    return m.status === 200 && m.body.status === 'done' && done(m.body) ? m.body : undefined;
  });

describe('journey migrations', () => {
  it('people waiting on version 1 move to version 2 when asked, and go on there', async () => {
    const seg = (
      await api('POST', '/v1/segments', { name: 'M1', rule: { '==': [{ var: 'traits.m1' }, true] } })
    ).body.id as string;
    const v1 = {
      name: 'Migrate me',
      entry: { segment: seg, on: 'enter' },
      nodes: [
        { id: 'w', type: 'wait', for: 'P1D', next: 'mail' },
        { id: 'mail', type: 'send', channel: 'webhook', webhook: { url: `${receiver.url}?k=v1` } },
      ],
    };
    const id = (await api('POST', '/v1/journeys', v1)).body.id as string;
    await api('POST', `/v1/journeys/${id}/activate`);
    const users = ['ma', 'mb', 'mc'];
    await ingest('/v1/batch', {
      batch: users.map((userId) => ({ type: 'identify', userId, traits: { m1: true } })),
    });
    await waitersOn(id, 'w', 3);
    // version 2: a one-second wait, and another message
    const v2 = await api('PUT', `/v1/journeys/${id}`, {
      ...v1,
      nodes: [
        { id: 'w', type: 'wait', for: 'PT1S', next: 'mail' },
        { id: 'mail', type: 'send', channel: 'webhook', webhook: { url: `${receiver.url}?k=v2` } },
      ],
    });
    expect(v2.body.version).toBe(2);
    // refused: not an older version, a node the old version lacks, an unknown field
    expect((await api('POST', `/v1/journeys/${id}/migrate`, { from: 2 })).body).toEqual({
      error: 'from: a version before the current one (2)',
    });
    expect((await api('POST', `/v1/journeys/${id}/migrate`, { from: 1, nodes: { x: 'w' } })).body).toEqual({
      error: 'nodes.x: no node "x" in version 1',
    });
    expect((await api('POST', `/v1/journeys/${id}/migrate`, { from: 1, nodes: { w: 'nope' } })).body).toEqual(
      {
        error: 'nodes.w: no node "nope" in version 2',
      },
    );
    expect((await api('POST', `/v1/journeys/${id}/migrate`, { from: 1, to: 2 })).status).toBe(400);
    // the shape, checked by the route's schema: each answer names its field
    expect((await api('POST', `/v1/journeys/${id}/migrate`, { from: 'one' })).body.error).toMatch(
      /^from: a version before the current one/,
    );
    expect(
      (await api('POST', `/v1/journeys/${id}/migrate`, { from: 1, nodes: { w: 5 } })).body.error,
    ).toMatch(/^nodes(\.w)?: /);
    const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`n${i}`, 'w']));
    expect((await api('POST', `/v1/journeys/${id}/migrate`, { from: 1, nodes: many })).body.error).toMatch(
      /^nodes: .*at most 100/,
    );
    // without the migration, nobody would hear anything for a day
    const asked = await api('POST', `/v1/journeys/${id}/migrate`, { from: 1 });
    expect(asked.status).toBe(202);
    expect(asked.body).toMatchObject({ from: 1, to: 2, status: 'pending' });
    await migration(id, (m) => m.moved === 3 && m.skipped === 0);
    await eventually('everyone got the version-2 message', () => sentTo('v2').length === 3, 15_000);
    expect(sentTo('v1')).toEqual([]);
    const bodies = sentTo('v2').map((d) => JSON.parse(d.body) as { userId: string });
    expect(bodies.map((b) => b.userId).sort()).toEqual(users);
  });

  it('a node the new version lacks: its people stay, unless mapped to another node', async () => {
    const seg = (
      await api('POST', '/v1/segments', { name: 'M2', rule: { '==': [{ var: 'traits.m2' }, true] } })
    ).body.id as string;
    const id = (
      await api('POST', '/v1/journeys', {
        name: 'Renamed',
        entry: { segment: seg, on: 'enter' },
        nodes: [{ id: 'a', type: 'wait', for: 'P1D' }],
      })
    ).body.id as string;
    await api('POST', `/v1/journeys/${id}/activate`);
    await ingest('/v1/batch', {
      batch: ['na', 'nb'].map((userId) => ({ type: 'identify', userId, traits: { m2: true } })),
    });
    await waitersOn(id, 'a', 2);
    await api('PUT', `/v1/journeys/${id}`, {
      name: 'Renamed',
      entry: { segment: seg, on: 'enter' },
      nodes: [
        { id: 'b', type: 'wait', for: 'PT1S', next: 'hi' },
        { id: 'hi', type: 'send', channel: 'webhook', webhook: { url: `${receiver.url}?k=renamed` } },
      ],
    });
    expect((await api('POST', `/v1/journeys/${id}/migrate`, { from: 1 })).status).toBe(202);
    await migration(id, (m) => m.skipped === 2 && m.moved === 0);
    await waitersOn(id, 'a', 2);
    expect((await api('POST', `/v1/journeys/${id}/migrate`, { from: 1, nodes: { a: 'b' } })).status).toBe(
      202,
    );
    await migration(id, (m) => m.moved === 2);
    await eventually('both sent after the new wait', () => sentTo('renamed').length === 2, 15_000);
    const s = (await api('GET', `/v1/journeys/${id}/stats`)).body;
    expect(s.nodes.a.now).toBe(0);
    expect(s.nodes.hi.passed).toBe(2);
  });
});
