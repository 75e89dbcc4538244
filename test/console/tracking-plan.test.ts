// The console's tracking plan screen in headless Chromium on the real stack: a plan refused
// with the path the API names, saved in quarantine mode; events sent to ingest break it and
// show up counted per property and in the quarantine; the plan fixed in the console and the
// quarantine replayed from it, after which the events are in the pipeline.
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);
const send = ingestApi(
  () => running.urls.ingest!,
  () => cfg,
);

const plan = (total: string | string[], pattern = '^ord_[0-9]+$') =>
  JSON.stringify({
    mode: 'quarantine',
    events: {
      'Order Completed': {
        properties: {
          type: 'object',
          required: ['order_id', 'total'],
          properties: { order_id: { type: 'string', pattern }, total: { type: total } },
        },
      },
    },
  });

async function savePlanInConsole(text: string) {
  const box = page.getByLabel('Plan (JSON)');
  await box.fill(text);
  await page.getByRole('button', { name: 'Save plan' }).click();
}

beforeAll(async () => {
  cfg = testConfig({ CDP_DEFINITIONS_POLL_MS: '50' });
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
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
  await page.goto(`${running.urls.query}/console#/tracking-plan`);
  await page.getByLabel('Admin key').fill(cfg.keys.adminKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Tracking plan', level: 1 }).waitFor();
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await running?.stop();
});

describe('the tracking plan in the console', () => {
  const user = uniqueId('tp-user-');
  const ids = [uniqueId('m-'), uniqueId('m-')];

  it('refuses a plan with the path the API names, then saves one in quarantine mode', async () => {
    await expect.poll(() => page.getByTestId('plan-summary').textContent()).toMatch(/No plan yet/);
    await savePlanInConsole(plan('number', '(a+)+$'));
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toMatch(/Order Completed.*properties.*pattern/);
    await savePlanInConsole(plan('number'));
    await expect.poll(() => page.getByTestId('plan-saved').textContent()).toMatch(/Saved as version 1/);
    await expect
      .poll(() => page.getByTestId('plan-summary').textContent())
      .toMatch(/mode quarantine, 1 events/);
  });

  it('shows events that broke it, counted by property, in the quarantine; a fixed plan replays them', async () => {
    await new Promise((r) => setTimeout(r, 600)); // ingest applies the plan within its poll
    for (const [i, messageId] of ids.entries()) {
      await send('/v1/track', {
        userId: user,
        messageId,
        event: 'Order Completed',
        properties: { order_id: `ord_${i}`, total: String(10 + i) },
      });
    }
    await eventually('quarantined', async () => {
      const r = await api(
        'GET',
        `/v1/tracking-plan/quarantine?from=${new Date(Date.now() - 86_400_000).toISOString()}`,
      );
      return (r.body.items as unknown[]).length === 2;
    });
    await page.reload();
    await page.getByTestId('violations').waitFor();
    const row = page.getByTestId('violations').locator('tbody tr').first();
    await expect
      .poll(() => row.locator('td').allTextContents())
      .toEqual(['Order Completed', 'properties.total', 'type', '2', '0', '0', '2', expect.any(String)]);
    await expect.poll(() => page.getByTestId('quarantine').locator('tbody tr').count()).toBe(2);
    expect(await page.getByTestId('quarantine').textContent()).toContain(ids[0]);

    // the plan fixed (totals may come as strings) in the console, then the replay
    await savePlanInConsole(plan(['number', 'string']));
    await expect.poll(() => page.getByTestId('plan-saved').textContent()).toMatch(/Saved as version 2/);
    await new Promise((r) => setTimeout(r, 600));
    await page.getByRole('button', { name: 'Replay against the current plan' }).click();
    await expect
      .poll(() => page.getByTestId('replay-result').textContent())
      .toMatch(/Replayed 2; 0 still break/);
    await expect.poll(() => page.getByText('Nothing in quarantine').count()).toBe(1);
    // the replayed events reached the pipeline: the person exists with both on the timeline
    await eventually('replayed into the pipeline', async () => {
      const p = await api('GET', `/v1/profiles?userId=${user}`);
      if (p.status !== 200) return false;
      const tl = await api('GET', `/v1/profiles/${p.body.id}/events`);
      const got = JSON.stringify(tl.body);
      return ids.every((id) => got.includes(id));
    });
    expect(pageErrors).toEqual([]);
  });
});
