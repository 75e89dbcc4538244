// The real browser SDK, unchanged, in headless Chromium: a page with the standard Segment
// snippet whose only hosts are ours. The snippet loads @segment/analytics-next's standalone
// build from the ingest host (/analytics.js/v1/{writeKey}/analytics.min.js), which fetches
// its settings (/v1/projects/{writeKey}/settings) and lazy chunks (/analytics-next/bundles/)
// from the same host and posts the page, identify and track calls to /v1/p, /v1/i, /v1/t as
// text/plain JSON; a trackLink binding makes it load a lazy chunk too (no click, so no
// fourth event). Nothing else may be contacted: every other request is aborted and counted.
//
// The page itself comes from a small HTTP server of this test on another 127.0.0.1 port, so
// the SDK works cross-origin as on a customer's site. The page is http, so the snippet sets
// `analytics._cdn` (the SDK only infers its CDN from an https script URL).
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, readTopic, testConfig, testLogger } from '../harness.ts';

type Json = Record<string, unknown>;
interface KafkaEvent {
  key: string;
  value: Json;
}
/** What the page exposes once the SDK has replaced the snippet's buffer. */
interface PageGlobals {
  analytics?: { initialized?: boolean; user(): { anonymousId(): string | null } };
  localStorage: { getItem(key: string): string | null };
}

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

let cfg: Config;
let running: RunningServices;
let ingestUrl: string;
let site: Server;
let siteUrl: string;
let browser: Browser | undefined;
let reader: { seen: KafkaEvent[]; stop(): Promise<void> };

/** Every message on this suite's events topic, from the beginning. */
const readEvents = (c: Config): Promise<typeof reader> =>
  readTopic<Json>(
    c.kafka.brokers,
    topics(c.kafka.topicPrefix).events,
    `${c.kafka.topicPrefix}-browser-verify`,
  ) as Promise<typeof reader>;

