// The console's journeys in headless Chromium against the real services, used as a marketer
// would: build a journey in the form editor (event entry with a property filter, a wait until
// an event, a branch whose rule is made in the visual rule builder, a webhook send, an exit),
// see the API's 400 next to the step it names, draw the flow, activate it from the keyboard,
// watch a person's count appear on the waiting step after an event through ingest, pause
// and resume, see a 409 when the journey moved meanwhile, edit it (a new version) and find
// it in the list. Every screen is checked at 1280×800 and 390×844 for horizontal overflow,
// and nothing is fetched from anywhere but the query service.
import { mkdirSync } from 'node:fs';
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

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let queryUrl: string;
let journeyId: string;
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

async function api(method: string, path: string) {
  const res = await fetch(`${queryUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${cfg.keys.adminKey}` },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
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

const text = (selector: string) => page.locator(selector).first().textContent({ timeout: 5000 });
const step = (i: number) => page.locator(`fieldset.journey-node[data-step="${i}"]`);

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
  context = await browser.newContext({ viewport: VIEWPORTS[0]! });
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
    if (msg.type() === 'error' && !/status of 4\d\d|ERR_FAILED/.test(msg.text())) pageErrors.push(msg.text());
  });
});

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await running?.stop();
  await receiver?.close();
});

