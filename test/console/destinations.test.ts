// The destinations screens in headless Chromium on the real stack: a HubSpot destination
// created in the console (a malformed mapping refused first, the token write-only), events
// sent to ingest reaching the local HubSpot and the screen's delivery stats, a dry run, and
// pause/resume. Then a webhook created in the console: its generated signing secret shown
// once (and never again), its batch wait and timeout kept by an edit, an out-of-range one
// refused with the API's message.
import { randomBytes } from 'node:crypto';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { fingerprint, fingerprintKey } from '../../runtime/channel-credentials.ts';
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

/** An attribute of the element that has focus. */
const focusedAttr = (name: string) =>
  page.evaluate(
    (n) =>
      (
        globalThis as unknown as {
          document: { activeElement: { getAttribute: (a: string) => string | null } | null };
        }
      ).document.activeElement?.getAttribute(n) ?? null,
    name,
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
  }, 90_000);

  let hookId = '';
  let secret = '';

  it('creates a webhook: the signing secret the server generated is shown once, then never', async () => {
    await page.getByRole('link', { name: 'New destination' }).click();
    await page.getByLabel('Name').fill('Hook');
    await page
      .getByLabel('Filter (JSON Logic)')
      .fill(JSON.stringify({ '==': [{ var: 'event' }, `${event} never`] }));
    await page.getByLabel('URL', { exact: true }).fill('http://127.0.0.1:9/hook');
    await page.getByLabel('Batch size').fill('10');
    await page.getByLabel('Batch wait (ms)').fill('250');
    await page.getByLabel('Timeout (ms)').fill('2000');
    await page.getByRole('button', { name: 'Save destination' }).click();
    await page.getByRole('heading', { name: 'Hook', level: 1 }).waitFor({ timeout: 30_000 });
    hookId = decodeURIComponent(new URL(page.url()).hash.split('/')[2] ?? '');
    expect(hookId).toMatch(/^dst_/);
    const box = page.getByRole('textbox', { name: 'Signing secret' });
    secret = await box.inputValue();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    const panel = page.getByRole('region', { name: 'Signing secret' });
    await expect.poll(() => panel.textContent()).toMatch(/Copy it now: it is not shown again/);
    // focused, so the keyboard starts there; Tab reaches the box's Copy button
    expect(await focusedAttr('data-testid')).toBe('secret-once');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await focusedAttr('aria-label')).toBe('Copy Signing secret');
    // the one shown is the one stored: the API's keyed fingerprint of it matches
    const got = await api('GET', `/v1/destinations/${hookId}`);
    expect(got.body.http).toMatchObject({
      url: 'http://127.0.0.1:9/hook',
      batch: { maxEvents: 10, maxWaitMs: 250 },
      timeoutMs: 2000,
      secretSet: true,
      secretFingerprint: fingerprint(secret, fingerprintKey(cfg.channels.secrets.current!.key)),
    });
    expect(got.body.http.secret).toBeUndefined();
    await page.getByRole('button', { name: 'I have copied it' }).press('Enter');
    await expect.poll(() => page.getByTestId('secret-once').count()).toBe(0);
    // never again: not after a reload, nor on the list, nor on another visit
    await page.reload();
    await page.getByRole('heading', { name: 'Hook', level: 1 }).waitFor();
    await expect.poll(() => page.getByTestId('destination-status').textContent()).toBe('active');
    expect(await page.getByTestId('secret-once').count()).toBe(0);
    expect(await page.content()).not.toContain(secret);
    expect(await page.content()).toContain(got.body.http.secretFingerprint);
  }, 90_000);

  it('edits the webhook keeping its batch wait, timeout, rate limit, retry and secret', async () => {
    // settings the form does not show, set through the API: an edit must not drop them
    const { body: d } = await api('GET', `/v1/destinations/${hookId}`);
    const fp = d.http.secretFingerprint;
    const put = await api('PUT', `/v1/destinations/${hookId}`, {
      name: d.name,
      type: d.type,
      source: d.source,
      http: { url: d.http.url, batch: d.http.batch, timeoutMs: d.http.timeoutMs },
      rateLimit: { perSecond: 5 },
      retry: { maxAttempts: 3, initialBackoffMs: 200 },
    });
    expect(put.status).toBe(200);
    await page.getByRole('link', { name: 'Edit', exact: true }).click();
    await page.getByRole('heading', { name: 'Edit destination' }).waitFor();
    expect(await page.getByLabel('Batch wait (ms)').inputValue()).toBe('250');
    expect(await page.getByLabel('Timeout (ms)').inputValue()).toBe('2000');
    await page.getByLabel('Name').fill('Hook 2');
    await page.getByRole('button', { name: 'Save destination' }).click();
    await page.getByRole('heading', { name: 'Hook 2', level: 1 }).waitFor({ timeout: 30_000 });
    // the secret was kept: nothing to show
    expect(await page.getByTestId('secret-once').count()).toBe(0);
    const after = (await api('GET', `/v1/destinations/${hookId}`)).body;
    expect(after.http).toMatchObject({ batch: { maxEvents: 10, maxWaitMs: 250 }, timeoutMs: 2000 });
    expect(after.http.secretFingerprint).toBe(fp);
    expect(after.rateLimit).toEqual({ perSecond: 5 });
    expect(after.retry).toEqual({ maxAttempts: 3, initialBackoffMs: 200 });
    expect(after.version).toBe(d.version + 2);
  }, 60_000);

  it('shows the API’s 400 for a timeout or batch wait out of range', async () => {
    await page.getByRole('link', { name: 'Edit', exact: true }).click();
    await page.getByRole('heading', { name: 'Edit destination' }).waitFor();
    await page.getByLabel('Timeout (ms)').fill('50');
    await page.getByRole('button', { name: 'Save destination' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/^http\.timeoutMs: .*100/);
    await page.getByLabel('Timeout (ms)').fill('2000');
    await page.getByLabel('Batch wait (ms)').fill('60001');
    await page.getByRole('button', { name: 'Save destination' }).click();
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toMatch(/^http\.batch\.maxWaitMs: .*60000/);
    const still = (await api('GET', `/v1/destinations/${hookId}`)).body;
    expect(still.http).toMatchObject({ batch: { maxEvents: 10, maxWaitMs: 250 }, timeoutMs: 2000 });
    await api('DELETE', `/v1/destinations/${hookId}`);
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
