// The embeddable form snippet (GET /v1/forms/embed.js) in headless Chromium, on a page
// served by this test from ANOTHER origin than the ingest host, as on a customer's site. The
// page also runs analytics.js (the standard Segment snippet, loaded from the ingest host), so
// the form's submission must carry the anonymousId analytics.js gave this browser.
//
// The snippet renders both placements (a <script data-form> tag, and a <div data-cdp-form>
// container the page adds later and renders with cdpForms.scan(); the script is on the page
// twice, each form rendered once) with labelled fields and the consent text exactly as
// defined (as text, never markup); a post sent sooner than the minimum time to fill is held
// until the token is old enough; a value the server refuses shows its error next to the
// field; the corrected post succeeds (the success message, as text) and reaches the pipeline
// as an identify and a `Form Submitted` event with analytics.js's anonymousId, the page URL
// with its UTM parameters and the referrer, which the processor applies to the same profile
// as the SDK's page call. The second form follows its redirect. Nothing is sent with
// credentials and nothing but the two origins is contacted. A second test: the id analytics.js
// stored (its cookie) when the SDK is not on the page, and an expired token renewed once.
import { createServer, type Server } from 'node:http';
import { type Browser, chromium, type Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import { signFormToken } from '../../ingest/form-token.ts';
import type { Config } from '../../runtime/config.ts';
import { topics } from '../../schemas/topics.ts';
import { adminApi, eventually, readTopic, testConfig, testLogger, uniqueId } from '../harness.ts';

type Json = Record<string, unknown>;
// biome-ignore lint/suspicious/noExplicitAny: the page's globals, read in the browser
type Win = any;

const MIN_FILL_SECONDS = 3;
const CONSENT_TEXT = 'Send me <b>news</b> & offers by email (unsubscribe any time).';
const SUCCESS = 'Thanks, <you> & yours!';

let cfg: Config;
let running: RunningServices;
let ingestUrl: string;
let site: Server;
let siteOrigin: string;
/** The customer site's pages by path. */
const pages = new Map<string, string>([['/thanks', '<!doctype html><title>Thanks</title>ok']]);
let browser: Browser | undefined;
let reader: { seen: Array<{ key: string; value: Json }>; stop(): Promise<void> };
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);

