// Signing in to the console as a person (headless Chromium against the query service on the
// real Redis and chDB): the header says who is signed in with which role, screens the role
// may not use are not offered (the server refuses them anyway), the audit log names people
// and is reachable from the keyboard, and a person in two workspaces picks one.
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
let ws: string;
let wsName: string;
type Person = { id: string; email: string; token: string };
const people = {} as { analyst: Person; developer: Person; marketer: Person };

async function call(key: string, method: string, path: string, body?: unknown, workspace?: string) {
  const headers: Record<string, string> = {
    authorization: `Bearer ${key}`,
    'content-type': 'application/json',
  };
  if (workspace) headers['x-workspace'] = workspace;
  const res = await fetch(`${running.urls.query}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
  return (text ? JSON.parse(text) : {}) as Record<string, any>;
}

async function addPerson(role: string, workspace: string, email = `${uniqueId(role)}@example.com`) {
  const p = await call(cfg.keys.adminKey, 'POST', '/v1/people', { email, role }, workspace);
  const t = await call(cfg.keys.adminKey, 'POST', `/v1/people/${p.id}/tokens`, undefined, workspace);
  return { id: p.id as string, email, token: t.token as string };
}

async function signIn(token: string, hash = '#/segments') {
  await page.goto(`${running.urls.query}/console${hash}`);
  await page.evaluate('sessionStorage.clear()');
  await page.reload();
  await page.getByLabel('Admin key').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('whoami').waitFor();
}

beforeAll(async () => {
  cfg = testConfig();
  running = await startServices(cfg, ['query'], testLogger(cfg));
  wsName = uniqueId('Console shop ');
  ws = (await call(cfg.keys.adminKey, 'POST', '/v1/workspaces', { name: wsName })).id;
  people.analyst = await addPerson('analyst', ws);
  people.developer = await addPerson('developer', ws);
  people.marketer = await addPerson('marketer', ws);
  // the marketer also belongs to the deployment's workspace, as an analyst
  await call(cfg.keys.adminKey, 'POST', '/v1/people', { email: people.marketer.email, role: 'analyst' });
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
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await running?.stop();
});

describe('people in the console', () => {
  it('an analyst sees who they are, no screens for other roles, and the audit log naming people', async () => {
    // a change by the marketer, with their own token, before the analyst looks
    const seg = await call(
      people.marketer.token,
      'POST',
      '/v1/segments',
      {
        name: uniqueId('vip'),
        rule: { '==': [{ var: 'traits.plan' }, 'pro'] },
      },
      ws,
    );

    await signIn(people.analyst.token);
    const who = page.getByTestId('whoami');
    await expect.poll(() => who.textContent()).toMatch(new RegExp(`${people.analyst.email}\\s*·\\s*analyst`));
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Audit log' }).waitFor();
    expect(await nav.getByRole('link', { name: 'Destinations' }).count()).toBe(0);
    expect(await nav.getByRole('link', { name: 'Exports' }).count()).toBe(0);
    expect(await nav.getByRole('link', { name: 'Segments' }).count()).toBe(1);

    // to the audit log by keyboard
    await nav.getByRole('link', { name: 'Audit log' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
    const rows = page.locator('table.audit > tbody > tr.entry');
    const marketerActor = `person:${people.marketer.id} ${people.marketer.email}`;
    await expect
      .poll(async () => (await rows.locator('td:nth-child(2)').allTextContents()).join('\n'), {
        timeout: 30_000,
      })
      .toContain(marketerActor);
    const segRow = rows.filter({ hasText: seg.id });
    expect(await segRow.locator('td:nth-child(2)').textContent()).toBe(marketerActor);
    // the page names the analyst as "you"
    await expect
      .poll(() => page.locator('section[aria-labelledby="audit-title"] p.muted').first().textContent())
      .toContain(`person:${people.analyst.id} ${people.analyst.email}`);
    // what the console does not offer the server refuses
    const refused = await fetch(`${running.urls.query}/v1/destinations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${people.analyst.token}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(refused.status).toBe(403);
  });

  it('a developer is offered destinations', async () => {
    await signIn(people.developer.token);
    await expect.poll(() => page.getByTestId('whoami').textContent()).toMatch(/developer/);
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Destinations' }).waitFor();
    expect(await nav.getByRole('link', { name: 'Exports' }).count()).toBe(0);
  });

  it('a person in two workspaces chooses one, and acts there with that role', async () => {
    await signIn(people.marketer.token);
    const picker = page.getByLabel('Workspace');
    await picker.waitFor();
    // not chosen yet: the workspace's screens ask for one
    expect(await picker.inputValue()).toBe('');
    await picker.selectOption({ label: `${wsName} (marketer)` });
    await expect
      .poll(() => page.getByTestId('whoami').textContent(), { timeout: 30_000 })
      .toMatch(/·\s*marketer/);
    expect(await page.getByLabel('Workspace').inputValue()).toBe(ws);
    expect(await page.evaluate("sessionStorage.getItem('cdp.workspace')")).toBe(ws);
    // signing out forgets the workspace with the key
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Admin key').waitFor();
    expect(await page.evaluate("sessionStorage.getItem('cdp.workspace')")).toBeNull();
    expect(pageErrors).toEqual([]);
  });
});
