// The console's ledger and audit log in headless Chromium against the real services: 55
// people enter a segment through ingest, a webhook campaign and a journey send to each
// (activation → ledger sink → ClickHouse), and a marketer filters the send decisions, pages
// through them with "Load more" (every send once, none missing, newest first), downloads
// them as CSV (fetched with the admin key) and checks its rows, reads a journey's steps,
// follows the links from a campaign, a journey and a profile to their rows, and opens the
// audit log of a changed campaign: the fields that changed, before and after, the webhook
// secret never shown. Every screen is checked at 1280×800 and 390×844 for horizontal
// overflow, and nothing is fetched from anywhere but the query service.
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const VIEWPORTS = [
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
];
const PEOPLE = Array.from({ length: 55 }, (_, i) => `led-${String(i).padStart(2, '0')}`);

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let queryUrl: string;
let campaignId: string;
let journeyId: string;
let secret: string;
const blocked: string[] = [];
const pageErrors: string[] = [];

/** The fields of API answers this test reads. */
interface Answer {
  id: string;
  items: Array<{ profileId: string }>;
  webhook: { secret: string };
}

async function api(method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${queryUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${cfg.keys.adminKey}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  expect(res.status, JSON.stringify(json)).toBeLessThan(300);
  return json as unknown as Answer;
}

async function checkViewports(name: string) {
  for (const vp of VIEWPORTS) {
    await page.setViewportSize(vp);
    const overflow = await page.evaluate(() => {
      const d = (
        globalThis as unknown as {
          document: { documentElement: { scrollWidth: number; clientWidth: number } };
        }
      ).document.documentElement;
      return d.scrollWidth - d.clientWidth;
    });
    expect(overflow, `${name} at ${vp.width}×${vp.height} overflows by ${overflow}px`).toBeLessThanOrEqual(0);
    await page.screenshot({ path: `${ARTIFACTS}console-${name}-${vp.width}.png`, fullPage: true });
  }
  await page.setViewportSize(VIEWPORTS[0]!);
}

const status = () => page.getByTestId('list-status').textContent({ timeout: 5000 });
/** The profile ids in the visible table's profile column (its 3rd in the sends, 6th in the steps). */
const column = (n: number) => page.locator(`table tbody tr td:nth-child(${n})`).allTextContents();
const times = () =>
  page
    .locator('table tbody tr td:first-child time')
    .evaluateAll((ts) => ts.map((t) => t.getAttribute('datetime')!));
/** Which element has focus: its tag and the text of its first cell. */
const focused = () =>
  page.evaluate(() => {
    const el = (
      globalThis as unknown as { document: { activeElement: { tagName: string; textContent: string } } }
    ).document.activeElement;
    return { tag: el.tagName, text: el.textContent };
  });

beforeAll(async () => {
  cfg = testConfig();
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  queryUrl = running.urls.query!;
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  context = await browser.newContext({ viewport: VIEWPORTS[0]!, acceptDownloads: true });
  const allowed = new URL(queryUrl).origin;
  await context.route(
    (url) => url.origin !== allowed && url.protocol !== 'blob:' && url.protocol !== 'data:',
    (route) => {
      blocked.push(route.request().url());
      return route.abort();
    },
  );
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/status of 4\d\d/.test(msg.text())) pageErrors.push(msg.text());
  });

  // a segment, a webhook campaign and a journey that sends a webhook, all on entering it
  const seg = await api('POST', '/v1/segments', {
    name: 'Ledger people',
    rule: { '==': [{ var: 'traits.plan' }, 'ledger'] },
  });
  const campaign = await api('POST', '/v1/campaigns', {
    name: 'Ledger welcome',
    segmentId: seg.id,
    on: 'enter',
    channel: 'webhook',
    webhook: { url: `${receiver.url}?k=campaign` },
  });
  campaignId = campaign.id;
  secret = campaign.webhook.secret;
  const journey = await api('POST', '/v1/journeys', {
    name: 'Ledger journey',
    entry: { segment: seg.id, on: 'enter' },
    nodes: [{ id: 'hello', type: 'send', channel: 'webhook', webhook: { url: `${receiver.url}?k=journey` } }],
  });
  journeyId = journey.id;
  await api('POST', `/v1/journeys/${journeyId}/activate`);
  await new Promise((r) => setTimeout(r, 1500)); // activation reloads definitions every 250 ms
  const res = await fetch(`${running.urls.ingest}/v1/batch`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({
      batch: PEOPLE.map((userId) => ({ type: 'identify', userId, traits: { plan: 'ledger' } })),
    }),
  });
  expect(res.status).toBe(200);
  await eventually(
    'every campaign and journey send in the ledger',
    async () => {
      const [c, j] = await Promise.all([
        api('GET', `/v1/ledger?campaignId=${campaignId}&outcome=sent&limit=1000`),
        api('GET', `/v1/ledger?journeyId=${journeyId}&outcome=sent&limit=1000`),
      ]);
      return c.items.length === PEOPLE.length && j.items.length === PEOPLE.length;
    },
    90_000,
    500,
  );
  // a change to audit: a new name and URL (the secret is kept)
  await api('PUT', `/v1/campaigns/${campaignId}`, {
    name: 'Ledger welcome v2',
    segmentId: seg.id,
    on: 'enter',
    channel: 'webhook',
    webhook: { url: `${receiver.url}?k=campaign2` },
  });
}, 240_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await running?.stop();
  await receiver?.close();
});

