// POST /v1/templates/preview against real Redis: templates rendered for a stored profile.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createLogger } from '../../runtime/log.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { uniqueId } from '../../test/harness.ts';
import { createQueryApp } from '../app.ts';

const prefix = uniqueId('tpl');
const ws = uniqueId('ws_');
let redis: Redis;
let app: ReturnType<typeof createQueryApp>;

const preview = (body: unknown) =>
  app.request('/v1/templates/preview', {
    method: 'POST',
    headers: { authorization: 'Bearer admin-1', 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  app = createQueryApp({
    redis,
    clickhouse: {} as never,
    defs: new DefinitionStore(redis, prefix),
    writeKeys: {} as never,
    redisPrefix: prefix,
    resolveAdminKey: (k) => (k === 'admin-1' ? ws : undefined),
    unsubscribeSecret: 'unused-in-this-suite',
    log: createLogger({ level: 'silent', name: 'test' }),
    now: () => new Date('2026-05-01T10:00:00Z'),
  });
  const k = workspaceKeys(prefix, ws);
  await redis.hset(k.profile('p1'), { id: 'p1', firstSeenAt: '1000', lastSeenAt: '2000' });
  await redis.hset(k.profileTraits('p1'), {
    firstName: '"Ada"',
    plan: '"pro"',
    nickname: JSON.stringify('<img src=x onerror=alert(1)>'),
  });
  await redis.sadd(k.profileIdentities('p1'), 'user:ada', 'anon:a-1');
});
afterAll(() => redis?.disconnect());

describe('POST /v1/templates/preview', () => {
  it('renders every template field of the channel for the chosen profile', async () => {
    const res = await preview({
      channel: 'email',
      campaignName: 'Welcome',
      profileId: 'p1',
      settings: {
        subject: 'Hi {{ traits.firstName }}',
        text: '{{ campaign.name }} for {{ profile.userId }} on {{ traits.plan | upcase }}',
      },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      profileId: 'p1',
      rendered: { subject: 'Hi Ada', text: 'Welcome for ada on PRO' },
    });
  });

  it('escapes trait values in the html field only, as the email channel sends it', async () => {
    const res = await preview({
      channel: 'email',
      profileId: 'p1',
      settings: {
        subject: 'Hi {{ traits.nickname }}',
        text: 'Hi {{ traits.nickname }}',
        html: '<p>Hi {{ traits.nickname }}</p>{{ "<hr>" | raw }}',
      },
    });
    expect(await res.json()).toEqual({
      profileId: 'p1',
      rendered: {
        subject: 'Hi <img src=x onerror=alert(1)>',
        text: 'Hi <img src=x onerror=alert(1)>',
        html: '<p>Hi &lt;img src=x onerror=alert(1)&gt;</p><hr>',
      },
    });
  });

  it('renders without a profile (empty traits)', async () => {
    const res = await preview({
      channel: 'sms',
      settings: { body: 'Hello {{ traits.firstName | default: "there" }}' },
    });
    expect(await res.json()).toEqual({ profileId: 'preview', rendered: { body: 'Hello there' } });
  });

  it('names the field of a broken template, an unknown profile, and a bad channel', async () => {
    const bad = await preview({
      channel: 'push',
      settings: { title: '{{ traits.x | nosuchfilter }}', body: 'x' },
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/^settings\.title: /);
    const missing = await preview({ channel: 'sms', profileId: 'nobody', settings: { body: 'x' } });
    expect(missing.status).toBe(404);
    const channel = await preview({ channel: 'webhook', settings: {} });
    expect(channel.status).toBe(400);
    expect(((await channel.json()) as { error: string }).error).toMatch(/^channel: /);
  });

  it('gives all the fields of one preview one render budget, answering 400 naming the field past it', async () => {
    // a loop that renders far longer than any limit; unbounded, text and html cost 200 ms each
    const slow =
      '{% for i in (1..1000) %}{% for j in (1..1000) %}{% assign x = j | plus: 1 | times: 2 | minus: 3 %}{% endfor %}{% endfor %}';
    const started = performance.now();
    const res = await preview({ channel: 'email', settings: { subject: 'Hi', text: slow, html: slow } });
    const took = performance.now() - started;
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(
      /^settings\.text: over the Liquid render time limit \(200 ms a field, 250 ms for all the fields of one message\)/,
    );
    // generous slack for a loaded machine
    expect(took).toBeLessThan(250 + 1500);
  });
});
