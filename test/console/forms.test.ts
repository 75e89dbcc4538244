// The console's forms, landing pages, exports and attribution with sends, in headless
// Chromium against the real services: a marketer builds a form with typed fields and a
// consent box, sees the server's 400 next to the field it names, saves, copies the embed
// code and pauses the form; builds a landing page with two weighted variants embedding it,
// publishes it, and reads views, submissions and conversion per variant once visitors
// (through the ingest host) have viewed and submitted; starts a segment export and downloads
// the CSV with the admin key (its rows checked); runs attribution counting webhook sends as
// touches. Every screen is checked at 1280×800 and 390×844 for horizontal overflow, and
// nothing is fetched from anywhere but the query service.
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { signFormToken } from '../../ingest/form-token.ts';
import type { Config } from '../../runtime/config.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const VIEWPORTS = [
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
];
const BUYERS = ['fb-1', 'fb-2', 'fb-3', 'fb-4'];

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let queryUrl: string;
let segmentId: string;
let campaignId: string;
let formId: string;
const blocked: string[] = [];
const pageErrors: string[] = [];
const api = adminApi(
  () => queryUrl,
  () => cfg,
);
const ingest = ingestApi(
  () => running.urls.ingest!,
  () => cfg,
);

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

const textOf = (l: Locator) => l.textContent({ timeout: 10_000 });

/** The focused element's tag and its data-key (the field a server error named). */
const focused = () =>
  page.evaluate(() => {
    const el = (
      globalThis as unknown as {
        document: { activeElement: { tagName: string; getAttribute(n: string): string } };
      }
    ).document.activeElement;
    return { tag: el.tagName, key: el.getAttribute('data-key') };
  });

/** The focused element's text. */
const focusedText = () =>
  page.evaluate(
    () =>
      (globalThis as unknown as { document: { activeElement: { textContent: string } } }).document
        .activeElement.textContent,
  );

beforeAll(async () => {
  cfg = testConfig({
    CDP_FORMS_MIN_FILL_SECONDS: '1',
    CDP_FORMS_IP_RATE_PER_MINUTE: '100000',
    CDP_FORMS_FORM_RATE_PER_MINUTE: '100000',
  });
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

  // buyers enter a segment; a webhook campaign sends to each; later they convert
  const seg = await api('POST', '/v1/segments', {
    name: 'Form buyers',
    rule: { '==': [{ var: 'traits.plan' }, 'formbuyer'] },
  });
  expect(seg.status, JSON.stringify(seg.body)).toBe(201);
  segmentId = seg.body.id;
  const campaign = await api('POST', '/v1/campaigns', {
    name: 'Buyer welcome',
    segmentId,
    on: 'enter',
    channel: 'webhook',
    webhook: { url: receiver.url },
  });
  expect(campaign.status, JSON.stringify(campaign.body)).toBe(201);
  campaignId = campaign.body.id;
  await new Promise((r) => setTimeout(r, 1500)); // activation reloads definitions every 250 ms
  for (const userId of BUYERS)
    await ingest('/v1/identify', { userId, traits: { plan: 'formbuyer', email: `${userId}@example.com` } });
  await eventually(
    'a campaign send per buyer in the ledger',
    async () => {
      const r = await api('GET', `/v1/ledger?campaignId=${campaignId}&outcome=sent&limit=100`);
      return r.status === 200 && r.body.items.length === BUYERS.length;
    },
    90_000,
    500,
  );
  for (const userId of BUYERS.slice(0, 3))
    await ingest('/v1/track', { userId, event: 'Trial Converted', properties: { revenue: 10 } });
}, 240_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await running?.stop();
  await receiver?.close();
});