describe('the ledger and the audit log in the console', () => {
  it('filters send decisions, pages with Load more (none repeated, none missing) and downloads the CSV', async () => {
    await page.goto(`${queryUrl}/console`);
    await page.getByLabel('Admin key', { exact: true }).fill(cfg.keys.adminKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Segments' }).waitFor();
    await page.getByRole('link', { name: 'Ledger' }).click();
    await page.getByRole('heading', { name: 'Ledger' }).waitFor();

    const filters = page.getByRole('form', { name: 'Filter send decisions' });
    await filters
      .getByLabel('Campaign or journey', { exact: true })
      .selectOption({ label: 'Ledger welcome v2' });
    await filters.getByLabel('Outcome', { exact: true }).selectOption('sent');
    await filters.getByLabel('Rows per page', { exact: true }).selectOption('25');
    await filters.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(status).toBe('Showing the newest 25 decisions; more are older.');
    expect(new URL(page.url()).hash).toBe(`#/ledger?campaignId=${campaignId}&outcome=sent&limit=25`);
    await checkViewports('ledger');

    // keyboard: Load more is a button; focus moves to the first row it added
    await page.getByRole('button', { name: 'Load more' }).focus();
    await page.keyboard.press('Enter');
    await expect.poll(status).toBe('Showing the newest 50 decisions; more are older.');
    await expect.poll(async () => (await focused()).tag).toBe('TR');
    expect((await focused()).text).toContain((await column(3))[25]);
    await page.getByRole('button', { name: 'Load more' }).click();
    await expect.poll(status).toBe('Showing all 55 decisions.');
    await expect(page.getByRole('button', { name: 'Load more' }).count()).resolves.toBe(0);

    // every send exactly once: the ledger's profile ids of the 55 people, newest first
    const shown = await column(3);
    expect(shown).toHaveLength(55);
    expect(new Set(shown).size).toBe(55);
    const all = await api('GET', `/v1/ledger?campaignId=${campaignId}&outcome=sent&limit=1000`);
    expect([...shown].sort()).toEqual(all.items.map((r) => r.profileId).sort());
    const t = await times();
    expect(t).toEqual([...t].sort().reverse());
    expect(new Set(await column(5))).toEqual(new Set(['sent']));
    expect(new Set(await column(8))).toEqual(new Set(['200']));
    // the campaign is named and linked; the profile links to its page
    await page.locator('table tbody tr').first().getByRole('link', { name: 'Ledger welcome v2' }).waitFor();
    expect(await page.locator('table tbody tr td:nth-child(3) a').first().getAttribute('href')).toBe(
      `#/profiles/${encodeURIComponent(shown[0]!)}`,
    );

    // the CSV: fetched with the admin key, the same filters, every row
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Download CSV' }).click();
    const file = await download;
    expect(file.suggestedFilename()).toMatch(/^ledger-.*\.csv$/);
    const lines = readFileSync((await file.path())!, 'utf8')
      .split('\r\n')
      .filter(Boolean);
    expect(lines[0]).toBe(
      'at,campaign_id,campaign_version,profile_id,channel,outcome,reason,attempt,status_code,latency_ms,segment_id,send_key,provider_id',
    );
    const rows = lines.slice(1).map((l) => l.split(','));
    expect(rows).toHaveLength(55);
    expect(rows.map((r) => r[3]).sort()).toEqual([...shown].sort());
    expect(rows.every((r) => r[1] === campaignId && r[5] === 'sent' && r[8] === '200')).toBe(true);
  });

  it('filters by journey, by person and by time; a journey send names its step', async () => {
    const filters = page.getByRole('form', { name: 'Filter send decisions' });
    await filters
      .getByLabel('Campaign or journey', { exact: true })
      .selectOption({ label: 'Ledger journey' });
    await filters.getByLabel('Outcome', { exact: true }).selectOption('');
    await filters.getByLabel('Rows per page', { exact: true }).selectOption('100');
    await filters.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(() => new URL(page.url()).hash).toBe(`#/ledger?journeyId=${journeyId}&limit=100`);
    await expect.poll(async () => (await column(2))[0]).toMatch(/^Ledger journey\s+step hello v1$/);
    await expect.poll(status).toBe('Showing all 55 decisions.');

    // one person: their campaign send and their journey send
    await filters.getByLabel('Campaign or journey', { exact: true }).selectOption('');
    await filters.getByLabel('Person by', { exact: true }).selectOption('userId');
    await filters.getByLabel('Person', { exact: true }).fill('led-07');
    await filters.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(status).toBe('Showing all 2 decisions.');
    expect((await column(2)).map((c) => c.replace(/\s+/g, ' ')).sort()).toEqual([
      'Ledger journey step hello v1',
      'Ledger welcome v2',
    ]);
    // a range that holds none of them: the empty state
    await filters.getByLabel('From', { exact: true }).fill('2030-01-01T00:00');
    await filters.getByLabel('To (exclusive)', { exact: true }).fill('2030-01-02T00:00');
    await filters.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByText('No send decisions match').waitFor();
    // a range around now: both again
    const local = (ms: number) => {
      const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
      return d.toISOString().slice(0, 16);
    };
    await filters.getByLabel('From', { exact: true }).fill(local(Date.now() - 3_600_000));
    await filters.getByLabel('To (exclusive)', { exact: true }).fill(local(Date.now() + 3_600_000));
    await filters.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(status).toBe('Showing all 2 decisions.');
    // a bad range is the API's 400, shown
    await filters.getByLabel('From', { exact: true }).fill(local(Date.now() + 7_200_000));
    await filters.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByRole('alert').filter({ hasText: 'from: must be before to' }).waitFor();
    // Clear: no filters, in the form and the address; the newest of all 110 sends
    await filters.getByRole('button', { name: 'Clear' }).click();
    await expect.poll(() => new URL(page.url()).hash).toBe('#/ledger');
    expect(await filters.getByLabel('Person', { exact: true }).inputValue()).toBe('');
    expect(await filters.getByLabel('From', { exact: true }).inputValue()).toBe('');
    await expect.poll(status).toBe('Showing the newest 50 decisions; more are older.');
  });

  it('lists a journey’s steps, and the campaign, journey and profile screens link to their rows', async () => {
    // from the journey's screen to its steps
    await page.goto(`${queryUrl}/console#/journeys/${journeyId}`);
    await page.getByRole('heading', { name: 'Ledger journey' }).waitFor();
    await page.getByRole('link', { name: 'Its steps in the ledger' }).click();
    await page.getByRole('link', { name: 'Journey steps', exact: true }).waitFor();
    const steps = page.getByRole('form', { name: 'Filter journey steps' });
    await expect.poll(() => steps.getByLabel('Journey', { exact: true }).inputValue()).toBe(journeyId);
    await steps.getByLabel('Step', { exact: true }).selectOption('entered');
    await steps.getByLabel('Rows per page', { exact: true }).selectOption('100');
    await steps.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(status).toBe('Showing all 55 steps.');
    expect(new Set(await column(4))).toEqual(new Set(['entered']));
    expect(new Set(await column(6)).size).toBe(55);
    await checkViewports('ledger-steps');

    // from the journey's screen to its sends
    await page.goto(`${queryUrl}/console#/journeys/${journeyId}`);
    await page.getByRole('link', { name: 'Its sends in the ledger' }).click();
    await expect.poll(status).toBe('Showing the newest 50 decisions; more are older.');
    expect(new Set((await column(2)).map((c) => c.replace(/\s+/g, ' ')))).toEqual(
      new Set(['Ledger journey step hello v1']),
    );

    // from the campaign's screen to its sends
    await page.goto(`${queryUrl}/console#/campaigns/${campaignId}`);
    await page.getByRole('heading', { name: 'Ledger welcome v2' }).waitFor();
    await page.getByRole('link', { name: 'Every decision in the ledger' }).click();
    await expect.poll(status).toBe('Showing the newest 50 decisions; more are older.');
    expect(new Set(await column(2))).toEqual(new Set(['Ledger welcome v2']));

    // from a profile's row to the profile, and from there to its sends
    const pid = (await column(3))[0]!;
    await page.locator('table tbody tr').first().getByRole('link', { name: pid }).click();
    await page.getByRole('heading', { name: /^led-\d\d$/ }).waitFor();
    await page.getByRole('link', { name: 'Their sends in the ledger' }).click();
    await expect.poll(status).toBe('Showing all 2 decisions.');
    expect(new Set(await column(3))).toEqual(new Set([pid]));
  });

  it('shows the audit log: who changed what, and a changed campaign’s fields before and after', async () => {
    await page.goto(`${queryUrl}/console#/campaigns/${campaignId}`);
    await page.getByRole('link', { name: 'Audit history' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    await expect.poll(status).toBe('Showing all 2 changes.');
    const entries = page.locator('table.audit > tbody > tr.entry');
    expect(await entries.locator('td:nth-child(3)').allTextContents()).toEqual(['update', 'create']);
    // this browser's key is the actor
    await expect
      .poll(() => entries.first().locator('td:nth-child(2)').textContent())
      .toMatch(/^key:[0-9a-f]{12} \(you\)$/);

    // keyboard: the update's diff opens from its button
    const show = entries.first().getByRole('button', { name: 'Show changes' });
    await show.focus();
    await page.keyboard.press('Enter');
    const diff = page.getByTestId('audit-diff');
    await diff.waitFor();
    expect(
      await entries.first().getByRole('button', { name: 'Hide changes' }).getAttribute('aria-expanded'),
    ).toBe('true');
    const changed = await diff
      .locator('tbody tr.d-changed')
      .evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
    const byField = Object.fromEntries(changed.map((r) => [r[0], r]));
    expect(byField.name).toEqual(['name', 'changed', '"Ledger welcome"', '"Ledger welcome v2"']);
    expect(byField['webhook.url']).toEqual([
      'webhook.url',
      'changed',
      JSON.stringify(`${receiver.url}?k=campaign`),
      JSON.stringify(`${receiver.url}?k=campaign2`),
    ]);
    expect(byField.version).toEqual(['version', 'changed', '1', '2']);
    expect(Object.keys(byField)).not.toContain('webhook.secret');
    expect(await diff.getByTestId('diff-counts').textContent()).toMatch(
      /^\d+ changed · 0 added · 0 removed · \d+ unchanged$/,
    );
    // unchanged fields on request: the secret, masked
    await diff.getByLabel('Show unchanged fields').check();
    const kept = diff.locator('tr.d-same', { hasText: 'webhook.secret' });
    await kept.waitFor();
    expect(await kept.locator('th, td').allTextContents()).toEqual([
      'webhook.secret',
      'unchanged',
      '"[redacted]"',
      '"[redacted]"',
    ]);
    await checkViewports('audit-diff');
    expect(await page.content()).not.toContain(secret);

    // the create: every field added
    await entries.nth(1).getByRole('button', { name: 'Show changes' }).click();
    await page
      .getByTestId('audit-diff')
      .nth(1)
      .getByTestId('diff-counts')
      .filter({ hasText: /^0 changed · \d+ added · 0 removed · 0 unchanged$/ })
      .waitFor();
  });

  it('filters the audit log and pages through it with Load more', async () => {
    // the three definitions, each created: by type, paged two at a time (the address carries the page size)
    await page.goto(`${queryUrl}/console#/audit?action=create&limit=2`);
    await expect.poll(status).toBe('Showing the newest 2 changes; more are older.');
    await page.getByRole('button', { name: 'Load more' }).click();
    await expect.poll(status).toBe('Showing all 3 changes.');
    const types = await page.locator('table.audit > tbody > tr.entry td:nth-child(4)').allTextContents();
    expect(types.map((t) => t.split(' ')[0]).sort()).toEqual(['campaign', 'journey', 'segment']);
    const filters = page.getByRole('form', { name: 'Filter the audit log' });
    await filters.getByLabel('Entity type', { exact: true }).selectOption('journey');
    await filters.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(status).toBe('Showing all 1 change.');
    // the journey's own history link
    await page
      .locator('table.audit > tbody > tr.entry')
      .first()
      .getByRole('link', { name: /^History of journey/ })
      .click();
    await expect
      .poll(() => new URL(page.url()).hash)
      .toBe(`#/audit?entityType=journey&entityId=${journeyId}`);
    // its create and its activation
    await expect.poll(status).toBe('Showing all 2 changes.');
    await checkViewports('audit');
    expect(blocked).toEqual([]);
    expect(pageErrors, pageErrors.join('\n')).toEqual([]);
  });
});
