// The marketer console in headless Chromium against the real services, used as a marketer
// would: sign in, build a segment from nothing with the visual builder (trait, event count
// with a property filter, a nested not/or group with segment membership), watch it fill
// while events arrive through ingest, create a webhook campaign, see its sends, pause and
// resume it, find a profile and read its timeline, run a funnel and download its CSV, and
// read the live view.
// Every screen is checked at 1280×800 and 390×844 for horizontal overflow, and nothing is
// fetched from anywhere but the query service.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signWebhook } from '../../activation/webhook/sign-webhook.ts';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const VIEWPORTS = [
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
];

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let queryUrl: string;
const blocked: string[] = [];
const pageErrors: string[] = [];

async function ingest(path: string, body: unknown) {
  const res = await fetch(`${running.urls.ingest}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
}

/** A buyer: identify with a plan, view a product, order in a currency. */
async function buyer(userId: string, plan: string, currency: string) {
  await ingest('/v1/identify', { userId, traits: { plan, email: `${userId}@example.com` } });
  await ingest('/v1/track', { userId, event: 'Viewed Product', properties: { sku: 'A1' } });
  await ingest('/v1/track', { userId, event: 'Order Completed', properties: { currency, total: 30 } });
}

/** The page fits both viewports without horizontal scrolling; screenshots for review. */
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

const text = (selector: string) => page.locator(selector).first().textContent({ timeout: 5000 });

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
    // failed API calls the test provokes on purpose log a resource error; anything else counts
    if (msg.type() === 'error' && !/status of 4\d\d/.test(msg.text())) pageErrors.push(msg.text());
  });
});

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await running?.stop();
  await receiver?.close();
});

describe('the marketer console', () => {
  it('is served at /console with its modules, from the query service only', async () => {
    const res = await fetch(`${queryUrl}/console`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    for (const path of [
      '/console/vendor/preact.mjs',
      '/console/vendor/hooks.mjs',
      '/console/vendor/htm.mjs',
      '/console/app/main.js',
    ]) {
      const r = await fetch(`${queryUrl}${path}`);
      expect(r.status, path).toBe(200);
      expect(r.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    }
    expect(await (await fetch(`${queryUrl}/console/vendor/hooks.mjs`)).text()).not.toContain('from"preact"');
    expect((await fetch(`${queryUrl}/console/app/..%2F..%2Fapp.ts`)).status).toBe(404);
    expect((await fetch(`${queryUrl}/console/vendor/constructor`)).status).toBe(404);
    const slash = await fetch(`${queryUrl}/console/`, { redirect: 'manual' });
    expect([slash.status, slash.headers.get('location')]).toEqual([301, '/console']);
  });

  it('ships at most 250 KB of JavaScript gzipped', async () => {
    // every module the console can load: its own files and the vendored libraries
    const own = readdirSync(fileURLToPath(new URL('../../query/console/', import.meta.url))).filter((f) =>
      f.endsWith('.js'),
    );
    const paths = [
      ...own.map((f) => `/console/app/${f}`),
      '/console/vendor/preact.mjs',
      '/console/vendor/hooks.mjs',
      '/console/vendor/htm.mjs',
    ];
    let gz = 0;
    for (const path of paths) {
      const r = await fetch(`${queryUrl}${path}`);
      expect(r.status, path).toBe(200);
      gz += gzipSync(Buffer.from(await r.arrayBuffer()), { level: 9 }).length;
    }
    expect(own.length).toBeGreaterThan(5);
    expect(gz).toBeGreaterThan(5_000);
    expect(gz).toBeLessThanOrEqual(250 * 1024);
  });

  it('signs in with an admin key and refuses a wrong one', async () => {
    await page.goto(`${queryUrl}/console`);
    await page.getByLabel('Admin key', { exact: true }).fill('not-the-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('That admin key is not valid.').waitFor();
    await checkViewports('signin');
    await page.getByLabel('Admin key', { exact: true }).fill(cfg.keys.adminKey);
    await page.getByLabel('Admin key', { exact: true }).press('Enter'); // the keyboard submits the form
    await page.getByRole('heading', { name: 'Segments' }).waitFor();
    await page.getByText('No segments yet').waitFor();
    await checkViewports('segments-empty');
    // kept for the browser session only
    const stored = await page.evaluate(() =>
      (
        globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }
      ).sessionStorage.getItem('cdp.adminKey'),
    );
    expect(stored).toBe(cfg.keys.adminKey);
  });

  it('builds a segment from nothing, shows its JSON Logic and estimate, and fills live as events arrive', async () => {
    await page.getByRole('link', { name: 'Build your first segment' }).click();
    await page.getByRole('heading', { name: 'New segment' }).waitFor();
    await page.getByLabel('Segment name', { exact: true }).fill('EUR buyers on pro');
    await expect.poll(() => text('[data-testid=rule-json]')).toBe('');
    await page.getByText('add at least one condition').waitFor();

    await page.getByRole('button', { name: '+ Trait' }).click();
    const traitCond = page.locator('fieldset.condition.kind-trait').first();
    await traitCond.getByLabel('Trait', { exact: true }).fill('plan');
    await traitCond.getByLabel('Value', { exact: true }).fill('pro');
    await page.getByRole('button', { name: '+ Event count' }).first().click();
    const eventCond = page.locator('fieldset.condition.kind-event').first();
    await eventCond.getByLabel('Event name', { exact: true }).fill('Order Completed');
    await eventCond.getByLabel('Times', { exact: true }).fill('1');
    await eventCond.getByLabel('In the last', { exact: true }).fill('7');
    await eventCond.getByLabel('Unit', { exact: true }).selectOption('d');
    await eventCond.getByRole('button', { name: '+ Property filter' }).click();
    await eventCond.getByLabel('Property', { exact: true }).fill('currency');
    await eventCond.getByLabel('Value', { exact: true }).fill('EUR');

    const rule = {
      and: [
        { '==': [{ var: 'traits.plan' }, 'pro'] },
        { '>=': [{ event_count: ['Order Completed', '7d', { '==': [{ var: 'currency' }, 'EUR'] }] }, 1] },
      ],
    };
    await expect
      .poll(async () => JSON.parse((await text('[data-testid=rule-json]')) || 'null'))
      .toEqual(rule);
    // the live estimate from the preview API: no profiles yet, so exactly 0
    await expect.poll(() => text('.estimate-size')).toBe('0');
    await checkViewports('builder');
    await page.getByRole('button', { name: 'Save segment' }).click();
    await page.getByRole('heading', { name: 'Segments' }).waitFor();
    const card = page.locator('li.segment-card', { hasText: 'EUR buyers on pro' });
    await card.waitFor();
    await expect.poll(() => card.locator('.member-count').textContent()).toBe('0');

    // three pro buyers in EUR enter; a USD buyer and a free-plan buyer do not
    await buyer('buyer-1', 'pro', 'EUR');
    await buyer('buyer-2', 'pro', 'EUR');
    await buyer('buyer-3', 'pro', 'EUR');
    await buyer('usd-1', 'pro', 'USD');
    await buyer('free-1', 'free', 'EUR');
    await eventually(
      'the list showing 3 members',
      async () => (await card.locator('.member-count').textContent()) === '3',
      30_000,
      200,
    );
    await expect.poll(() => card.locator('.badge').textContent()).toBe('ready');
    await card.getByText('Latest entries').click();
    for (const u of ['buyer-1', 'buyer-2', 'buyer-3']) await card.getByRole('link', { name: u }).waitFor();
    await checkViewports('segments-live');
  });

  it('builds a second segment with a not/or group and segment membership; it fills by backfill', async () => {
    await page.getByRole('link', { name: 'New segment' }).click();
    await page.getByLabel('Segment name', { exact: true }).fill('Not EUR buyers, or free');
    await page.getByRole('button', { name: '+ Group' }).click();
    const group = page.locator('fieldset.group fieldset.group').first();
    await group.getByLabel('Match', { exact: true }).selectOption('or');
    await group.getByRole('button', { name: '+ Segment membership' }).click();
    const seg = group.locator('fieldset.condition.kind-segment');
    await seg.getByLabel('Membership', { exact: true }).selectOption('in');
    await seg.getByLabel('Segment', { exact: true }).selectOption({ label: 'EUR buyers on pro' });
    await group.getByRole('button', { name: '+ Trait' }).click();
    const plan = group.locator('fieldset.condition.kind-trait');
    await plan.getByLabel('Trait', { exact: true }).fill('plan');
    await plan.getByLabel('Comparison', { exact: true }).selectOption('!=');
    await plan.getByLabel('Value', { exact: true }).fill('free');
    // keyboard: the "Not" checkbox toggles with the space bar
    await group.getByLabel('Not: the group must not hold', { exact: true }).focus();
    await page.keyboard.press('Space');
    const segs = (await (
      await fetch(`${queryUrl}/v1/segments`, { headers: { authorization: `Bearer ${cfg.keys.adminKey}` } })
    ).json()) as { segments: Array<{ id: string; name: string }> };
    const eurId = segs.segments.find((s) => s.name === 'EUR buyers on pro')!.id;
    const rule = { '!': [{ or: [{ in_segment: [eurId] }, { '!=': [{ var: 'traits.plan' }, 'free'] }] }] };
    await expect
      .poll(async () => JSON.parse((await text('[data-testid=rule-json]')) || 'null'))
      .toEqual(rule);
    // free-1 is the only profile outside both: the estimate over the 5 profiles says 1
    await expect.poll(() => text('.estimate-size'), { timeout: 15_000 }).toBe('1');
    await page.getByRole('button', { name: 'Save segment' }).click();
    const card = page.locator('li.segment-card', { hasText: 'Not EUR buyers, or free' });
    await eventually(
      'the backfilled segment with 1 member',
      async () => (await card.locator('.member-count').textContent()) === '1',
      30_000,
      200,
    );
    // it opens in the builder again, as it was built
    await card.getByRole('link', { name: 'Not EUR buyers, or free' }).click();
    await page.getByRole('heading', { name: /Edit segment/ }).waitFor();
    await expect
      .poll(async () => JSON.parse((await text('[data-testid=rule-json]')) || 'null'))
      .toEqual(rule);
    await page.getByRole('link', { name: 'Back to segments' }).click();
  });

  it('creates a webhook campaign, sees its sends, pauses and resumes it', async () => {
    await page.getByRole('link', { name: 'Campaigns' }).click();
    await page.getByText('No campaigns yet').waitFor();
    await page.getByRole('link', { name: 'Create a campaign' }).click();
    await page.getByLabel('Campaign name', { exact: true }).fill('Thank EUR buyers');
    await page.getByLabel('Segment', { exact: true }).selectOption({ label: 'EUR buyers on pro' });
    await page.getByLabel('When a profile', { exact: true }).selectOption('enter');
    await page.getByLabel('Channel', { exact: true }).selectOption('webhook');
    // the template editor renders a preview for a chosen profile (email here; webhook saved)
    await page.getByLabel('Channel', { exact: true }).selectOption('email');
    await page.getByLabel('Subject (Liquid)', { exact: true }).fill('Hi {{ traits.plan | upcase }} buyer');
    await page.getByLabel('Text body (Liquid)', { exact: true }).fill('Thanks, {{ profile.userId }}');
    await page.getByLabel('Render for the profile with userId', { exact: true }).fill('buyer-1');
    await page.getByRole('button', { name: 'Render preview' }).click();
    await page.locator('.rendered', { hasText: 'Hi PRO buyer' }).waitFor();
    await page.locator('.rendered', { hasText: 'Thanks, buyer-1' }).waitFor();
    await page.getByLabel('Subject (Liquid)', { exact: true }).fill('Hi {{ traits.plan | nosuchfilter }}');
    await page.getByRole('button', { name: 'Render preview' }).click();
    await page.getByText(/^settings\.subject: /).waitFor();
    // email only: the open and click tracking switches
    await page.getByLabel('Track clicks (links go through the ingest host)', { exact: true }).check();
    expect(await page.getByLabel('Track opens (a 1×1 image)', { exact: true }).isChecked()).toBe(false);
    await checkViewports('campaign-editor-email');
    await page.getByLabel('Channel', { exact: true }).selectOption('webhook');
    expect(await page.getByText('Track opens (a 1×1 image)').count()).toBe(0);
    await page.getByLabel('Webhook URL', { exact: true }).fill(receiver.url);
    await checkViewports('campaign-editor');
    await page.getByRole('button', { name: 'Create campaign' }).click();
    await page.getByRole('heading', { name: 'Thank EUR buyers' }).waitFor();
    await expect.poll(() => text('[data-testid=campaign-status]')).toBe('active');
    // the signing secret the server generated is shown this once; the API never answers it again
    const secret = await page.getByRole('textbox', { name: 'Signing secret' }).inputValue();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    const campaignId = decodeURIComponent(new URL(page.url()).hash.split('/')[2]!);
    const got = await fetch(`${queryUrl}/v1/campaigns/${campaignId}`, {
      headers: { authorization: `Bearer ${cfg.keys.adminKey}` },
    });
    const gotText = await got.text();
    expect(gotText).not.toContain('whsec_');
    expect(JSON.parse(gotText).webhook).toEqual({ url: receiver.url, secretSet: true });
    // an edit leaves the write-only field empty: the stored secret is kept (deliveries below)
    await page.getByRole('link', { name: 'Edit', exact: true }).click();
    await page.getByRole('heading', { name: 'Edit campaign' }).waitFor();
    await expect.poll(() => page.getByLabel('Webhook URL', { exact: true }).inputValue()).toBe(receiver.url);
    expect(
      await page
        .getByLabel('Signing secret (write-only; empty keeps the stored one or generates one)', {
          exact: true,
        })
        .inputValue(),
    ).toBe('');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'Thank EUR buyers' }).waitFor();
    expect(await page.getByRole('textbox', { name: 'Signing secret' }).count()).toBe(0);
    await expect.poll(() => text('[data-testid=stat-sent]')).toBe('0');

    // activation reloads definitions every 250 ms; give it a few rounds before new entries
    await new Promise((r) => setTimeout(r, 1500));
    await buyer('buyer-4', 'pro', 'EUR');
    await buyer('buyer-5', 'pro', 'EUR');
    await eventually(
      '2 sends in the stats',
      async () => (await text('[data-testid=stat-sent]')) === '2',
      45_000,
      250,
    );
    expect(receiver.deliveries).toHaveLength(2);
    const bodies = receiver.deliveries.map((d) => JSON.parse(d.body) as { userId: string; type: string });
    expect(bodies.map((b) => b.userId).sort()).toEqual(['buyer-4', 'buyer-5']);
    for (const d of receiver.deliveries)
      expect(d.headers['webhook-signature']).toBe(
        signWebhook(secret, String(d.headers['webhook-id']), Number(d.headers['webhook-timestamp']), d.body),
      );
    await checkViewports('campaign-detail');

    await page.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => text('[data-testid=campaign-status]')).toBe('paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => text('[data-testid=campaign-status]')).toBe('active');
  });

  it('finds a profile and shows traits, identities, segments and one timeline of events and sends', async () => {
    await page.getByRole('link', { name: 'Profiles' }).click();
    await page.getByLabel('Find by', { exact: true }).selectOption('userId');
    await page.getByLabel('Value', { exact: true }).fill('nobody');
    await page.getByRole('button', { name: 'Find' }).click();
    await page.getByText('no profile with userId "nobody"').waitFor();
    await page.getByLabel('Value', { exact: true }).fill('buyer-4');
    await page.getByRole('button', { name: 'Find' }).click();
    await page.getByRole('heading', { name: 'buyer-4' }).waitFor();
    await page.getByText('buyer-4@example.com').first().waitFor();
    await page
      .locator('.panel', { hasText: 'Segments' })
      .getByRole('link', { name: 'EUR buyers on pro' })
      .waitFor();
    await eventually(
      'the send and the order in the timeline',
      async () => {
        await page.reload();
        await page.locator('ol.timeline').waitFor({ timeout: 5000 });
        const items = await page.locator('ol.timeline li').allTextContents();
        return items.some((t) => t.includes('sent')) && items.some((t) => t.includes('Order Completed'));
      },
      30_000,
      500,
    );
    await checkViewports('profile');
  });

  it('runs a funnel, draws it and downloads the CSV', async () => {
    await page.getByRole('link', { name: 'Analytics' }).click();
    await page.getByLabel('Step 1 event', { exact: true }).fill('Viewed Product');
    await page.getByLabel('Step 2 event', { exact: true }).fill('Order Completed');
    await page.getByRole('button', { name: 'Run' }).click();
    await page.locator('svg.chart').waitFor();
    const rows = await page.locator('table tbody tr').allTextContents();
    expect(rows).toHaveLength(2);
    expect(rows[0]).toContain('Viewed Product');
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Download CSV' }).click();
    const csv = readFileSync((await (await download).path())!, 'utf8');
    expect(csv.split('\r\n')[0]).toBe('step,event,count,conversionRate');
    expect(csv).toContain('Order Completed');
    await checkViewports('funnel');
  });

  it('runs retention (chart, heat table, CSV) and shows attribution’s empty state', async () => {
    await page.getByRole('link', { name: 'Retention' }).click();
    await page.getByLabel('Cohort event', { exact: true }).fill('Viewed Product');
    await page.getByLabel('Return event', { exact: true }).fill('Order Completed');
    await page.getByLabel('Period', { exact: true }).selectOption('day');
    await page.getByLabel('Periods', { exact: true }).fill('2');
    await page.getByRole('button', { name: 'Run' }).click();
    await page.locator('table.heat tbody tr').first().waitFor();
    // everyone viewed and ordered on the same day: the cohort returned in period 0
    const cells = await page.locator('table.heat tbody tr').first().locator('td').allTextContents();
    expect(cells).toEqual(['7', '7', '0']);
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Download CSV' }).click();
    const csv = readFileSync((await (await download).path())!, 'utf8');
    expect(csv.split('\r\n')[0]).toBe('start,size,returned_0,returned_1');
    await checkViewports('retention');

    await page.getByRole('link', { name: 'Attribution' }).click();
    await page.getByLabel('Conversion event', { exact: true }).fill('Order Completed');
    await page.getByRole('button', { name: 'Run' }).click();
    // no event carried a campaign: every conversion is unattributed
    await page.getByText('No attributed conversions in this range (7 without a touch).').waitFor();
    // an API error is shown, not swallowed
    await page.getByLabel('Lookback', { exact: true }).fill('forever');
    await page.getByRole('button', { name: 'Run' }).click();
    await page.getByRole('alert').filter({ hasText: 'lookback' }).waitFor();
  });

  it('shows the live view: event rate, stage latencies and consumer lag caught up', async () => {
    await page.getByRole('link', { name: 'Live' }).click();
    await page.getByRole('heading', { name: 'Live' }).waitFor();
    await page.locator('[data-testid=events-rate]').waitFor();
    const history = page.locator('tr', { hasText: 'event received by ingest' });
    expect(Number((await history.locator('td').first().textContent())?.replace(/\D/g, ''))).toBeGreaterThan(
      0,
    );
    const processorLag = page.locator('[data-testid=lag] tr', {
      hasText: `${cfg.kafka.topicPrefix}.cdp-processor`,
    });
    await eventually(
      'the processor group caught up',
      async () => (await processorLag.locator('td').last().textContent()) === '0',
      30_000,
      500,
    );
    await checkViewports('live');
    expect(blocked).toEqual([]);
    expect(pageErrors, pageErrors.join('\n')).toEqual([]);
  });
});
