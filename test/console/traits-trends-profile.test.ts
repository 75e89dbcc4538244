// The console screens for what was API only, in headless Chromium on the real stack:
// - Traits & scores: a lead score and a computed trait refused at the field the API names,
//   created, and then counted by the processor on events sent to ingest; a score's points
//   edited in the console rescore the profile; deleted after an inline question, each change
//   in the audit log the row links to.
// - Analytics → Trends: the table shows the events sent per day, and split by a property.
// - The profile page: consent recorded and revoked (GET …/consent and its history, with the
//   admin key as actor), the person's data downloaded, and erasure asked inline and followed
//   until done, after which the profile is gone from the API.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
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
const DAY = 86_400_000;
interface DocLike {
  documentElement: { scrollWidth: number; clientWidth: number };
  querySelectorAll(s: string): Iterable<ElLike>;
}
interface ElLike {
  tagName: string;
  className: string;
  parentElement: ElLike | null;
  getBoundingClientRect(): { right: number };
}
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

/** The screen fits a desktop and a phone without horizontal scrolling; screenshots for review. */
async function checkViewports(name: string) {
  for (const vp of [
    { width: 1280, height: 900 },
    { width: 390, height: 844 },
  ]) {
    await page.setViewportSize(vp);
    // how far the page scrolls sideways, and the outermost elements that stick out (for the message)
    const [overflow, wide] = await page.evaluate(() => {
      const doc = (globalThis as unknown as { document: DocLike }).document;
      const w = doc.documentElement.clientWidth;
      const out = [...doc.querySelectorAll('main *')]
        .filter((e) => e.getBoundingClientRect().right > w + 1)
        .filter((e) => !e.parentElement || e.parentElement.getBoundingClientRect().right <= w + 1)
        .map((e) => `${e.tagName.toLowerCase()}.${e.className}`);
      return [doc.documentElement.scrollWidth - w, out.slice(0, 5).join(', ')] as const;
    });
    await page.screenshot({ path: `${ARTIFACTS}console-${name}-${vp.width}.png`, fullPage: true });
    expect(overflow, `${name} at ${vp.width} overflows by ${overflow}px: ${wide}`).toBeLessThanOrEqual(0);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

beforeAll(async () => {
  cfg = testConfig({ CDP_DEFINITIONS_POLL_MS: '50' });
  mkdirSync(ARTIFACTS, { recursive: true });
  running = await startServices(cfg, ['processor', 'query', 'ingest'], testLogger(cfg));
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
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${running.urls.query}/console#/traits`);
  await page.getByLabel('Admin key').fill(cfg.keys.adminKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Traits & scores', level: 1 }).waitFor();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await running?.stop();
});

/** The profile of a userId once the processor has it. */
const profileOf = (userId: string) =>
  eventually(`profile of ${userId}`, async () => {
    const r = await api('GET', `/v1/profiles?userId=${encodeURIComponent(userId)}`);
    return r.status === 200 ? r.body : undefined;
  });

describe('traits and scores in the console', () => {
  const scoreName = `lead_${uniqueId('')}`;
  const traitName = `demos_${uniqueId('')}`;
  const event = uniqueId('Demo Requested ');

  it('creates a lead score and a computed trait, refused first at the field the API names', async () => {
    await page.getByRole('link', { name: 'New lead score' }).click();
    await page.getByRole('heading', { name: 'New lead score' }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill(scoreName);
    const rules = page.getByLabel('Rules (JSON)');
    await rules.fill(JSON.stringify([{ event, points: 'lots' }]));
    await page.getByRole('button', { name: 'Create lead score' }).click();
    // the 400 (rules.0.points) lands on the rules box: marked, described, focused
    await expect.poll(() => rules.getAttribute('aria-invalid')).toBe('true');
    await expect.poll(() => page.locator(':focus').getAttribute('data-key')).toBe('rules');
    expect(await page.getByRole('alert').first().textContent()).toMatch(/rules\[0\]\.points/);
    await rules.fill(JSON.stringify([{ event, points: 50 }]));
    await page.getByRole('button', { name: 'Create lead score' }).click();
    await page.getByRole('heading', { name: 'Traits & scores', level: 1 }).waitFor();
    await page.getByTestId('score-list').getByRole('link', { name: scoreName, exact: true }).waitFor();

    await page.getByRole('link', { name: 'New computed trait' }).click();
    await page.getByLabel('Name', { exact: true }).fill(traitName);
    await page.getByLabel('Aggregate').selectOption('count');
    await page.getByLabel('Event', { exact: true }).fill(event);
    const win = page.getByLabel('Window');
    await win.fill('3 fortnights');
    await page.getByRole('button', { name: 'Create computed trait' }).click();
    await expect.poll(() => win.getAttribute('aria-invalid')).toBe('true');
    await expect.poll(() => page.locator(':focus').getAttribute('data-key')).toBe('window');
    await win.fill('30d');
    await checkViewports('trait-editor');
    await page.getByRole('button', { name: 'Create computed trait' }).click();
    await page.getByTestId('computed-list').getByRole('link', { name: traitName, exact: true }).waitFor();
    await checkViewports('traits');

    // a second one of the same name: the API's 409 is shown at the name
    await page.getByRole('link', { name: 'New computed trait' }).click();
    const name = page.getByLabel('Name', { exact: true });
    await name.fill(traitName);
    await page.getByLabel('Event', { exact: true }).fill(event);
    await page.getByRole('button', { name: 'Create computed trait' }).click();
    await expect.poll(() => name.getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByRole('alert').first().textContent()).toMatch(/already called/);
    await page.getByRole('link', { name: 'Cancel' }).click();

    const scores = (await api('GET', '/v1/scores')).body.scores as Array<Record<string, unknown>>;
    expect(scores.find((s) => s.name === scoreName)).toMatchObject({
      rules: [{ event, points: 50 }],
      version: 1,
    });
    const traits = (await api('GET', '/v1/computed-traits')).body.computedTraits as Array<
      Record<string, unknown>
    >;
    expect(traits.find((s) => s.name === traitName)).toMatchObject({ kind: 'count', event, window: '30d' });
  });

  it('scores a profile on events sent to ingest; points edited in the console rescore it', async () => {
    // the processor picks definitions up within its poll; a person whose events it counted
    // has the score of exactly the events sent (no half-life: no decay)
    const user = await eventually(
      'the processor counts the new definitions',
      async () => {
        const u = uniqueId('lead-user-');
        await send('/v1/track', { userId: u, event, properties: {} });
        await send('/v1/track', { userId: u, event, properties: {} });
        await eventually(
          `${u} scored`,
          async () => {
            const r = await api('GET', `/v1/profiles?userId=${u}`);
            return r.body.scores?.[scoreName] === 100 && r.body.computed?.[traitName] === 2;
          },
          5000,
          100,
        );
        return u;
      },
      40_000,
      0,
    );
    const id = (await profileOf(user)).id as string;

    // edit the rule's points in the console: 50 → 7, applied to past events at once
    const row = page.getByTestId('score-list').locator('tr', { hasText: scoreName });
    await row.getByRole('link', { name: scoreName, exact: true }).click();
    await page.getByRole('heading', { name: `Edit ${scoreName}` }).waitFor();
    await page.getByLabel('Rules (JSON)').fill(JSON.stringify([{ event, points: 7 }]));
    await page.getByRole('button', { name: 'Save as a new version' }).click();
    await page.getByRole('heading', { name: 'Traits & scores', level: 1 }).waitFor();
    await eventually('the profile rescored', async () => {
      const r = (await api('GET', `/v1/profiles/${id}`)).body;
      return r.scores?.[scoreName] === 14;
    });
    // and the profile page shows it
    await page.goto(`${running.urls.query}/console#/profiles/${id}`);
    await expect
      .poll(() => page.locator('dl.kv', { hasText: scoreName }).first().textContent())
      .toContain('14');
    await page.goto(`${running.urls.query}/console#/traits`);
  });

  it('deletes a score after an inline question (focus on "Keep it"); its history link shows each change', async () => {
    const list = page.getByTestId('score-list');
    const row = list.locator('tr', { hasText: scoreName });
    const scoreId = (
      (await api('GET', '/v1/scores')).body.scores as Array<{ id: string; name: string }>
    ).find((s) => s.name === scoreName)!.id;
    expect(await row.getByRole('link', { name: `Audit history of ${scoreName}` }).getAttribute('href')).toBe(
      `#/audit?entityType=score&entityId=${scoreId}`,
    );
    await row.getByRole('button', { name: `Delete ${scoreName}` }).click();
    await expect.poll(() => page.locator(':focus').textContent()).toBe('Keep it');
    await page.keyboard.press('Enter'); // kept
    expect((await api('GET', `/v1/scores/${scoreId}`)).status).toBe(200);
    await row.getByRole('button', { name: `Delete ${scoreName}` }).click();
    await row.getByRole('button', { name: 'Delete lead score' }).click();
    await expect.poll(() => row.count()).toBe(0);
    await expect.poll(() => page.locator(':focus').textContent()).toBe('Lead scores');
    expect((await api('GET', `/v1/scores/${scoreId}`)).status).toBe(404);

    // a computed trait a segment reads: the API's refusal is shown, naming the segment, and it stays
    const seg = await api('POST', '/v1/segments', {
      name: uniqueId('reads-trait-'),
      rule: { '>': [{ var: `computed.${traitName}` }, 0] },
    });
    expect(seg.status).toBe(201);
    const traitRow = page.getByTestId('computed-list').locator('tr', { hasText: traitName });
    await traitRow.getByRole('button', { name: `Delete ${traitName}` }).click();
    await traitRow.getByRole('button', { name: 'Delete computed trait' }).click();
    await expect
      .poll(() => page.getByTestId('computed-list').getByRole('alert').textContent())
      .toContain(seg.body.id as string);
    expect(await traitRow.count()).toBe(1);
    await expect.poll(() => page.locator(':focus').getAttribute('aria-label')).toBe(`Delete ${traitName}`);

    const audit = await api('GET', `/v1/audit?entityType=score&entityId=${scoreId}`);
    expect((audit.body.items as Array<{ action: string }>).map((r) => r.action).sort()).toEqual([
      'create',
      'delete',
      'update',
    ]);
  });
});

describe('trends in the console', () => {
  it('shows the events sent per day, in all and split by a property', async () => {
    const event = uniqueId('Trend Ping ');
    const today = Date.parse(`${isoDay(Date.now())}T00:00:00Z`);
    const sent = [
      { day: today - 2 * DAY, plan: 'pro', n: 3 },
      { day: today - 2 * DAY, plan: 'free', n: 1 },
      { day: today - DAY, plan: 'free', n: 4 },
    ];
    for (const s of sent)
      for (let i = 0; i < s.n; i++)
        await send('/v1/track', {
          userId: uniqueId('trend-'),
          event,
          properties: { plan: s.plan },
          timestamp: new Date(s.day + 3_600_000 * (i + 1)).toISOString(),
        });
    const range = { from: isoDay(today - 3 * DAY), to: isoDay(today + DAY) };
    await eventually(
      'the events in ClickHouse',
      async () => {
        const r = await api('POST', '/v1/analytics/trends', { event, interval: 'day', ...range });
        const total = (r.body.series?.[0]?.points ?? []).reduce(
          (a: number, p: { count: number }) => a + p.count,
          0,
        );
        return total === 8;
      },
      30_000,
      200,
    );

    await page.getByRole('link', { name: 'Analytics' }).click();
    await page.getByRole('link', { name: 'Trends' }).click();
    await page.getByLabel('Event', { exact: true }).fill(event);
    await page.getByLabel('Interval').selectOption('day');
    await page.getByLabel('From').fill(range.from);
    await page.getByLabel('To (exclusive)').fill(range.to);
    await page.getByRole('button', { name: 'Run' }).click();
    const table = page.getByTestId('trends-table');
    const rows = async () =>
      table
        .locator('tbody tr')
        .evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent?.trim())));
    await expect.poll(rows).toEqual([
      [isoDay(today - 3 * DAY), '0'],
      [isoDay(today - 2 * DAY), '4'],
      [isoDay(today - DAY), '4'],
      [isoDay(today), '0'],
    ]);
    expect(await table.locator('tfoot').textContent()).toContain('8');
    expect(await page.getByRole('img', { name: 'Events per day' }).count()).toBe(1);

    await page.getByLabel('Breakdown (optional)').fill('properties.plan');
    await page.getByRole('button', { name: 'Run' }).click();
    await expect.poll(() => table.locator('thead th').allTextContents()).toEqual(['day', 'free', 'pro']);
    await checkViewports('trends');
    await expect.poll(rows).toEqual([
      [isoDay(today - 3 * DAY), '0', '0'],
      [isoDay(today - 2 * DAY), '1', '3'],
      [isoDay(today - DAY), '4', '0'],
      [isoDay(today), '0', '0'],
    ]);
  });
});

describe('a profile: consent, export, erasure', () => {
  const user = uniqueId('gdpr-user-');
  const email = `${uniqueId('g')}@example.test`;
  let id = '';

  it('records consent and revokes it; GET …/consent and the history follow, with the admin key as actor', async () => {
    await send('/v1/identify', { userId: user, traits: { email, plan: 'pro' } });
    await send('/v1/track', { userId: user, event: 'Signed Up', properties: {} });
    id = (await profileOf(user)).id as string;
    await page.goto(`${running.urls.query}/console#/profiles/${id}`);
    const consent = page.getByTestId('consent');
    await consent.getByText('No consent recorded').waitFor();
    await consent.getByLabel('Channel').selectOption('email');
    await consent.getByLabel('Purpose').fill('marketing');
    await consent.getByLabel('Decision').selectOption('true');
    await consent.getByRole('button', { name: 'Record consent' }).click();
    await expect.poll(() => page.getByTestId('consent-done').textContent()).toMatch(/^Granted/);
    const now = async () => (await api('GET', `/v1/profiles/${id}/consent`)).body.consents;
    expect(await now()).toMatchObject([{ channel: 'email', purpose: 'marketing', status: 'subscribed' }]);

    await consent.getByRole('button', { name: 'Revoke email marketing' }).click();
    await expect.poll(() => page.getByTestId('consent-done').textContent()).toMatch(/^Revoked/);
    expect(await now()).toMatchObject([
      { channel: 'email', purpose: 'marketing', status: 'revoked', subscribed: false },
    ]);
    await expect
      .poll(() => page.getByTestId('consent-now').locator('tbody td').nth(2).textContent())
      .toBe('revoked');
    const actor = `key:${createHash('sha256').update(cfg.keys.adminKey).digest('hex').slice(0, 12)}`;
    const history = await eventually('both decisions logged', async () => {
      const h = (await api('GET', `/v1/profiles/${id}/consent/history`)).body.history as Array<
        Record<string, unknown>
      >;
      return h.length === 2 ? h : undefined;
    });
    expect(history.map((h) => [h.status, h.channel, h.purpose, h.source, h.actor])).toEqual([
      ['revoked', 'email', 'marketing', 'api', actor],
      ['subscribed', 'email', 'marketing', 'api', actor],
    ]);
    // the console lists the same history
    await page.getByText('Consent history').click();
    await expect.poll(() => page.getByTestId('consent-history').locator('tbody tr').count()).toBe(2);
    expect(await page.getByTestId('consent-history').locator('tbody tr').first().textContent()).toContain(
      actor,
    );
    await checkViewports('profile-consent');
  });

  it("downloads the person's data as NDJSON", async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download their data' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(`profile-${id}.ndjson`);
    const lines = readFileSync((await download.path())!, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ type: 'profile', id, userIds: [user] });
    expect(lines.filter((l) => l.type === 'consent')).toMatchObject([
      { channel: 'email', status: 'revoked' },
    ]);
    expect(lines.at(-1)?.type).toBe('end');
  });

  it('erases the person after an inline question that says what happens, and follows the job until done', async () => {
    await page.getByRole('button', { name: 'Erase…' }).click();
    await expect.poll(() => page.locator(':focus').textContent()).toBe('Keep it');
    expect(await page.getByTestId('erase-confirm').textContent()).toMatch(
      /deleted for good.*cannot be undone/s,
    );
    await checkViewports('profile-erase-confirm');
    await page.getByRole('button', { name: 'Erase for good' }).click();
    await page.getByRole('heading', { name: /^Erasure/ }).waitFor();
    await expect
      .poll(() => page.getByTestId('erasure-status').textContent(), { timeout: 30_000 })
      .toMatch(/^Erased/);
    expect((await api('GET', `/v1/profiles/${id}`)).status).toBe(404);
    expect((await api('GET', `/v1/profiles?userId=${encodeURIComponent(user)}`)).status).toBe(404);
    const jobs = (await api('GET', '/v1/erasures')).body.erasures as Array<{
      profileId: string;
      status: string;
    }>;
    expect(jobs.find((j) => j.profileId === id)?.status).toBe('done');
  });

  it('had no page errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