describe('forms, landing pages, exports and attribution in the console', () => {
  it('builds a form with typed fields and a consent box, shows a 400 by its field, copies the embed code and pauses it', async () => {
    await page.goto(`${queryUrl}/console`);
    await page.getByLabel('Admin key', { exact: true }).fill(cfg.keys.adminKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Segments' }).waitFor();
    await page.getByRole('link', { name: 'Forms', exact: true }).click();
    await page.getByText('No forms yet').waitFor();
    await page.getByRole('link', { name: 'Create a form' }).click();
    await page.getByRole('heading', { name: 'New form' }).waitFor();

    await page.getByLabel('Form name', { exact: true }).fill('Newsletter');
    const f1 = page.getByRole('group', { name: 'Field 1', exact: true });
    await expect.poll(() => f1.getByLabel('Name', { exact: true }).inputValue()).toBe('email');
    await page.getByRole('button', { name: '+ Field' }).click();
    const f2 = page.getByRole('group', { name: 'Field 2', exact: true });
    await f2.getByLabel('Name', { exact: true }).fill('company');
    await f2.getByLabel('Label', { exact: true }).fill('Company');
    await f2.getByLabel('Trait', { exact: true }).fill('company_name');
    await f2.getByLabel('Pattern', { exact: true }).fill('(a+)+'); // refused by the server only
    await page.getByRole('button', { name: '+ Field' }).click();
    const f3 = page.getByRole('group', { name: 'Field 3', exact: true });
    await f3.getByLabel('Name', { exact: true }).fill('seats');
    await f3.getByLabel('Label', { exact: true }).fill('Team size');
    await f3.getByLabel('Type', { exact: true }).selectOption('number');
    await expect.poll(() => f3.getByLabel('Pattern', { exact: true }).count(), { timeout: 10_000 }).toBe(0); // not for a number
    await f3.getByLabel('Min', { exact: true }).fill('1');
    await f3.getByLabel('Max', { exact: true }).fill('500');
    await page.getByRole('button', { name: '+ Field' }).click();
    const f4 = page.getByRole('group', { name: 'Field 4', exact: true });
    await f4.getByLabel('Name', { exact: true }).fill('role');
    await f4.getByLabel('Label', { exact: true }).fill('Role');
    await f4.getByLabel('Type', { exact: true }).selectOption('select');
    await f4.getByLabel('Options', { exact: true }).fill('Marketing\nEngineering\n\nSales');
    await f4.getByLabel('Required', { exact: true }).check();
    // the fourth field moves up with the keyboard: role comes before seats
    await f4.getByRole('button', { name: 'Move field 4 (role) up' }).focus();
    await page.keyboard.press('Enter');
    await expect
      .poll(() =>
        page
          .getByRole('group', { name: 'Field 3', exact: true })
          .getByLabel('Name', { exact: true })
          .inputValue(),
      )
      .toBe('role');
    // focus follows the moved field, so Enter again moves it further
    const label = () =>
      page.evaluate(() =>
        (
          globalThis as unknown as { document: { activeElement: { getAttribute(n: string): string | null } } }
        ).document.activeElement.getAttribute('aria-label'),
      );
    await expect.poll(label).toBe('Move field 3 (role) up');
    await page.getByRole('button', { name: '+ Consent box' }).click();
    const c1 = page.getByRole('group', { name: 'Consent box 1', exact: true });
    await c1.getByLabel('Purpose', { exact: true }).fill('newsletter');
    await c1.getByLabel('Channel', { exact: true }).fill('email');
    await c1.getByLabel('Exact text shown', { exact: true }).fill('Send me the monthly newsletter by email.');
    await page.getByLabel('Success message', { exact: true }).fill('Thanks for subscribing!');
    // the preview shows the fields in order, as the visitor sees them (not to the keyboard)
    const preview = page.locator('.form-preview');
    await expect
      .poll(() => textOf(preview))
      .toBe('Email *CompanyRole *MarketingTeam sizeSend me the monthly newsletter by email.Submit');
    expect(await preview.getAttribute('aria-hidden')).toBe('true');
    expect(await preview.getAttribute('inert')).not.toBeNull();

    await page.getByRole('button', { name: 'Create form' }).click();
    // the server's 400 names fields[1].pattern: shown by that control, which gets focus
    const pattern = page
      .getByRole('group', { name: 'Field 2', exact: true })
      .getByLabel('Pattern', { exact: true });
    await expect.poll(() => pattern.getAttribute('aria-invalid'), { timeout: 10_000 }).toBe('true');
    await expect
      .poll(() => textOf(page.getByRole('group', { name: 'Field 2', exact: true }).locator('.field-error')), {
        timeout: 10_000,
      })
      .toContain('a repeated group with a quantifier inside is not allowed');
    await expect.poll(focused).toEqual({ tag: 'INPUT', key: 'fields[1].pattern' });
    // described by its error (a screen reader reads it with the control)
    const describedBy = (await pattern.getAttribute('aria-describedby'))!.split(' ');
    expect(await page.locator(`[id="${describedBy[0]}"]`).textContent()).toContain('repeated group');
    await expect
      .poll(() => page.getByRole('group', { name: 'Field 1', exact: true }).locator('.field-error').count(), {
        timeout: 10_000,
      })
      .toBe(0);
    await checkViewports('form-editor-error');
    expect((await api('GET', '/v1/forms')).body.forms).toEqual([]);

    await pattern.fill('[A-Za-z ]{2,40}');
    await page.getByRole('button', { name: 'Create form' }).click();
    await page.getByRole('heading', { name: 'Newsletter' }).waitFor();
    await expect.poll(() => textOf(page.getByTestId('form-status')), { timeout: 10_000 }).toBe('active');
    const forms = (await api('GET', '/v1/forms')).body.forms;
    expect(forms).toHaveLength(1);
    formId = forms[0].id;
    expect(forms[0]).toMatchObject({
      name: 'Newsletter',
      version: 1,
      status: 'active',
      fields: [
        { name: 'email', label: 'Email', type: 'email', required: true },
        {
          name: 'company',
          label: 'Company',
          type: 'text',
          trait: 'company_name',
          pattern: '[A-Za-z ]{2,40}',
        },
        {
          name: 'role',
          label: 'Role',
          type: 'select',
          required: true,
          options: ['Marketing', 'Engineering', 'Sales'],
        },
        { name: 'seats', label: 'Team size', type: 'number', min: 1, max: 500 },
      ],
      consents: [
        {
          name: 'consent1',
          purpose: 'newsletter',
          channel: 'email',
          text: 'Send me the monthly newsletter by email.',
        },
      ],
      success: { message: 'Thanks for subscribing!' },
    });
    expect(forms[0].fields[3]).not.toHaveProperty('pattern');

    // the embed code points at the configured public ingest host (CDP_INGEST_PUBLIC_URL; here
    // the default, as the test's port is chosen by the OS) until another is set in this browser
    await expect
      .poll(() => page.getByLabel('Embed code', { exact: true }).inputValue(), { timeout: 10_000 })
      .toContain(`<script src="${cfg.ingest.publicUrl}/v1/forms/embed.js"`);
    await expect
      .poll(() => page.getByLabel('Ingest host (public URL)', { exact: true }).inputValue())
      .toBe(cfg.ingest.publicUrl);
    // the hosted form is served by the ingest host set here
    await page.getByLabel('Ingest host (public URL)', { exact: true }).fill(running.urls.ingest!);
    await page.getByRole('button', { name: 'Use this host' }).click();
    await expect
      .poll(() => page.getByLabel('Embed code', { exact: true }).inputValue())
      .toBe(
        `<script src="${running.urls.ingest}/v1/forms/embed.js" data-workspace="${cfg.keys.workspace}" data-form="${formId}" async></script>`,
      );
    const hostedUrl = await page.getByLabel('Hosted form URL', { exact: true }).inputValue();
    const hosted = await fetch(hostedUrl, { headers: { accept: 'text/html' } });
    expect(hosted.status).toBe(200);
    expect(await hosted.text()).toContain('Send me the monthly newsletter by email.');
    expect((await fetch(`${running.urls.ingest}/v1/forms/embed.js`)).status).toBe(200);
    await checkViewports('form-detail');

    // an edit is a new version; the editor shows what was saved
    await page.getByRole('link', { name: 'Edit', exact: true }).click();
    await page.getByRole('heading', { name: 'Edit Newsletter' }).waitFor();
    await expect
      .poll(
        () =>
          page
            .getByRole('group', { name: 'Field 4', exact: true })
            .getByLabel('Max', { exact: true })
            .inputValue(),
        { timeout: 10_000 },
      )
      .toBe('500');
    await page.getByLabel('Success message', { exact: true }).fill('Thanks, welcome aboard!');
    await page.getByRole('button', { name: 'Save as a new version' }).click();
    await page.getByRole('heading', { name: 'Newsletter' }).waitFor();
    await page.getByText('Version 2 ·').waitFor();

    // pause (from the keyboard): the hosted form answers 409
    await page.getByRole('button', { name: 'Pause' }).focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => textOf(page.getByTestId('form-status')), { timeout: 10_000 }).toBe('paused');
    expect((await api('GET', `/v1/forms/${formId}`)).body.status).toBe('paused');
    // the ingest host picks the change up on its next definitions poll
    await eventually(
      'the paused form refused by the ingest host',
      async () => (await fetch(hostedUrl, { headers: { accept: 'text/html' } })).status === 409,
      20_000,
      200,
    );
    await page.getByRole('button', { name: 'Activate' }).click();
    await expect.poll(() => textOf(page.getByTestId('form-status')), { timeout: 10_000 }).toBe('active');
    await eventually(
      'the form served again',
      async () => (await fetch(hostedUrl, { headers: { accept: 'text/html' } })).status === 200,
      20_000,
      200,
    );
  });

  it('builds a landing page with two weighted variants, publishes it, and shows views, submissions and conversion per variant', async () => {
    await page.getByRole('link', { name: 'Pages', exact: true }).click();
    await page.getByRole('link', { name: 'Create a page' }).click();
    await page.getByRole('heading', { name: 'New landing page' }).waitFor();
    await page.getByLabel('Page name', { exact: true }).fill('Spring offer');
    await page.getByLabel('Slug', { exact: true }).fill('Spring Offer'); // refused: upper case and a space
    await page.getByLabel('Heading text', { exact: true }).fill('Spring offer A');
    await page.getByLabel('Form', { exact: true }).selectOption(formId);
    await page.getByLabel('A/B test: variants with their own blocks').check();
    const vb = page.getByRole('group', { name: 'Variant b', exact: true });
    await vb.getByLabel('Heading text', { exact: true }).fill('Spring offer B');
    await page.getByLabel('Variant 1 weight', { exact: true }).fill('70');
    await vb.getByLabel('Variant 2 weight', { exact: true }).fill('30');
    await vb.getByLabel('Variant b New block', { exact: true }).selectOption('button');
    await vb.getByRole('button', { name: '+ Add Variant b block' }).click();
    await vb.getByLabel('Button label', { exact: true }).fill('Read more');
    await vb.getByLabel('Button link', { exact: true }).fill('https://example.com/more');
    await vb.getByLabel('Variant b New block', { exact: true }).selectOption('image');
    await vb.getByRole('button', { name: '+ Add Variant b block' }).click();
    // a URL the browser takes as valid and the server refuses (not http(s))
    await vb.getByLabel('Image URL', { exact: true }).fill('javascript:alert(1)');
    await vb.getByLabel('Alt text', { exact: true }).fill('Spring hero');
    await vb.getByLabel('Width (optional)', { exact: true }).fill('640');
    await page.getByRole('button', { name: 'Create page' }).click();
    const slug = page.getByLabel('Slug', { exact: true });
    await expect.poll(() => slug.getAttribute('aria-invalid'), { timeout: 10_000 }).toBe('true');
    await expect.poll(focused).toEqual({ tag: 'INPUT', key: 'slug' });
    await slug.fill('spring-offer');
    await page.getByRole('button', { name: 'Create page' }).click();
    // an error deep in a variant's blocks is shown at that block's control
    const imageUrl = vb.getByLabel('Image URL', { exact: true });
    await expect.poll(() => imageUrl.getAttribute('aria-invalid'), { timeout: 10_000 }).toBe('true');
    await expect.poll(focused).toEqual({ tag: 'INPUT', key: 'variants[1].blocks[3].url' });
    expect(await textOf(vb.locator('.field-error'))).toContain('must be http or https');
    await checkViewports('page-editor-error');
    await imageUrl.fill('https://cdn.example.com/hero.png');
    await page.getByRole('button', { name: 'Create page' }).click();
    await page.getByRole('heading', { name: 'Spring offer' }).waitFor();
    await expect.poll(() => textOf(page.getByTestId('page-status')), { timeout: 10_000 }).toBe('draft');
    const pages = (await api('GET', '/v1/pages')).body.pages;
    expect(pages).toHaveLength(1);
    const pageId = pages[0].id as string;
    expect(pages[0]).toMatchObject({
      slug: 'spring-offer',
      variants: [
        {
          id: 'a',
          weight: 70,
          blocks: [
            { type: 'heading', text: 'Spring offer A' },
            { type: 'form', formId },
          ],
        },
        {
          id: 'b',
          weight: 30,
          blocks: [
            { type: 'heading', text: 'Spring offer B' },
            { type: 'form', formId },
            { type: 'button', label: 'Read more', url: 'https://example.com/more' },
            { type: 'image', url: 'https://cdn.example.com/hero.png', alt: 'Spring hero', width: 640 },
          ],
        },
      ],
    });

    await page.getByLabel('Ingest host (public URL)', { exact: true }).fill(running.urls.ingest!);
    await page.getByRole('button', { name: 'Use this host' }).click();
    await page.getByRole('button', { name: 'Publish' }).click();
    await expect.poll(() => textOf(page.getByTestId('page-status')), { timeout: 10_000 }).toBe('published');
    const url = (await page.getByTestId('page-url').getAttribute('href'))!;
    expect(url).toBe(`${running.urls.ingest}/p/${cfg.keys.workspace}/spring-offer`);
    await checkViewports('page-detail');

    // visitors through the ingest host: each sees a variant; one of each variant submits
    const shown = new Map<string, string>();
    for (let i = 0; i < 12; i++) {
      const anon = `visitor-${i}`;
      const res = await fetch(url, {
        headers: { accept: 'text/html', cookie: `ajs_anonymous_id=%22${anon}%22` },
      });
      expect(res.status).toBe(200);
      const body = await res.text();
      shown.set(anon, body.includes('Spring offer B') ? 'b' : 'a');
    }
    const count = (v: string) => [...shown.values()].filter((x) => x === v).length;
    const submitters = ['a', 'b'].flatMap((v) =>
      [...shown.keys()].filter((k) => shown.get(k) === v).slice(0, 1),
    );
    for (const anon of submitters) {
      const res = await fetch(`${running.urls.ingest}/v1/forms/${cfg.keys.workspace}/${formId}/submit`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({
          _token: signFormToken(cfg.forms.secret, cfg.keys.workspace, formId, Date.now() - 10_000),
          _pageId: pageId,
          _variant: shown.get(anon),
          anonymousId: anon,
          email: `${anon}@example.com`,
          role: 'Sales',
        }),
      });
      expect(res.status, await res.text()).toBe(200);
    }
    const expected = (v: string) => {
      const n = count(v);
      const s = submitters.some((x) => shown.get(x) === v) ? 1 : 0;
      // the API rounds the rate to 4 places, the console shows a percentage to 1
      return [
        v,
        String(n),
        String(s),
        n ? `${Math.round((Math.round((s / n) * 10_000) / 10_000) * 1000) / 10}%` : '—',
      ];
    };
    const rows = () =>
      page
        .getByTestId('variant-stats')
        .locator('tbody tr')
        .evaluateAll((trs) =>
          trs.map((tr) => {
            const c = [...tr.children].map((x) => x.textContent ?? '');
            return [c[0], c[2], c[4], c[6]];
          }),
        );
    await eventually(
      'the per-variant views and submissions in the console',
      async () => {
        await page.getByRole('button', { name: 'Show' }).click();
        await page.getByTestId('variant-stats').waitFor();
        return JSON.stringify(await rows()) === JSON.stringify([expected('a'), expected('b')]);
      },
      90_000,
      1000,
    ).catch(async (err) => {
      throw new Error(
        `${err.message}: ${JSON.stringify(await rows())} vs ${JSON.stringify([expected('a'), expected('b')])}`,
      );
    });
    expect(count('a') + count('b')).toBe(12);
    await checkViewports('page-stats');

    // the form's own report: its submissions and conversion, and the page it came from
    await page.getByRole('link', { name: 'Forms', exact: true }).click();
    await page.getByRole('link', { name: 'Newsletter' }).waitFor();
    const formRow = page.locator('tbody tr').filter({ hasText: 'Newsletter' });
    await expect
      .poll(() => textOf(formRow.locator('td').nth(3)), { timeout: 10_000 })
      .toBe(String(submitters.length));
    await page.getByRole('link', { name: 'Newsletter' }).click();
    const stats = page.getByTestId('form-stats');
    await expect.poll(() => textOf(stats), { timeout: 10_000 }).toContain(`Submissions${submitters.length}`);
    await expect.poll(() => textOf(stats), { timeout: 10_000 }).toContain('Views on landing pages12');
    await page.getByRole('img', { name: 'Landing-page views and submissions per day' }).waitFor();
    await page.getByRole('cell', { name: pageId }).waitFor();
  }, 150_000);

  it('starts a segment export, shows its progress, downloads the CSV with the admin key and deletes it', async () => {
    await page.getByRole('link', { name: 'Exports', exact: true }).click();
    await page.getByText('No exports yet').waitFor();
    await page.getByLabel('Segment', { exact: true }).selectOption({ label: 'Form buyers' });
    await page.getByRole('button', { name: 'Start export' }).click();
    const row = page.locator('tr[data-export]').first();
    await expect.poll(() => textOf(row.locator('.badge')), { timeout: 60_000 }).toBe('done');
    await expect.poll(() => row.locator('progress').getAttribute('value'), { timeout: 10_000 }).toBe('100');
    const id = (await row.getAttribute('data-export'))!;
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: `Download ${id}` }).click();
    const file = await download;
    expect(file.suggestedFilename()).toBe(`${id}.csv`);
    const lines = readFileSync((await file.path())!, 'utf8')
      .split('\r\n')
      .filter(Boolean);
    expect(lines[0]!.split(',')[0]).toBe('profile_id');
    expect(lines.slice(1)).toHaveLength(BUYERS.length);
    for (const userId of BUYERS) expect(lines.some((l) => l.includes(`${userId}@example.com`))).toBe(true);
    await checkViewports('exports');

    // an events export by name, as Parquet
    await page.getByLabel('Events in a range').check();
    await page.getByLabel('Event names (optional)', { exact: true }).fill('Trial Converted');
    await page.getByLabel('Format', { exact: true }).selectOption('parquet');
    await page.getByRole('button', { name: 'Start export' }).click();
    await expect.poll(() => page.locator('tr[data-export]').count(), { timeout: 10_000 }).toBe(2);
    const second = page.locator('tr[data-export]').first();
    await expect.poll(() => textOf(second.locator('.badge')), { timeout: 60_000 }).toBe('done');
    await expect.poll(() => textOf(second), { timeout: 10_000 }).toContain('3 of 3 rows');

    await page.getByRole('button', { name: `Delete ${id}`, exact: true }).click();
    await expect.poll(focusedText).toBe('Keep'); // the safe choice has focus
    await page.getByRole('button', { name: `Delete ${id} now` }).click();
    await expect.poll(() => page.locator(`tr[data-export="${id}"]`).count(), { timeout: 10_000 }).toBe(0);
    expect((await api('GET', `/v1/exports/${id}`)).status).toBe(404);
    await expect.poll(() => page.locator('tr[data-export]').count(), { timeout: 10_000 }).toBe(1);
  });

  it('runs attribution with messages sent counted as touches, without a touchpoint field', async () => {
    await page.getByRole('link', { name: 'Analytics', exact: true }).click();
    await page.getByRole('link', { name: 'Attribution' }).click();
    await page.getByLabel('Conversion event', { exact: true }).fill('Trial Converted');
    await page.getByLabel('Count messages sent as touches').check();
    await page.getByLabel('Touchpoint field (optional)', { exact: true }).fill('');
    await page.getByLabel('Name sends by', { exact: true }).selectOption('campaign');
    await page.getByLabel('Value field (optional)', { exact: true }).fill('properties.revenue');
    await page.getByRole('button', { name: 'Run' }).click();
    const cells = page.locator('table tbody tr td:first-child');
    await expect.poll(() => textOf(cells.first()), { timeout: 20_000 }).toBe(`campaign:${campaignId}`);
    const rows = (
      await page
        .locator('table tbody tr')
        .evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent ?? '')))
    ).sort((a, b) => a[1]!.localeCompare(b[1]!));
    // three buyers converted, each after the one send: every model credits it 3 times
    expect(rows).toEqual(
      ['first_touch', 'last_touch', 'linear'].map((m) => [`campaign:${campaignId}`, m, '3', '30']),
    );
    await page.getByLabel('Name sends by', { exact: true }).selectOption('channel');
    await page.getByRole('button', { name: 'Run' }).click();
    await expect.poll(() => textOf(cells.first()), { timeout: 10_000 }).toBe('channel:webhook');
    await checkViewports('attribution-sends');
  });

  it('fetched nothing but the query service and logged no errors', () => {
    expect(blocked).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
