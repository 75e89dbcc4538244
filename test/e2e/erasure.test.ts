// GDPR erasure across Redis, ClickHouse history and identities, and what later events do.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import type { Config } from '../../runtime/config.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
let redis: Redis;
let ch: ClickHouseClient;
const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });
const send = (path: string, body: object) =>
  fetch(`${running.urls.ingest}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
const profileOf = async (userId: string) => {
  const r = await fetch(`${running.urls.query}/v1/profiles?userId=${userId}`, { headers: admin() });
  return r.status === 200
    ? ((await r.json()) as { id: string; traits: Record<string, unknown>; segments: string[] })
    : undefined;
};
const historyCount = async (userId: string) => {
  const rs = await ch.query({
    query: 'SELECT count() AS n FROM events WHERE workspace_id = {ws:String} AND user_id = {u:String}',
    query_params: { ws: cfg.keys.workspace, u: userId },
    format: 'JSONEachRow',
  });
  return Number((await rs.json<{ n: string }>())[0]!.n);
};

beforeAll(async () => {
  cfg = testConfig();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  redis = new Redis(cfg.redis.url);
  ch = await createClickHouse(cfg.clickhouse);
});
afterAll(async () => {
  await running?.stop();
  redis?.disconnect();
});

describe('DELETE /v1/profiles/{id}', () => {
  it('erases Redis state, identities, history and memberships, audits it, and a later event starts afresh', async () => {
    const seg = (await (
      await fetch(`${running.urls.query}/v1/segments`, {
        method: 'POST',
        headers: admin(),
        body: JSON.stringify({ name: 'VIP', rule: { '==': [{ var: 'traits.vip' }, true] } }),
      })
    ).json()) as { id: string };
    await new Promise((r) => setTimeout(r, 600));
    expect(
      (
        await send('/v1/identify', {
          userId: 'erase-me',
          anonymousId: 'anon-erase',
          traits: { vip: true, email: 'e@x.io' },
        })
      ).status,
    ).toBe(200);
    expect((await send('/v1/track', { userId: 'erase-me', event: 'Bought' })).status).toBe(200);
    const before = await eventually('the profile in its segment', async () => {
      const p = await profileOf('erase-me');
      return p?.segments.includes(seg.id) ? p : undefined;
    });
    await eventually('two history rows', async () => (await historyCount('erase-me')) === 2);

    // identity links as the sink writes them from cdp.identity (an older row of the anon id
    // still names the profile merged into this one), and another person's, which stays
    const link = (id_type: string, id_value: string, profile_id: string, version: number) => ({
      workspace_id: cfg.keys.workspace,
      id_type,
      id_value,
      profile_id,
      version,
      at: Date.now(),
    });
    await ch.insert({
      table: 'identity_links',
      format: 'JSONEachRow',
      values: [
        link('anon', 'anon-erase', 'p-merged-away', 1),
        link('profile', 'p-merged-away', before.id, 2),
        link('profile', before.id, before.id, 2),
        link('user', 'erase-me', before.id, 2),
        link('anon', 'anon-erase', before.id, 2),
        link('email', 'e@x.io', before.id, 2),
        link('user', 'someone-else', 'p-other', 3),
      ],
    });
    const del = await fetch(`${running.urls.query}/v1/profiles/${before.id}`, {
      method: 'DELETE',
      headers: admin(),
    });
    // a job: it finishes after a sweep for rows still on their way (erasure-jobs.test.ts)
    expect([200, 202]).toContain(del.status);
    const started = (await del.json()) as { erased: string; identities: number; job: { id: string } };
    expect(started).toMatchObject({ erased: before.id, identities: 3 });
    await eventually(
      'the erasure done',
      async () => {
        const r = await fetch(`${running.urls.query}/v1/erasures/${started.job.id}`, { headers: admin() });
        return ((await r.json()) as { status: string }).status === 'done';
      },
      60_000,
      200,
    );

    const keys = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace);
    expect(await redis.get(keys.identity('user', 'erase-me'))).toBeNull();
    expect(await redis.get(keys.identity('anon', 'anon-erase'))).toBeNull();
    expect(await redis.get(keys.identity('email', 'e@x.io'))).toBeNull();
    expect(await redis.exists(keys.profileTraits(before.id))).toBe(0);
    expect(await redis.zscore(keys.segmentMembers(seg.id), before.id)).toBeNull();
    expect(await historyCount('erase-me')).toBe(0);
    const links = await ch.query({
      query: 'SELECT id_value FROM identity_links WHERE workspace_id = {ws:String} ORDER BY id_value',
      query_params: { ws: cfg.keys.workspace },
      format: 'JSONEachRow',
    });
    expect(await links.json()).toEqual([{ id_value: 'someone-else' }]);
    expect((await fetch(`${running.urls.query}/v1/profiles/${before.id}`, { headers: admin() })).status).toBe(
      404,
    );
    const audit = await ch.query({
      query:
        "SELECT action, entity_id, before FROM audit_log WHERE workspace_id = {ws:String} AND entity_type = 'profile'",
      query_params: { ws: cfg.keys.workspace },
      format: 'JSONEachRow',
    });
    const rows = await audit.json<{ action: string; entity_id: string; before: string }>();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ action: 'erase', entity_id: before.id });
    expect(JSON.parse(rows[0]!.before)).toMatchObject({ identities: 3, traits: 2, profiles: 1, events: 2 });
    expect(rows[0]!.before).not.toContain('erase-me');

    // a later event for the erased userId: a new, empty person
    expect((await send('/v1/track', { userId: 'erase-me', event: 'Came Back' })).status).toBe(200);
    const after = await eventually('a new profile', () => profileOf('erase-me'));
    expect(after.id).not.toBe(before.id);
    expect(after.traits).toEqual({});
    expect(after.segments).toEqual([]);
  });

  it('answers 404 for an unknown profile', async () => {
    expect(
      (await fetch(`${running.urls.query}/v1/profiles/nope`, { method: 'DELETE', headers: admin() })).status,
    ).toBe(404);
  });
});