/** A page with analytics.js (Segment's snippet, our host as its CDN) and both form placements. */
function sitePage(ws: string, leadForm: string, demoForm: string): string {
  const s = (v: string) => JSON.stringify(v).replace(/</g, '\\u003c');
  const cdn = ingestUrl;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Customer page</title>
<script>
!function(){var i="analytics",analytics=window[i]=window[i]||[];if(!analytics.initialize)if(analytics.invoked)window.console&&console.error&&console.error("Segment snippet included twice.");else{analytics.invoked=!0;analytics.methods=["trackSubmit","trackClick","trackLink","trackForm","pageview","identify","reset","group","track","ready","alias","debug","page","screen","once","off","on","addSourceMiddleware","addIntegrationMiddleware","setAnonymousId","addDestinationMiddleware","register"];analytics.factory=function(e){return function(){if(window[i].initialized)return window[i][e].apply(window[i],arguments);var n=Array.prototype.slice.call(arguments);if(["track","screen","alias","group","page","identify"].indexOf(e)>-1){var c=document.querySelector("link[rel='canonical']");n.push({__t:"bpc",c:c&&c.getAttribute("href")||void 0,p:location.pathname,u:location.href,s:location.search,t:document.title,r:document.referrer})}n.unshift(e);analytics.push(n);return analytics}};for(var n=0;n<analytics.methods.length;n++){var key=analytics.methods[n];analytics[key]=analytics.factory(key)}analytics.load=function(key,n){var t=document.createElement("script");t.type="text/javascript";t.async=!0;t.setAttribute("data-global-segment-analytics-key",i);t.src=${s(cdn)}+"/analytics.js/v1/"+key+"/analytics.min.js";var r=document.getElementsByTagName("script")[0];r.parentNode.insertBefore(t,r);analytics._loadOptions=n};analytics._writeKey=${s(cfg.keys.writeKey)};analytics._cdn=${s(cdn)};analytics.SNIPPET_VERSION="5.2.1";
analytics.load(${s(cfg.keys.writeKey)});
analytics.page();
}}();
</script></head>
<body><h1>Get the report</h1>
<div id="lead" data-form-later="${ws}/${leadForm}"></div>
<script src="${cdn}/v1/forms/embed.js" async></script>
<h2>Book a demo</h2>
<script src="${cdn}/v1/forms/embed.js" data-workspace="${ws}" data-form="${demoForm}" data-submit-label="Book" async></script>
</body></html>`;
}

beforeAll(async () => {
  cfg = testConfig({
    CDP_FORMS_MIN_FILL_SECONDS: String(MIN_FILL_SECONDS),
    CDP_FORMS_IP_RATE_PER_MINUTE: '100000',
    CDP_FORMS_FORM_RATE_PER_MINUTE: '100000',
  });
  running = await startServices(cfg, ['processor', 'query', 'ingest'], testLogger(cfg));
  ingestUrl = running.urls.ingest!;
  site = createServer((req, res) => {
    const html = pages.get((req.url ?? '/').split('?')[0]!);
    if (req.method === 'GET' && html)
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  const addr = site.address();
  siteOrigin = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  reader = (await readTopic<Json>(
    cfg.kafka.brokers,
    topics(cfg.kafka.topicPrefix).events,
    `${cfg.kafka.topicPrefix}-embed-verify`,
  )) as typeof reader;
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
});

afterAll(async () => {
  await browser?.close();
  if (site) await new Promise((r) => site.close(r));
  await reader?.stop();
  await running?.stop();
});

async function createForm(body: unknown): Promise<string> {
  const res = await api('POST', '/v1/forms', body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

describe('the embed snippet on a customer page (another origin)', () => {
  it('renders, shows the server’s field errors, submits with the analytics.js anonymousId, and follows a redirect', async () => {
    const ws = cfg.keys.workspace;
    const company = uniqueId('Acme ');
    const leadId = await createForm({
      name: 'Report <download>',
      fields: [
        { name: 'email', label: 'Work email', type: 'email', required: true },
        { name: 'company', label: 'Company', type: 'text', required: true, maxLength: 80 },
        { name: 'role', label: 'Role', type: 'select', options: ['dev', 'marketing'] },
        { name: 'size', label: 'Team size', type: 'number', min: 1, max: 1000, trait: 'team_size' },
        { name: 'lead_source', label: 'Source', type: 'hidden', value: 'report' },
      ],
      consents: [
        { name: 'newsletter', purpose: 'newsletter', channel: 'email', text: CONSENT_TEXT, required: true },
      ],
      success: { message: SUCCESS },
    });
    const demoId = await createForm({
      name: 'Demo',
      fields: [{ name: 'email', label: 'Email', type: 'email', required: true }],
      success: { redirect: `${siteOrigin}/thanks?from=demo` },
    });
    pages.set('/landing', sitePage(ws, leadId, demoId));
    expect(new URL(siteOrigin).origin).not.toBe(new URL(ingestUrl).origin);

    const context = await browser!.newContext();
    const allowed = new Set([new URL(ingestUrl).origin, siteOrigin]);
    const blocked: string[] = [];
    await context.route(
      (url) => !allowed.has(url.origin),
      (route) => {
        blocked.push(route.request().url());
        return route.abort();
      },
    );
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      // the 400 answers below are logged by Chromium as failed loads; nothing else may be
      if (msg.type() === 'error' && !/status of 400/.test(msg.text())) pageErrors.push(msg.text());
    });
    const formRequests: Request[] = [];
    const submits: Array<{ status: number; body: Json; answer: Json; cookie?: string; origin?: string }> = [];
    let definitionAt = 0;
    const postedAt: number[] = [];
    page.on('request', (req) => {
      if (req.url().startsWith(`${ingestUrl}/v1/forms/`)) formRequests.push(req);
      if (req.method() === 'POST' && req.url().endsWith('/submit')) postedAt.push(Date.now());
    });
    page.on('requestfinished', (req) => {
      if (req.method() === 'GET' && req.url() === `${ingestUrl}/v1/forms/${ws}/${leadId}`)
        definitionAt = Date.now();
    });
    page.on('response', async (res) => {
      const req = res.request();
      if (req.method() !== 'POST' || !/\/v1\/forms\/.+\/submit$/.test(res.url())) return;
      const headers = await req.allHeaders();
      submits.push({
        status: res.status(),
        body: JSON.parse(req.postData() ?? 'null') as Json,
        answer: (await res.json().catch(() => ({}))) as Json,
        cookie: headers.cookie,
        origin: headers.origin,
      });
    });

    const landing = `${siteOrigin}/landing?utm_source=news&utm_campaign=spring#top`;
    await page.goto(landing, { referer: 'https://blog.example.com/post' });
    // the script-tag placement renders right after its script, with its own button text
    const demo = page.locator('script[data-form] + .cdp-form-container');
    await demo.getByLabel('Email').waitFor({ timeout: 20_000 });
    expect(await demo.getByRole('button').textContent()).toBe('Book');

    // analytics.js is running on the page: the id the form must carry
    await page.waitForFunction(() => (globalThis as Win).analytics?.initialized === true, undefined, {
      timeout: 20_000,
    });
    const anonymousId = (await page.evaluate(() =>
      (globalThis as Win).analytics.user().anonymousId(),
    )) as string;
    expect(anonymousId).toMatch(/^[0-9a-f-]{36}$/);

    // a container the page adds later (as a single-page app would), rendered by scan()
    await page.evaluate(() => {
      const el = (globalThis as Win).document.getElementById('lead');
      el.setAttribute('data-cdp-form', el.getAttribute('data-form-later'));
      (globalThis as Win).cdpForms.scan();
    });
    const lead = page.locator('#lead');
    await lead.getByLabel('Work email').waitFor({ timeout: 20_000 });
    expect(definitionAt).toBeGreaterThan(0);

    // --- rendered: labelled controls, the consent text as text, the honeypot out of reach
    await expect.poll(() => lead.getAttribute('data-cdp-form-state')).toBe('ready');
    expect(await lead.getByLabel('Work email').getAttribute('type')).toBe('email');
    expect(await lead.getByLabel('Work email').getAttribute('required')).toBe('');
    expect(await lead.getByLabel('Company').getAttribute('maxlength')).toBe('80');
    expect(await lead.getByLabel('Team size').getAttribute('type')).toBe('number');
    expect(
      await lead.getByLabel('Role').evaluate((e: Win) => [...e.options].map((o: Win) => o.value)),
    ).toEqual(['', 'dev', 'marketing']);
    // one row per control, classed by kind (what a page styles)
    expect(
      await lead.locator('.cdp-form__field').evaluateAll((rows: Win[]) => rows.map((r) => r.className)),
    ).toEqual([
      'cdp-form__field cdp-form__field--email',
      'cdp-form__field cdp-form__field--text',
      'cdp-form__field cdp-form__field--select',
      'cdp-form__field cdp-form__field--number',
      'cdp-form__field cdp-form__field--checkbox cdp-form__consent',
    ]);
    const consent = lead.getByRole('checkbox', { name: CONSENT_TEXT, exact: true });
    expect(await consent.count()).toBe(1);
    expect(await consent.getAttribute('required')).toBe('');
    // the definition's markup is text: no <b> element, the name of the form as given
    expect(await lead.locator('b').count()).toBe(0);
    expect(await lead.locator('form').getAttribute('aria-label')).toBe('Report <download>');
    // the hidden field is not a control; the honeypot is neither reachable nor announced
    expect(await lead.getByLabel('Source').count()).toBe(0);
    expect(await lead.getByRole('textbox', { name: 'Website' }).count()).toBe(0);
    const trap = lead.locator('input[name="_website"]');
    expect(await trap.getAttribute('tabindex')).toBe('-1');
    expect(await trap.evaluate((e: Win) => e.closest('[aria-hidden="true"]') !== null)).toBe(true);
    // the script is on the page twice (once per placement): each form rendered once
    expect(await page.locator('form.cdp-form').count()).toBe(2);
    expect(await lead.locator('form').count()).toBe(1);

    // --- sent at once (well inside the minimum time to fill): the snippet holds the post
    // until the token is old enough, busy meanwhile, so the server does not refuse it as a bot;
    // it refuses the markup in Company, shown beside the field
    await lead.getByLabel('Work email').fill(`${anonymousId}@example.com`);
    await lead.getByLabel('Company').fill('<b>Acme</b>');
    await lead.getByLabel('Role').selectOption('dev');
    await lead.getByLabel('Team size').fill('12');
    await consent.check();
    expect(Date.now() - definitionAt).toBeLessThan(MIN_FILL_SECONDS * 1000 - 500);
    await lead.getByRole('button', { name: 'Send' }).click();
    expect(await lead.locator('form').getAttribute('aria-busy')).toBe('true');
    expect(await lead.getByRole('button', { name: 'Send' }).isDisabled()).toBe(true);
    const companyInput = lead.getByLabel('Company');
    const errorId = await companyInput.getAttribute('aria-describedby');
    expect(errorId).toMatch(/^cdpf\d+-company-error$/);
    // the error is in the field's own row, right after the input
    const companyError = lead.locator(
      `.cdp-form__field:has(#${errorId!.replace('-error', '')}) > #${errorId}`,
    );
    await expect.poll(() => companyError.isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await companyError.textContent()).toBe('markup (<…>) is not allowed');
    await eventually('submit 1 answered', () => submits.length >= 1);
    expect(submits).toHaveLength(1);
    expect(postedAt[0]! - definitionAt).toBeGreaterThanOrEqual(MIN_FILL_SECONDS * 1000 - 200);
    expect(submits[0]).toMatchObject({
      status: 400,
      answer: { errors: { company: 'markup (<…>) is not allowed' } },
    });
    expect(await companyInput.getAttribute('aria-invalid')).toBe('true');
    expect(await companyInput.evaluate((e: Win) => e === e.ownerDocument.activeElement)).toBe(true);
    expect(await lead.locator('.cdp-form__error:not([hidden])').count()).toBe(1);

    // --- corrected: accepted, the success message as text
    await companyInput.fill(company);
    await lead.getByRole('button', { name: 'Send' }).click();
    const done = lead.locator('.cdp-form__success');
    await done.waitFor();
    expect(await done.textContent()).toBe(SUCCESS);
    expect(await lead.getAttribute('data-cdp-form-state')).toBe('submitted');
    await eventually('submit 2 answered', () => submits.length >= 2);
    expect(submits).toHaveLength(2);
    const ok = submits[1]!;
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({
      email: `${anonymousId}@example.com`,
      company,
      role: 'dev',
      size: '12',
      newsletter: true,
      lead_source: 'report',
      _token: expect.stringMatching(/^\d+\.[A-Za-z0-9_-]{43}$/),
      _page: `${siteOrigin}/landing?utm_source=news&utm_campaign=spring`,
      _referrer: 'https://blog.example.com/post',
      anonymousId,
    });
    // cross-origin, and never with credentials: analytics.js's cookie (127.0.0.1, any port) stays home
    for (const s of submits) {
      expect(s.origin).toBe(siteOrigin);
      expect(s.cookie).toBeUndefined();
    }
    expect(await context.cookies(ingestUrl)).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'ajs_anonymous_id' })]),
    );

    // --- in the pipeline: the identify and the event, keyed and attributed to this browser
    const mine = await eventually('the identify and Form Submitted in Kafka', () => {
      const got = reader.seen.filter(
        (m) => m.value.anonymousId === anonymousId && String(m.value.messageId).startsWith('form-'),
      );
      return got.length === 2 ? got : undefined;
    });
    const identify = mine.find((m) => m.value.type === 'identify')!;
    const track = mine.find((m) => m.value.type === 'track')!;
    expect(identify.key).toBe(`${ws}:${anonymousId}`);
    expect(track.key).toBe(`${ws}:${anonymousId}`);
    expect(identify.value.traits).toEqual({
      email: `${anonymousId}@example.com`,
      company,
      role: 'dev',
      team_size: 12,
      lead_source: 'report',
    });
    expect(track.value).toMatchObject({
      event: 'Form Submitted',
      workspaceId: ws,
      properties: {
        formId: leadId,
        url: `${siteOrigin}/landing?utm_source=news&utm_campaign=spring`,
        referrer: 'https://blog.example.com/post',
        utm: { source: 'news', campaign: 'spring' },
      },
      context: { campaign: { source: 'news', name: 'spring' } },
    });
    // the processor put it on the profile analytics.js's page call made
    const profile = await eventually('the profile with the form traits', async () => {
      const r = await api('GET', `/v1/profiles?anonymousId=${encodeURIComponent(anonymousId)}`);
      return r.status === 200 && r.body.traits?.company === company ? r.body : undefined;
    });
    expect(profile.traits).toMatchObject({ email: `${anonymousId}@example.com`, team_size: 12 });
    const events = await eventually('the SDK page call and the form event on one profile', async () => {
      const r = await api('GET', `/v1/profiles/${profile.id}/events`);
      const ev = (r.body.events ?? []) as Array<{ type: string; event?: string }>;
      return ev.some((e) => e.type === 'page') && ev.some((e) => e.event === 'Form Submitted')
        ? ev
        : undefined;
    });
    expect(events.length).toBeGreaterThanOrEqual(2);

    // --- the second form (script placement) follows its redirect
    await demo.getByLabel('Email').fill(`demo-${anonymousId}@example.com`);
    await Promise.all([
      page.waitForURL(`${siteOrigin}/thanks?from=demo`),
      demo.getByRole('button', { name: 'Book' }).click(),
    ]);
    // (its answer body is gone with the page it navigated away from; the navigation shows it)
    await eventually('the demo submit answered', () => submits.length >= 3);
    expect(submits[2]).toMatchObject({
      status: 200,
      body: { email: `demo-${anonymousId}@example.com`, anonymousId },
    });

    // the snippet itself was loaded once, cacheable; nothing went anywhere else
    const scripts = formRequests.filter((r) => r.url().endsWith('/v1/forms/embed.js'));
    expect(scripts.length).toBeGreaterThanOrEqual(1);
    expect((await scripts[0]!.response())?.headers()['cache-control']).toMatch(/max-age=86400/);
    expect(blocked).toEqual([]);
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it('without analytics.js loaded takes its stored id (cookie), and replaces an expired token once', async () => {
    const ws = cfg.keys.workspace;
    const formId = await createForm({
      name: 'Newsletter',
      fields: [{ name: 'email', label: 'Email', type: 'email', required: true }],
      success: { message: 'Subscribed.' },
    });
    // analytics.js ran on an earlier page of this site (its cookie, JSON-quoted); not on this one
    pages.set(
      '/plain',
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Plain</title></head><body>
<div id="nl" data-cdp-form="${ws}/${formId}"></div>
<script src="${ingestUrl}/v1/forms/embed.js" async></script></body></html>`,
    );
    const stored = uniqueId('stored-');
    const context = await browser!.newContext();
    try {
      await context.addCookies([
        { name: 'ajs_anonymous_id', value: encodeURIComponent(JSON.stringify(stored)), url: siteOrigin },
      ]);
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (err) => pageErrors.push(err.message));
      // the page was left open past the token's age: the first definition carries an expired
      // one (signed, 30 days old); the snippet fetches a fresh one and sends again, once
      let served = 0;
      await page.route(`${ingestUrl}/v1/forms/${ws}/${formId}`, async (route) => {
        const res = await route.fetch();
        const body = (await res.json()) as Json;
        if (served++ === 0)
          body.token = signFormToken(cfg.forms.secret, ws, formId, Date.now() - 30 * 86_400_000);
        await route.fulfill({ response: res, json: body });
      });
      const submits: Array<{ body: Json; status: number }> = [];
      page.on('response', (res) => {
        if (res.request().method() === 'POST' && res.url().endsWith('/submit'))
          submits.push({ body: JSON.parse(res.request().postData() ?? '{}') as Json, status: res.status() });
      });
      await page.goto(`${siteOrigin}/plain`);
      const nl = page.locator('#nl');
      await nl.getByLabel('Email').fill(`${stored}@example.com`);
      await nl.getByRole('button', { name: 'Send' }).click();
      await nl.locator('.cdp-form__success').waitFor();
      expect(await nl.locator('.cdp-form__success').textContent()).toBe('Subscribed.');
      expect(served).toBe(2);
      expect(submits.map((x) => x.status)).toEqual([400, 200]);
      expect(submits[0]!.body._token).not.toBe(submits[1]!.body._token);
      expect(submits[1]!.body.anonymousId).toBe(stored);
      expect(submits[1]!.body).not.toHaveProperty('_referrer');
      const got = await eventually('the form event of the stored id', () =>
        reader.seen.find((m) => m.value.anonymousId === stored && m.value.event === 'Form Submitted'),
      );
      expect(got.key).toBe(`${ws}:${stored}`);
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
