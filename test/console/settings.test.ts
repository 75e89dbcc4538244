// The console's Settings screen in headless Chromium on the real stack: a client write key
// created in the console (shown once) is taken by ingest and refused there once revoked in
// the console; an address suppressed and lifted in the console is on and off the list the
// activation worker reads, each change audited; SMS credentials saved in the console are
// refused at the field the API names, then stored sealed and shown only as fingerprints, and
// removed again. Keyboard only where a person would use it.
import { randomBytes } from 'node:crypto';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { createRedis, type Redis } from '../../runtime/redis.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { adminApi, eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
let browser: Browser;
let page: Page;
let redis: Redis;
const pageErrors: string[] = [];
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);

const track = (key: string) =>
  fetch(`${running.urls.ingest}/v1/track`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ anonymousId: uniqueId('a'), event: 'Viewed' }),
  });

beforeAll(async () => {
  cfg = testConfig({ CDP_SECRETS_KEY: randomBytes(32).toString('base64'), CDP_DEFINITIONS_POLL_MS: '50' });
  running = await startServices(cfg, ['ingest', 'query'], testLogger(cfg));
  redis = createRedis(cfg.redis.url, testLogger(cfg), 'settings-test');
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${running.urls.query}/console#/settings`);
  await page.getByLabel('Admin key').fill(cfg.keys.adminKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  redis?.disconnect();
  await running?.stop();
});

describe('settings in the console', () => {
  it('creates a client write key shown once, which ingest takes; revoked in the console, ingest refuses it', async () => {
    const name = uniqueId('web-');
    await page.getByLabel('Name').fill(name);
    await page.getByLabel('Kind').selectOption('client');
    await page.getByRole('button', { name: 'Create key' }).click();
    const shown = await page.getByTestId('new-key').locator('code').textContent();
    expect(shown).toMatch(/^wk_/);
    const key = shown!;
    // the list shows it masked, with its kind
    const row = page.getByTestId('write-keys').locator('tr', { hasText: name });
    await expect.poll(() => row.locator('td').nth(1).textContent()).toBe('client');
    expect(await row.locator('td').nth(2).textContent()).not.toBe(key);
    await eventually('ingest takes the new key', async () => (await track(key)).status === 200);

    // revoke, by keyboard: the question takes focus on "Keep it"; Shift+Tab to the action
    await row.getByRole('button', { name: `Revoke ${name}` }).click();
    await expect.poll(() => page.locator(':focus').textContent()).toBe('Keep it');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Enter');
    await expect.poll(() => row.locator('td').nth(4).textContent()).toMatch(/^revoked/);
    await eventually('ingest refuses the revoked key', async () => (await track(key)).status === 401);
    const audit = await api('GET', '/v1/audit?entityType=write_key');
    const actions = (audit.body.items as Array<{ action: string; after: string }>)
      .filter((r) => JSON.stringify(r).includes(name))
      .map((r) => r.action)
      .sort();
    expect(actions).toEqual(['create', 'delete']);
  });

  it('suppresses an address and lifts it again; the list activation reads follows, each change audited', async () => {
    await page.getByRole('link', { name: 'Suppressions' }).click();
    const email = `${uniqueId('x')}@example.test`;
    const list = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).suppressions;
    await page.getByLabel('Kind').selectOption('email');
    await page.getByLabel('Value').fill(email.toUpperCase());
    await page.getByRole('button', { name: 'Suppress' }).click();
    await expect.poll(() => page.getByTestId('suppression-done').textContent()).toMatch(/^Added/);
    // stored as the contact policy compares it: lowercased
    expect(await redis.sismember(list, `email:${email}`)).toBe(1);
    const row = page.getByTestId('suppressions').locator('tr', { hasText: email });
    await row.getByRole('button', { name: `Remove ${email}` }).click();
    await page.getByRole('button', { name: 'Remove from list' }).click();
    await expect.poll(() => page.getByTestId('suppression-done').textContent()).toMatch(/^Removed/);
    expect(await redis.sismember(list, `email:${email}`)).toBe(0);
    await expect.poll(() => row.count()).toBe(0);
    const audit = await api('GET', '/v1/audit?entityType=suppression');
    const mine = (audit.body.items as Array<{ action: string }>).filter((r) =>
      JSON.stringify(r).includes(email),
    );
    expect(mine.map((r) => r.action).sort()).toEqual(['create', 'delete']);
  });

  it('stores SMS credentials sealed and shows only fingerprints; a wrong field is named; removal falls back', async () => {
    await page.getByRole('link', { name: 'Channel credentials' }).click();
    const card = page.getByTestId('credentials-sms');
    await expect.poll(() => page.getByTestId('credentials-sms-state').textContent()).toMatch(/deployment/);
    const box = card.getByLabel('New SMS credentials (JSON)');
    await box.fill(JSON.stringify({ accountSid: 'AC-nope', authToken: 'tok', from: '+15550001' }));
    await card.getByRole('button', { name: 'Save SMS credentials' }).click();
    await expect.poll(() => card.getByRole('alert').textContent()).toMatch(/accountSid/);

    const token = `tok_${randomBytes(12).toString('hex')}`;
    const sid = `AC${randomBytes(16).toString('hex')}`;
    await box.fill(JSON.stringify({ accountSid: sid, authToken: token, from: '+15550001' }));
    await card.getByRole('button', { name: 'Save SMS credentials' }).click();
    await expect.poll(() => page.getByTestId('credentials-sms-state').textContent()).toMatch(/own/);
    const text = (await card.textContent()) ?? '';
    expect(text).toContain(sid);
    expect(text).not.toContain(token);
    // sealed in Redis: the token is nowhere in the workspace's keys
    const keys = await redis.keys(`${cfg.redis.prefix}*`);
    for (const k of keys.filter((k) => k.includes('cred'))) {
      const type = await redis.type(k);
      const raw =
        type === 'hash'
          ? JSON.stringify(await redis.hgetall(k))
          : type === 'string'
            ? await redis.get(k)
            : '';
      expect(raw ?? '').not.toContain(token);
    }

    await card.getByRole('button', { name: 'Remove…' }).click();
    await card.getByRole('button', { name: 'Remove SMS credentials' }).click();
    await expect.poll(() => page.getByTestId('credentials-sms-state').textContent()).toMatch(/deployment/);
    expect((await api('GET', '/v1/channels/sms/credentials')).body.configured).toBe(false);
    expect(pageErrors).toEqual([]);
  });
});
