// Journey steps that change the profile through the pipeline: a score (points added to a
// numeric trait, atomically: two journeys scoring one person at once lose nothing) and a
// static list (the list's id added to or taken from the `lists` trait, which segments
// select on). On the real stack: ingest → Kafka → processor → journey runner → processor.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signWebhook } from '../../activation/webhook/sign-webhook.ts';
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

beforeAll(async () => {
  cfg = testConfig();
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});
afterAll(async () => {
  await running?.stop();
  await receiver?.close();
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

  it('a webhook step posts a signed journey.webhook body with its data, once per run', async () => {
    const seg = (
      await api('POST', '/v1/segments', { name: 'Lead', rule: { '==': [{ var: 'traits.lead' }, true] } })
    ).body.id as string;
    const journeyBody = {
      name: 'CRM task',
      entry: { segment: seg, on: 'enter' },
      nodes: [
        {
          id: 'crm',
          type: 'webhook',
          webhook: { url: `${receiver.url}?k=crm` },
          data: { task: 'call', priority: 2 },
        },
      ],
    };
    // the generated secret is shown once, in the create's answer; write-only afterwards
    const created = await api('POST', '/v1/journeys', journeyBody);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    const secret = created.body.nodes[0].webhook.secret as string;
    expect(secret).toMatch(/^whsec_/);
    const def = (await api('GET', `/v1/journeys/${id}`)).body;
    expect(JSON.stringify(def)).not.toContain('whsec_');
    expect(def.nodes[0].webhook).toMatchObject({ url: `${receiver.url}?k=crm`, secretSet: true });
    // an edit without the secret keeps it: version 2 signs with the same one
    const edited = await api('PUT', `/v1/journeys/${id}`, journeyBody);
    expect(edited.status, JSON.stringify(edited.body)).toBe(200);
    expect(JSON.stringify(edited.body)).not.toContain('whsec_');
    expect((await api('POST', `/v1/journeys/${id}/activate`)).body.status).toBe('active');
    await ingest('/v1/identify', { userId: 'lee', traits: { lead: true, name: 'Lee' } });
    const d = await eventually('the webhook call', () =>
      receiver.deliveries.find((x) => x.url?.endsWith('?k=crm')),
    );
    const body = JSON.parse(d.body);
    expect(body).toMatchObject({
      type: 'journey.webhook',
      journeyId: id,
      version: 2,
      nodeId: 'crm',
      run: 1,
      userId: 'lee',
      traits: { lead: true, name: 'Lee' },
      data: { task: 'call', priority: 2 },
    });
    // Standard Webhooks signature over id.timestamp.body
    const sig = signWebhook(
      secret,
      String(d.headers['webhook-id']),
      Number(d.headers['webhook-timestamp']),
      d.body,
    );
    expect(d.headers['webhook-signature']).toBe(sig);
    await eventually(
      'the step counted',
      async () => (await api('GET', `/v1/journeys/${id}/stats`)).body.nodes?.crm?.passed === 1,
    );
    expect(receiver.deliveries.filter((x) => x.url?.endsWith('?k=crm'))).toHaveLength(1);
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
