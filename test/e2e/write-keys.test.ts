// Write keys created and revoked through the query API take effect at ingest.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });
const send = (key: string) =>
  fetch(`${running.urls.ingest}/v1/track`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ userId: 'u1', event: 'Key Test' }),
  });

beforeAll(async () => {
  cfg = testConfig();
  running = await startServices(cfg, ['ingest', 'query'], testLogger(cfg));
});
afterAll(() => running?.stop());

describe('write keys', () => {
  it('a created key works at ingest; a revoked one answers 401', async () => {
    const created = await fetch(`${running.urls.query}/v1/write-keys`, {
      method: 'POST',
      headers: admin(),
      body: JSON.stringify({ name: 'iOS app' }),
    });
    expect(created.status).toBe(201);
    const rec = (await created.json()) as { id: string; key: string; workspaceId: string; name: string };
    expect(rec).toMatchObject({ name: 'iOS app', workspaceId: cfg.keys.workspace });
    expect(rec.key).toMatch(/^wk_live_/);

    await eventually('the new key accepted', async () => (await send(rec.key)).status === 200, 10_000, 100);

    const list = (await (
      await fetch(`${running.urls.query}/v1/write-keys`, { headers: admin() })
    ).json()) as {
      writeKeys: Array<{ id: string; revokedAt: string | null }>;
    };
    expect(list.writeKeys.map((k) => k.id)).toContain(rec.id);

    expect(
      (await fetch(`${running.urls.query}/v1/write-keys/${rec.id}`, { method: 'DELETE', headers: admin() }))
        .status,
    ).toBe(204);
    await eventually(
      'the revoked key refused',
      async () => (await send(rec.key)).status === 401,
      10_000,
      100,
    );
    // the bootstrap key still works
    expect((await send(cfg.keys.writeKey)).status).toBe(200);
  });

  it('refuses bad input and unknown keys with clear errors', async () => {
    const bad = await fetch(`${running.urls.query}/v1/write-keys`, {
      method: 'POST',
      headers: admin(),
      body: '{"name":""}',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/name/);
    const missing = await fetch(`${running.urls.query}/v1/write-keys/wk_nope`, {
      method: 'DELETE',
      headers: admin(),
    });
    expect(missing.status).toBe(404);
    const noAuth = await fetch(`${running.urls.query}/v1/write-keys`);
    expect(noAuth.status).toBe(401);
    expect((await send('wk_live_made_up')).status).toBe(401);
  });
});
