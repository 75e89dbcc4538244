// The destinations screens in headless Chromium on the real stack: a HubSpot destination
// created in the console (a malformed mapping refused first, the token write-only), events
// sent to ingest reaching the local HubSpot and the screen's delivery stats, a dry run, and
// pause/resume.
import { randomBytes } from 'node:crypto';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger, uniqueId } from '../harness.ts';
import { hubspotServer } from '../hubspot.ts';

let cfg: Config;
let running: RunningServices;
let browser: Browser;
let page: Page;
let hs: Awaited<ReturnType<typeof hubspotServer>>;
const token = `pat-na1-${randomBytes(12).toString('hex')}`;
const pageErrors: string[] = [];
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);
const send = ingestApi(
  () => running.urls.ingest!,
  () => cfg,
);

beforeAll(async () => {
  cfg = testConfig({
    CDP_DEFINITIONS_POLL_MS: '50',
    CDP_WEBHOOK_ALLOW_LOOPBACK: 'true',
    CDP_SECRETS_KEY: randomBytes(32).toString('base64'),
  });
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  hs = await hubspotServer({ token });
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
  await page.goto(`${running.urls.query}/console#/destinations`);
  await page.getByLabel('Admin key').fill(cfg.keys.adminKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Destinations', level: 1 }).waitFor();
}, 180_000);
afterAll(async () => {
  await browser?.close();
  await hs?.close();
  await running?.stop();
});

describe('destinations in the console', () => {
  const event = uniqueId('Signed Up ');
  let id = '';

  it('creates a HubSpot destination: a malformed mapping is refused, the token is never shown', async () => {
    await page.getByRole('link', { name: 'New destination' }).click();
    await page.getByLabel('Name').fill('CRM');
    await page.getByLabel('Kind').selectOption('hubspot');
    await page.getByLabel('Filter (JSON Logic)').fill(JSON.stringify({ '==': [{ var: 'event' }, event] }));
    await page.getByLabel('Mapping (JSON)').fill('{"email": "properties.email",');
    await page.getByLabel('API base URL').fill(hs.url);
    await page.getByLabel('Access token').fill(token);
    await page.getByRole('button', { name: 'Save destination' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/Mapping: not valid JSON/);
    // a mapping the API refuses: its message, naming the field
    await page.getByLabel('Mapping (JSON)').fill('{"email": "properties.__proto__"}');
    await page.getByRole('button', { name: 'Save destination' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/__proto__/);
    await page
      .getByLabel('Mapping (JSON)')
      .fill('{"email": "properties.email", "firstname": "properties.name"}');
    await page.getByRole('button', { name: 'Save destination' }).click();
    await page.getByRole('heading', { name: 'CRM', level: 1 }).waitFor({ timeout: 30_000 });
    id = decodeURIComponent(new URL(page.url()).hash.split('/')[2] ?? '');
    expect(id).toMatch(/^dst_/);
    await expect.poll(() => page.getByTestId('destination-status').textContent()).toBe('active');
    expect(await page.content()).not.toContain(token);
    const got = await api('GET', `/v1/destinations/${id}`);
    expect(got.body.type).toBe('hubspot');
    expect(got.body.credentialsSet).toBe(true);
    expect(JSON.stringify(got.body)).not.toContain(token);
  }, 90_000);

  it('watches deliveries reach HubSpot: sent, deliveries/s, lag', async () => {
    await eventually(
      'worker running',
      async () => (await api('GET', `/v1/destinations/${id}/stats`)).body.lag !== undefined,
      30_000,
    );
    for (let i = 0; i < 5; i++)
      await send('/v1/track', {
        userId: uniqueId('dst-user-'),
        event,
        properties: { email: `Console${i}@Example.com`, name: `C${i}` },
      });
    await eventually('5 contacts at HubSpot', () => hs.contacts.size >= 5, 90_000);
    expect(hs.contacts.get('console3@example.com')).toEqual({
      email: 'console3@example.com',
      firstname: 'C3',
    });
    // the ledger reaches ClickHouse in its own time: the screen's poll shows it
    await expect.poll(() => page.getByTestId('stat-sent').textContent(), { timeout: 90_000 }).toBe('5');
    await expect
      .poll(() => page.getByTestId('stat-rate').textContent(), { timeout: 10_000 })
      .toMatch(/^\d+\.\d$/);
    await expect.poll(() => page.getByTestId('stat-dead').textContent()).toBe('0');
    await expect.poll(() => page.getByTestId('stat-lag').textContent(), { timeout: 30_000 }).toMatch(/^\d+$/);
  }, 180_000);

  it('dry-runs a sample event and pauses and resumes', async () => {
    await page
      .getByLabel('Sample event (JSON)')
      .fill('{"event": "x", "properties": {"email": "a@b.co", "name": "A"}}');
    await page.getByRole('button', { name: 'Dry run' }).click();
    await expect.poll(() => page.getByTestId('dry-matched').textContent()).toBe('Filtered out');
    // the request HubSpot would get for it
    expect(JSON.parse((await page.getByTestId('dry-payload').textContent()) ?? '')).toEqual({
      method: 'POST',
      path: '/crm/v3/objects/contacts/batch/upsert',
      body: { inputs: [{ id: 'a@b.co', idProperty: 'email', properties: { firstname: 'A' } }] },
    });
    await page.getByLabel('Sample event (JSON)').fill('{not json');
    await page.getByRole('button', { name: 'Dry run' }).click();
    await expect.poll(() => page.getByRole('alert').first().textContent()).toMatch(/not valid JSON/);
    await page.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => page.getByTestId('destination-status').textContent()).toBe('paused');
    expect((await api('GET', `/v1/destinations/${id}`)).body.status).toBe('paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => page.getByTestId('destination-status').textContent()).toBe('active');
    await page.getByRole('link', { name: 'Destinations' }).click();
    await expect
      .poll(() => page.getByRole('table', { name: 'Destinations' }).textContent())
      .toMatch(/CRM.*HubSpot contacts/);
    expect(pageErrors).toEqual([]);
  }, 90_000);
});