describe('journeys in the console', () => {
  it('signs in and shows the empty list', async () => {
    await page.goto(`${queryUrl}/console#/journeys`);
    await page.getByLabel('Admin key', { exact: true }).fill(cfg.keys.adminKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Journeys' }).waitFor();
    await page.getByText('No journeys yet').waitFor();
  });

  it('builds a journey in the form; the API’s 400 shows next to the step it names', async () => {
    await page.getByRole('link', { name: 'Create a journey' }).click();
    await page.getByRole('heading', { name: 'New journey' }).waitFor();
    await page.getByLabel('Journey name', { exact: true }).fill('Activation nurture');
    await page.getByLabel('People enter', { exact: true }).selectOption('event');
    await page.getByLabel('Entry event', { exact: true }).fill('Signed Up');
    await page.getByRole('button', { name: '+ Entry property filter' }).click();
    await page.getByLabel('Property', { exact: true }).fill('source');
    await page.getByLabel('Value', { exact: true }).fill('web');

    // step 1: wait until Activated (timeout one hour)
    await page.getByRole('button', { name: '+ Wait' }).click();
    await step(0).getByLabel('Step id', { exact: true }).fill('await');
    await step(0).getByLabel('Wait', { exact: true }).selectOption('event');
    await step(0).getByLabel('Event name', { exact: true }).fill('Activated');
    await step(0).getByLabel('Timeout', { exact: true }).fill('PT1H');
    // step 2: a branch on the profile, built in the visual rule builder; first with an event
    // count, which the API does not allow in branches
    await page.getByRole('button', { name: '+ Branch' }).click();
    await step(1).getByLabel('Step id', { exact: true }).fill('check');
    await step(1).getByRole('button', { name: '+ Event count' }).click();
    await step(1).getByLabel('Event name', { exact: true }).fill('Order Completed');
    // step 3: a webhook; step 4: an exit
    await page.getByRole('button', { name: '+ Send' }).click();
    await step(2).getByLabel('Step id', { exact: true }).fill('hook');
    await step(2).getByLabel('Channel', { exact: true }).selectOption('webhook');
    await step(2).getByLabel('Webhook URL', { exact: true }).fill(receiver.url);
    await page.getByRole('button', { name: '+ Exit' }).click();
    await step(3).getByLabel('Step id', { exact: true }).fill('bye');
    // the edges, with the ids just given
    await step(0).getByLabel('When it happens in time, go to', { exact: true }).selectOption('check');
    await step(1).getByLabel('If the rule holds (yes), go to', { exact: true }).selectOption('hook');
    await step(1).getByLabel('Otherwise (no), go to', { exact: true }).selectOption('bye');

    await page.getByRole('button', { name: 'Create journey' }).click();
    const nodeError = step(1).locator('.field-error');
    await nodeError.waitFor();
    expect(await nodeError.textContent()).toMatch(/^nodes\[1\]\.rule: .*event_count/);
    await page.getByRole('alert').filter({ hasText: 'nodes[1].rule' }).waitFor();
    await checkViewports('journey-editor-error');

    // the rule the API takes: a trait comparison
    await step(1).getByRole('button', { name: 'Remove condition 1' }).click();
    await step(1).getByRole('button', { name: '+ Trait' }).click();
    await step(1).getByLabel('Trait', { exact: true }).fill('plan');
    await step(1).getByLabel('Value', { exact: true }).fill('pro');
    await page.getByRole('button', { name: 'Create journey' }).click();
    await page.getByRole('heading', { name: 'Activation nurture' }).waitFor();
    expect(await text('[data-testid=journey-status]')).toBe('draft');
    journeyId = decodeURIComponent(new URL(page.url()).hash.split('/')[2]!);
    const stored = (await api('GET', `/v1/journeys/${journeyId}`)).body;
    expect(stored).toMatchObject({
      version: 1,
      entry: { event: 'Signed Up', where: { '==': [{ var: 'source' }, 'web'] } },
      reEntry: 'never',
      nodes: [
        {
          id: 'await',
          type: 'wait',
          for: { until: { event: 'Activated' }, timeout: 'PT1H' },
          branches: { met: 'check' },
        },
        {
          id: 'check',
          type: 'branch',
          rule: { '==': [{ var: 'traits.plan' }, 'pro'] },
          yes: 'hook',
          no: 'bye',
        },
        { id: 'hook', type: 'send', channel: 'webhook', webhook: { url: receiver.url } },
        { id: 'bye', type: 'exit' },
      ],
    });
  });

  it('draws the flow: a box per step by depth, edges with their labels', async () => {
    const flow = page.locator('svg.flow');
    await flow.waitFor();
    expect(await flow.locator('g.flow-node').count()).toBe(4);
    const y = async (id: string) =>
      Number(
        /translate\([^,]+,([^)]+)\)/.exec(
          (await flow.locator(`g[data-node="${id}"]`).getAttribute('transform'))!,
        )![1],
      );
    expect(await y('check')).toBeGreaterThan(await y('await'));
    expect(await y('hook')).toBeGreaterThan(await y('check'));
    expect(await y('bye')).toBe(await y('hook'));
    expect(await text('[data-testid="edge-await-check"]')).toBe('met');
    expect(await text('[data-testid="edge-check-hook"]')).toBe('yes');
    expect(await text('[data-testid="edge-check-bye"]')).toBe('no');
    // counts from the stats route (nobody yet)
    await expect.poll(() => text('[data-testid="now-await"]')).toBe('0');
    await checkViewports('journey-draft');
  });

  it('activates from the keyboard; a person’s count appears on the waiting step after an event through ingest', async () => {
    await page.getByRole('button', { name: 'Activate' }).focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => text('[data-testid=journey-status]')).toBe('active');
    await ingest('/v1/identify', { userId: 'ann', traits: { plan: 'pro' } });
    // the runners load the activation within a definitions poll; until then an entry event
    // is not a journey signal, so send it again until she is in (re-entry is refused, not doubled)
    await eventually(
      'ann waiting on the first step, in the flow',
      async () => {
        if ((await text('[data-testid="now-await"]')) === '1') return true;
        await ingest('/v1/track', { userId: 'ann', event: 'Signed Up', properties: { source: 'web' } });
        return false;
      },
      45_000,
      1500,
    );
    expect(await text('[data-testid=journey-entered]')).toBe('1');
    expect(await text('[data-testid=journey-live]')).toBe('1');
    await page.locator('table.node-counts tr', { hasText: 'await' }).getByRole('cell').nth(1).waitFor();
    await checkViewports('journey-live');
  });

  it('pauses and resumes; a person waiting stays, then moves on when her event comes', async () => {
    await page.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => text('[data-testid=journey-status]')).toBe('paused');
    expect((await api('GET', `/v1/journeys/${journeyId}`)).body.status).toBe('paused');
    expect(await text('[data-testid="now-await"]')).toBe('1');
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => text('[data-testid=journey-status]')).toBe('active');
    await ingest('/v1/track', { userId: 'ann', event: 'Activated' });
    await eventually(
      'ann past the wait and the branch, sent the webhook',
      async () =>
        (await text('[data-testid="now-await"]')) === '0' &&
        (await text('[data-testid="passed-await"]')) === '1' &&
        receiver.deliveries.length === 1,
      45_000,
      250,
    );
    expect((JSON.parse(receiver.deliveries[0]!.body) as { userId: string }).userId).toBe('ann');
  });

  it('shows the 409 when the journey moved meanwhile, then where it is now', async () => {
    // the page does not learn of the archive before the click: its stats polls fail
    await page.route('**/stats', (route) => route.abort());
    expect((await api('POST', `/v1/journeys/${journeyId}/archive`)).status).toBe(200);
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('alert').filter({ hasText: 'cannot pause a journey that is archived' }).waitFor();
    await expect.poll(() => text('[data-testid=journey-status]')).toBe('archived');
    expect(await page.getByRole('button', { name: 'Pause' }).count()).toBe(0);
    await page.unroute('**/stats');
  });

  it('edits a journey (a new version) and lists it with status, version, entered and live', async () => {
    // a second journey, edited in the form it was built in
    await page.getByRole('link', { name: 'Journeys' }).click();
    await page.getByRole('link', { name: 'New journey' }).click();
    await page.getByLabel('Journey name', { exact: true }).fill('Second');
    await page.getByLabel('People enter', { exact: true }).selectOption('dateTrait');
    await page.getByLabel('Date trait', { exact: true }).fill('renewal_date');
    await page.getByLabel('Offset', { exact: true }).fill('-P14D');
    await page.getByLabel('At local time', { exact: true }).fill('09:00');
    await page.getByRole('button', { name: '+ Split' }).click();
    await page.getByRole('button', { name: '+ Update traits' }).click();
    await step(1).getByLabel('Traits to set (a JSON object)', { exact: true }).fill('{"tier": "gold"}');
    await step(0).getByLabel('Variant 1 goes to', { exact: true }).selectOption('update1');
    await step(0).getByLabel('Holdout (percent, control group)', { exact: true }).fill('10');
    await page.getByRole('button', { name: 'Create journey' }).click();
    await page.getByRole('heading', { name: 'Second' }).waitFor();
    await page.getByText('on each person’s renewal_date -P14D at 09:00 local time').waitFor();
    expect(await text('[data-testid="edge-split1-update1"]')).toBe('variant 1');
    await page.getByRole('link', { name: 'Edit', exact: true }).click();
    await page.getByRole('heading', { name: 'Edit journey (v1)' }).waitFor();
    expect(await step(1).getByLabel('Traits to set (a JSON object)', { exact: true }).inputValue()).toContain(
      '"tier": "gold"',
    );
    await page.getByLabel('Journey name', { exact: true }).fill('Second, edited');
    await page.getByRole('button', { name: 'Save as a new version' }).click();
    await page.getByRole('heading', { name: 'Second, edited' }).waitFor();
    await page.getByText('v2 ·').waitFor();
    const second = decodeURIComponent(new URL(page.url()).hash.split('/')[2]!);
    expect((await api('GET', `/v1/journeys/${second}`)).body).toMatchObject({
      version: 2,
      name: 'Second, edited',
      entry: { dateTrait: 'renewal_date', offset: '-P14D', at: '09:00' },
      nodes: [
        {
          id: 'split1',
          type: 'split',
          variants: [{ weight: 1, next: 'update1' }, { weight: 1 }],
          holdout: 10,
        },
        { id: 'update1', type: 'update', traits: { tier: 'gold' } },
      ],
    });

    await page.getByRole('link', { name: 'Journeys' }).click();
    const row = page.locator('tbody tr', { hasText: 'Activation nurture' });
    await row.waitFor();
    expect(await row.locator('td').allTextContents()).toEqual([
      'Activation nurture',
      'archived',
      'v1',
      '1',
      '0',
    ]);
    expect(
      await page.locator('tbody tr', { hasText: 'Second, edited' }).locator('td').allTextContents(),
    ).toEqual(['Second, edited', 'draft', 'v2', '0', '0']);
    await checkViewports('journeys-list');
    expect(blocked).toEqual([]);
    expect(pageErrors, pageErrors.join('\n')).toEqual([]);
  });
});
