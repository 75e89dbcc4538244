// Journey steps that change the profile through the pipeline: a score (points added to a
// numeric trait, atomically: two journeys scoring one person at once lose nothing) and a
// static list (the list's id added to or taken from the `lists` trait, which segments
// select on). On the real stack: ingest → Kafka → processor → journey runner → processor.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger } from '../harness.ts';

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

beforeAll(async () => {
  cfg = testConfig();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});
afterAll(async () => {
  await running?.stop();
});

async function journey(body: unknown): Promise<string> {
  const created = await api('POST', '/v1/journeys', body);
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const id = created.body.id as string;
  expect((await api('POST', `/v1/journeys/${id}/activate`)).body.status).toBe('active');
  return id;
}

describe('journey score and list steps', () => {
  it('scores add up across journeys at once; a list step puts people on a list a segment selects', async () => {
    const seg = async (name: string, rule: unknown) =>
      (await api('POST', '/v1/segments', { name, rule })).body.id as string;
    const trial = await seg('Trial', { '==': [{ var: 'traits.plan' }, 'trial'] });
    const nurtured = await seg('Nurtured', { in: ['nurtured', { var: 'traits.lists' }] });
    await journey({
      name: 'Nurture',
      entry: { segment: trial, on: 'enter' },
      nodes: [
        { id: 'plus', type: 'score', trait: 'engagement', add: 10, next: 'minus' },
        { id: 'minus', type: 'score', trait: 'engagement', add: -2.5, next: 'on' },
        { id: 'on', type: 'list', list: 'nurtured', action: 'add', next: 'off' },
        { id: 'off', type: 'list', list: 'cold', action: 'remove' },
      ],
    });
    await journey({
      name: 'Bonus',
      entry: { segment: trial, on: 'enter' },
      nodes: [{ id: 'bonus', type: 'score', trait: 'engagement', add: 100 }],
    });
    const users = Array.from({ length: 10 }, (_, i) => `s${i}`);
    await ingest('/v1/batch', {
      batch: users.map((userId) => ({
        type: 'identify',
        userId,
        traits: { plan: 'trial', engagement: 1, lists: ['cold', 'newsletter'] },
      })),
    });
    for (const u of users)
      await eventually(
        `${u} scored and listed`,
        async () => {
          const p = (await api('GET', `/v1/profiles?userId=${u}`)).body;
          return p.traits?.engagement === 108.5 &&
            JSON.stringify(p.traits?.lists) === '["newsletter","nurtured"]'
            ? p
            : undefined;
        },
        30_000,
      );
    // the list's segment selects them all (its rule reads the lists trait)
    for (const u of users)
      await eventually(`${u} in the list’s segment`, async () =>
        ((await api('GET', `/v1/profiles?userId=${u}`)).body.segments as string[]).includes(nurtured),
      );
  });

  it('refuses a score of 0 points and a list id with spaces, naming the field', async () => {
    const trial = (
      await api('POST', '/v1/segments', { name: 'T2', rule: { '==': [{ var: 'traits.x' }, 1] } })
    ).body.id as string;
    const zero = await api('POST', '/v1/journeys', {
      name: 'x',
      entry: { segment: trial, on: 'enter' },
      nodes: [{ id: 'a', type: 'score', trait: 'engagement', add: 0 }],
    });
    expect(zero).toEqual({ status: 400, body: { error: 'nodes[0].add: points to add, not 0' } });
    const list = await api('POST', '/v1/journeys', {
      name: 'x',
      entry: { segment: trial, on: 'enter' },
      nodes: [{ id: 'a', type: 'list', list: 'my list', action: 'add' }],
    });
    expect(list.status).toBe(400);
    expect(list.body.error).toMatch(/^nodes\[0\]\.list/);
  });
});