/** The standard Segment snippet (5.2.x), with our host in place of cdn.segment.com. */
function snippetPage(cdn: string, writeKey: string): string {
  const s = (v: string) => JSON.stringify(v).replace(/</g, '\\u003c');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>SDK test page</title>
<script>
!function(){var i="analytics",analytics=window[i]=window[i]||[];if(!analytics.initialize)if(analytics.invoked)window.console&&console.error&&console.error("Segment snippet included twice.");else{analytics.invoked=!0;analytics.methods=["trackSubmit","trackClick","trackLink","trackForm","pageview","identify","reset","group","track","ready","alias","debug","page","screen","once","off","on","addSourceMiddleware","addIntegrationMiddleware","setAnonymousId","addDestinationMiddleware","register"];analytics.factory=function(e){return function(){if(window[i].initialized)return window[i][e].apply(window[i],arguments);var n=Array.prototype.slice.call(arguments);if(["track","screen","alias","group","page","identify"].indexOf(e)>-1){var c=document.querySelector("link[rel='canonical']");n.push({__t:"bpc",c:c&&c.getAttribute("href")||void 0,p:location.pathname,u:location.href,s:location.search,t:document.title,r:document.referrer})}n.unshift(e);analytics.push(n);return analytics}};for(var n=0;n<analytics.methods.length;n++){var key=analytics.methods[n];analytics[key]=analytics.factory(key)}analytics.load=function(key,n){var t=document.createElement("script");t.type="text/javascript";t.async=!0;t.setAttribute("data-global-segment-analytics-key",i);t.src=${s(cdn)}+"/analytics.js/v1/"+key+"/analytics.min.js";var r=document.getElementsByTagName("script")[0];r.parentNode.insertBefore(t,r);analytics._loadOptions=n};analytics._writeKey=${s(writeKey)};analytics._cdn=${s(cdn)};analytics.SNIPPET_VERSION="5.2.1";
analytics.load(${s(writeKey)});
analytics.page();
analytics.identify('user-1', {plan:'pro'});
analytics.track('Clicked', {x:1});
}}();
</script></head>
<body><h1>SDK test page</h1><a id="buy" href="#buy">Buy</a>
<script>analytics.trackLink(document.getElementById('buy'), 'Buy Clicked');</script>
</body></html>`;
}

beforeAll(async () => {
  cfg = testConfig();
  running = await startServices(cfg, ['ingest'], testLogger(cfg));
  ingestUrl = running.urls.ingest!;
  reader = await readEvents(cfg);
  const html = snippetPage(ingestUrl, cfg.keys.writeKey);
  site = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  const addr = site.address();
  siteUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/`;
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

describe('@segment/analytics-next in Chromium, loaded from and sending to the ingest host', () => {
  it('page, identify and track arrive in Kafka with the anonymousId the browser stored', async () => {
    const context = await browser!.newContext();
    const allowed = new Set([new URL(ingestUrl).origin, new URL(siteUrl).origin]);
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
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
    const served: Array<{ url: string; status: number; type: string | undefined }> = [];
    const posts: Array<{ path: string; status: number; contentType: string | undefined; body: Json }> = [];
    page.on('response', (res) => {
      const req = res.request();
      if (!res.url().startsWith(ingestUrl)) return;
      if (req.method() === 'POST')
        posts.push({
          path: new URL(res.url()).pathname,
          status: res.status(),
          contentType: req.headers()['content-type'],
          body: JSON.parse(req.postData() ?? 'null') as Json,
        });
      else served.push({ url: res.url(), status: res.status(), type: res.headers()['content-type'] });
    });

    await page.goto(siteUrl);
    await page.waitForFunction(
      () => (globalThis as unknown as PageGlobals).analytics?.initialized === true,
      undefined,
      { timeout: 20_000 },
    );
    await eventually('three calls posted and answered', () => posts.length >= 3, 20_000);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}browser-sdk.png` });

    const anonymousId = await page.evaluate(() =>
      (globalThis as unknown as Required<PageGlobals>).analytics.user().anonymousId(),
    );
    expect(anonymousId).toMatch(/^[0-9a-f-]{36}$/);
    // stored by the SDK, where the next page view will find it
    const stored = await page.evaluate(() =>
      (globalThis as unknown as PageGlobals).localStorage.getItem('ajs_anonymous_id'),
    );
    expect(JSON.parse(String(stored))).toBe(anonymousId);

    // everything came from our host, nothing went anywhere else
    expect(blocked).toEqual([]);
    expect(pageErrors).toEqual([]);
    expect(served.map((s) => [new URL(s.url).pathname, s.status])).toEqual(
      expect.arrayContaining([
        [`/analytics.js/v1/${cfg.keys.writeKey}/analytics.min.js`, 200],
        [`/v1/projects/${cfg.keys.writeKey}/settings`, 200],
      ]),
    );
    // trackLink loads the SDK's auto-track code lazily, from {cdn}/analytics-next/bundles/
    await eventually('the lazy auto-track chunk', () =>
      served.some((s) => /\/analytics-next\/bundles\/auto-track\.bundle\.[0-9a-f]+\.js$/.test(s.url)),
    );
    for (const s of served) expect(s.status).toBe(200);
    for (const s of served.filter((x) => !x.url.includes('/settings')))
      expect(s.type).toBe('text/javascript; charset=utf-8');

    // the SDK's own requests: text/plain (no CORS preflight), write key in the body, all 200
    expect(posts.map((p) => p.path).sort()).toEqual(['/v1/i', '/v1/p', '/v1/t']);
    for (const p of posts) {
      expect(p.status).toBe(200);
      expect(p.contentType).toMatch(/^text\/plain/);
      expect(p.body.writeKey).toBe(cfg.keys.writeKey);
      expect(p.body.anonymousId).toBe(anonymousId);
    }

    const sentIds = posts.map((p) => String(p.body.messageId));
    const byType = await eventually('the three calls in Kafka', () => {
      const got = reader.seen.filter((m) => sentIds.includes(String(m.value.messageId)));
      return got.length === 3 ? new Map(got.map((m) => [String(m.value.type), m])) : undefined;
    });
    expect([...byType.keys()].sort()).toEqual(['identify', 'page', 'track']);
    for (const [, m] of byType) {
      expect(m.value.anonymousId).toBe(anonymousId);
      expect(m.value.workspaceId).toBe(cfg.keys.workspace);
      expect(m.value.context).toMatchObject({
        library: { name: 'analytics.js', version: expect.stringMatching(/^next-1\./) },
        page: { url: siteUrl, path: '/', title: 'SDK test page' },
      });
    }
    // each envelope carries the ids the SDK put on the wire; the page call's userId is
    // whatever the SDK filled in (it adds the current user's id at delivery)
    for (const p of posts) {
      const m = byType.get(String(p.body.type))!;
      expect(m.value.messageId).toBe(p.body.messageId);
      expect(m.value.userId).toBe(p.body.userId ?? null);
      expect(m.key).toBe(`${cfg.keys.workspace}:${String(p.body.userId ?? anonymousId)}`);
    }
    expect(byType.get('page')!.value.properties).toMatchObject({
      url: siteUrl,
      path: '/',
      title: 'SDK test page',
    });
    const identify = byType.get('identify')!;
    expect(identify.key).toBe(`${cfg.keys.workspace}:user-1`);
    expect(identify.value).toMatchObject({ userId: 'user-1', traits: { plan: 'pro' } });
    const track = byType.get('track')!;
    expect(track.key).toBe(`${cfg.keys.workspace}:user-1`);
    expect(track.value).toMatchObject({ userId: 'user-1', event: 'Clicked' });
    expect(track.value.properties).toEqual({ x: 1 });

    await context.close();
  });
});
