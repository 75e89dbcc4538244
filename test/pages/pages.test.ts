// Landing pages on the real stack: defined through the query API, served by the ingest host
// at /p/{workspace}/{slug}, each view a page call on Kafka and in the ClickHouse history
// (per variant), a variant sticky per visitor, a form submitted from the page counted as a
// conversion of the variant shown, hostile definitions refused and hostile text escaped, a
// burst of views served without a Redis command per view (MONITOR on the ingest's own
// connection), and a page that is not published answering 404. Abuse of the public route
// (a caller-chosen cookie, any number of views): one anonymousId's flood goes to the
// hot-key overflow lane like /v1 calls, and views past the per-address limit are served but
// not recorded (in process, with a fake producer and a frozen clock, for exact counts).
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { createIngestApp } from '../../ingest/app.ts';
import { signFormToken } from '../../ingest/form-token.ts';
import { startIngest } from '../../ingest/main.ts';
import { RateLimiter } from '../../ingest/rate-limit.ts';
import { createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import type { Logger } from '../../runtime/log.ts';
import { topics } from '../../schemas/topics.ts';
import { adminApi, eventually, readTopic, testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);

beforeAll(async () => {
  cfg = testConfig({
    CDP_FORMS_MIN_FILL_SECONDS: '1',
    CDP_DEFINITIONS_POLL_MS: '50',
    CDP_FORMS_IP_RATE_PER_MINUTE: '100000',
    CDP_FORMS_FORM_RATE_PER_MINUTE: '100000',
    // a small hot-key lane, so that one cookie's flood of views reaches the overflow topic
    // quickly (every other visitor here views a page a few times)
    CDP_HOT_KEY_RATE: '1',
    CDP_HOT_KEY_BURST: '20',
  });
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});
afterAll(async () => {
  await running?.stop();
});

const unescapeHtml = (s: string) => s.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)));
const hiddenOf = (html: string) =>
  Object.fromEntries(
    [...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [
      m[1]!,
      unescapeHtml(m[2]!),
    ]),
  );
const pageUrl = (slug: string, base = running.urls.ingest!) => `${base}/p/${cfg.keys.workspace}/${slug}`;

async function visit(slug: string, anonymousId?: string, headers: Record<string, string> = {}) {
  const res = await fetch(pageUrl(slug), {
    headers: {
      accept: 'text/html',
      ...(anonymousId ? { cookie: `theme=dark; ajs_anonymous_id=%22${anonymousId}%22` } : {}),
      ...headers,
    },
  });
  const html = await res.text();
  return {
    status: res.status,
    html,
    csp: res.headers.get('content-security-policy'),
    setCookie: res.headers.get('set-cookie'),
    variant: hiddenOf(html)._variant,
  };
}

async function createForm(): Promise<string> {
  const res = await api('POST', '/v1/forms', {
    name: 'Demo request',
    fields: [
      { name: 'email', label: 'Email', type: 'email', required: true },
      { name: 'company', label: 'Company', type: 'text' },
    ],
    success: { message: 'Thanks, we will be in touch.' },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

const variantBlocks = (label: string, formId: string) => [
  { type: 'heading', text: `Offer ${label}` },
  { type: 'text', text: `Why ${label} is better.\n\nSecond paragraph.` },
  { type: 'image', url: 'https://cdn.example.com/hero.png', alt: `Hero ${label}` },
  { type: 'form', formId },
  { type: 'button', label: 'Read more', url: 'https://example.com/more?a=1&b=2' },
];

async function stats(pageId: string, query = '') {
  const res = await api('GET', `/v1/pages/${pageId}/stats${query}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

describe('landing pages', () => {
  it('serves two variants sticky per visitor, tracks each view per variant, and counts a form submitted from the page on its variant', async () => {
    const formId = await createForm();
    const slug = uniqueId('spring-offer-');
    const created = await api('POST', '/v1/pages', {
      name: 'Spring offer',
      slug,
      title: 'Spring <offer>',
      variants: [
        { id: 'a', weight: 50, blocks: variantBlocks('A', formId) },
        { id: 'b', weight: 50, blocks: variantBlocks('B', formId) },
      ],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const page = created.body;
    expect(page).toMatchObject({ status: 'draft', version: 1, slug });

    // a draft is not served
    expect((await visit(slug, 'nobody')).status).toBe(404);
    const published = await api('POST', `/v1/pages/${page.id}/publish`);
    expect(published.body.status).toBe('published');
    expect(published.body.version).toBe(1);
    // ingest learns of the publish at its next poll (50 ms here): wait well past it without a
    // visit (each visit is a counted view); on a loaded machine the poll itself runs late
    await new Promise((r) => setTimeout(r, 1500));

    // biome-ignore lint/suspicious/noExplicitAny: events are read field by field
    const events = await readTopic<Record<string, any>>(
      cfg.kafka.brokers,
      topics(cfg.kafka.topicPrefix).events,
      uniqueId('pages-test-'),
    );
    try {
      // 24 visitors with the analytics.js cookie, two visits each: the same variant both times
      const shown = new Map<string, string>();
      const prefix = uniqueId('visitor-');
      for (let i = 0; i < 24; i++) {
        const id = `${prefix}-${i}`;
        const first = await visit(slug, id, { referer: 'https://news.example.org/post' });
        expect(first.status, first.html).toBe(200);
        expect(first.setCookie).toBeNull(); // the visitor's own id is kept
        expect(['a', 'b']).toContain(first.variant);
        expect(first.html).toContain(`Offer ${first.variant!.toUpperCase()}`);
        expect(hiddenOf(first.html).anonymousId).toBe(id);
        const again = await visit(slug, id);
        expect(again.variant).toBe(first.variant);
        shown.set(id, first.variant!);
      }
      const perVariant = (v: string) => [...shown.values()].filter((x) => x === v).length;
      // both are shown (all 24 on one side of a 50/50 split: 2^-23)
      expect(perVariant('a')).toBeGreaterThan(0);
      expect(perVariant('b')).toBeGreaterThan(0);

      // a visitor without the cookie gets one, and keeps the variant with it
      const fresh = await visit(slug);
      expect(fresh.status).toBe(200);
      const cookie = /^ajs_anonymous_id=%22([A-Za-z0-9-]+)%22; Path=\/; Max-Age=\d+; SameSite=Lax/.exec(
        fresh.setCookie ?? '',
      );
      expect(cookie, fresh.setCookie ?? 'no Set-Cookie').not.toBeNull();
      const freshId = cookie![1]!;
      expect(hiddenOf(fresh.html).anonymousId).toBe(freshId);
      expect((await visit(slug, freshId)).variant).toBe(fresh.variant);
      // a HEAD and a browser's prefetch are served, not counted (the counts below are exact)
      const head = await fetch(pageUrl(slug), {
        method: 'HEAD',
        headers: { cookie: `ajs_anonymous_id=${freshId}` },
      });
      expect(head.status).toBe(200);
      expect((await visit(slug, freshId, { 'sec-purpose': 'prefetch' })).status).toBe(200);
      shown.set(freshId, fresh.variant!);

      // the page: everything escaped, a strict CSP naming the image origin
      expect(fresh.csp).toBe(
        "default-src 'none'; style-src 'unsafe-inline'; img-src https://cdn.example.com; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
      );
      expect(fresh.html).toContain('<title>Spring &#60;offer&#62;</title>');
      expect(fresh.html).toContain('href="https://example.com/more?a=1&#38;b=2"');
      expect(fresh.html).not.toContain('<script');

      // each view is a Segment page call on the events topic
      const viewOf = (anon: string) =>
        events.seen
          .filter((m) => m.value.type === 'page' && m.value.anonymousId === anon)
          .map((m) => m.value);
      const views = await eventually('the fresh visitor’s two page calls', () =>
        viewOf(freshId).length === 2 ? viewOf(freshId) : undefined,
      );
      expect(views[0]).toMatchObject({
        type: 'page',
        name: 'Spring <offer>',
        workspaceId: cfg.keys.workspace,
        properties: {
          url: pageUrl(slug),
          path: `/p/${cfg.keys.workspace}/${slug}`,
          referrer: '',
          title: 'Spring <offer>',
          pageId: page.id,
          pageVersion: 1,
          variant: fresh.variant,
          formIds: [formId],
        },
      });

      // the form submitted from the page, as a browser posts it (no JavaScript)
      const submitter = [...shown.keys()].find((k) => shown.get(k) === 'b')!;
      const form = await visit(slug, submitter);
      const action = /<form method="post" accept-charset="utf-8" action="([^"]+)">/.exec(form.html)?.[1];
      expect(action).toBe(`/v1/forms/${cfg.keys.workspace}/${formId}/submit`);
      const hidden = hiddenOf(form.html);
      expect(hidden).toMatchObject({ _pageId: page.id, _variant: 'b', anonymousId: submitter });
      await new Promise((r) => setTimeout(r, 1100)); // the minimum time to fill
      const sent = await fetch(`${running.urls.ingest}${action}`, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'text/html',
          cookie: `ajs_anonymous_id=%22${submitter}%22`,
        },
        body: new URLSearchParams({
          ...hidden,
          _website: '',
          email: `${submitter}@example.com`,
          company: 'Acme',
        }).toString(),
      });
      const sentText = await sent.text();
      expect(sent.status, sentText).toBe(200);
      expect(sentText).toContain('Thanks, we will be in touch.');
      const submitted = await eventually('the Form Submitted event', () =>
        events.seen.find((m) => m.value.event === 'Form Submitted' && m.value.anonymousId === submitter),
      );
      expect(submitted.value.properties).toMatchObject({ formId, pageId: page.id, variant: 'b' });

      // a submission naming the page and variant a by someone who never viewed it: counted
      // as a submission, not as a conversion
      const forger = uniqueId('forger-');
      const forged = await fetch(`${running.urls.ingest}${action}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          _token: signFormToken(cfg.forms.secret, cfg.keys.workspace, formId, Date.now() - 10_000),
          _pageId: page.id,
          _variant: 'a',
          anonymousId: forger,
          email: `${forger}@example.com`,
        }),
      });
      expect(forged.status, await forged.text()).toBe(200);

      // the report: views and visitors per variant from ClickHouse, the conversion on b
      const expectVisitors = { a: [...shown.values()].filter((v) => v === 'a').length, b: 0 };
      expectVisitors.b = shown.size - expectVisitors.a;
      // every visitor viewed twice, the submitter a third time
      const expectViews = { a: 2 * expectVisitors.a, b: 2 * expectVisitors.b + 1 };
      const s = await eventually(
        'every view and the submission in the history',
        async () => {
          const r = await stats(page.id);
          return r.views === expectViews.a + expectViews.b && r.submissions === 2 ? r : undefined;
        },
        30_000,
        250,
      );
      expect(s.uniqueVisitors).toBe(shown.size);
      expect(s.uniqueSubmitters).toBe(2);
      expect(s.conversions).toBe(1);
      expect(s.conversionRate).toBeCloseTo(1 / shown.size, 4);
      const a = s.variants.find((v: { id: string }) => v.id === 'a');
      const b = s.variants.find((v: { id: string }) => v.id === 'b');
      expect(s.variants.map((v: { id: string }) => v.id)).toEqual(['a', 'b']);
      expect(a).toMatchObject({
        weight: 50,
        views: expectViews.a,
        uniqueVisitors: expectVisitors.a,
        submissions: 1,
        uniqueSubmitters: 1,
        conversions: 0,
        conversionRate: 0,
      });
      expect(b).toMatchObject({
        weight: 50,
        views: expectViews.b,
        uniqueVisitors: expectVisitors.b,
        submissions: 1,
        uniqueSubmitters: 1,
        conversions: 1,
      });
      expect(b.conversionRate).toBeCloseTo(1 / expectVisitors.b, 4);
      expect(s.byDay.reduce((n: number, d: { views: number }) => n + d.views, 0)).toBe(s.views);
      expect(s.byDay.length).toBeGreaterThanOrEqual(30); // the default range: the last 30 days

      // the form's own report: its submissions from the page, the page views that showed it
      const fs = await api('GET', `/v1/forms/${formId}/stats`);
      expect(fs.status, JSON.stringify(fs.body)).toBe(200);
      expect(fs.body).toMatchObject({
        formId,
        views: s.views,
        uniqueVisitors: shown.size,
        submissions: 2,
        uniqueSubmitters: 2,
        pageSubmissions: 2,
        conversions: 1,
        byPage: [{ pageId: page.id, views: s.views, submissions: 2 }],
      });
      expect(fs.body.byDay.reduce((n: number, d: { submissions: number }) => n + d.submissions, 0)).toBe(2);
      expect(fs.body.conversionRate).toBeCloseTo(1 / shown.size, 4);

      // a range before any of it: nothing; a bad range: a 400 naming it
      const past = await stats(page.id, '?from=2020-01-01T00:00:00Z&to=2020-01-31T00:00:00Z');
      expect(past).toMatchObject({ views: 0, submissions: 0, conversionRate: null });
      expect(past.variants.map((v: { views: number }) => v.views)).toEqual([0, 0]);
      // every day of the range, empty ones too
      expect(past.byDay.map((d: { date: string }) => d.date)).toEqual(
        Array.from({ length: 30 }, (_, i) => `2020-01-${String(i + 1).padStart(2, '0')}`),
      );
      expect(past.byDay.every((d: { views: number }) => d.views === 0)).toBe(true);
      const badRange = await api('GET', `/v1/pages/${page.id}/stats?from=yesterday`);
      expect(badRange.status).toBe(400);
      expect(badRange.body.error).toMatch(/^from:/);
    } finally {
      await events.stop();
    }
  }, 120_000);

  it('refuses hostile definitions with a 400 naming the field, and escapes what it serves', async () => {
    const formId = await createForm();
    const base = { name: 'Hostile', slug: uniqueId('hostile-') };
    const refused: Array<[unknown, number, RegExp]> = [
      [{ ...base, slug: '../etc/passwd', blocks: [{ type: 'text', text: 'x' }] }, 400, /^slug:/],
      [{ ...base, slug: 'a/b', blocks: [{ type: 'text', text: 'x' }] }, 400, /^slug:/],
      [{ ...base, slug: 'Upper-Case', blocks: [{ type: 'text', text: 'x' }] }, 400, /^slug:/],
      [{ ...base, slug: '-edge-', blocks: [{ type: 'text', text: 'x' }] }, 400, /^slug:/],
      [
        { ...base, blocks: [{ type: 'button', label: 'Click', url: 'javascript:alert(1)' }] },
        400,
        /^blocks\[0\]\.url: must be http or https/,
      ],
      [
        { ...base, blocks: [{ type: 'image', url: 'data:image/png;base64,AAAA', alt: '' }] },
        400,
        /^blocks\[0\]\.url: must be http or https/,
      ],
      [
        { ...base, blocks: [{ type: 'button', label: 'x', url: 'https://user:pw@example.com/' }] },
        400,
        /^blocks\[0\]\.url: credentials/,
      ],
      [
        { ...base, blocks: [{ type: 'form', formId: 'frm_nope' }] },
        400,
        /^blocks\[0\]\.formId: no form frm_nope/,
      ],
      [{ ...base, blocks: [{ type: 'video', url: 'https://x.example' }] }, 400, /^blocks\.0/],
      [{ ...base, blocks: [{ type: 'text', text: 'x'.repeat(10_001) }] }, 400, /^blocks\.0/],
      [{ ...base, blocks: [] }, 400, /^blocks/],
      [{ ...base }, 400, /^blocks: required/],
      [
        {
          ...base,
          variants: [
            { id: 'a', weight: 0, blocks: [{ type: 'text', text: 'x' }] },
            { id: 'b', weight: 0, blocks: [{ type: 'text', text: 'y' }] },
          ],
        },
        400,
        /^variants: at least one variant needs a weight/,
      ],
      [
        {
          ...base,
          variants: [
            { id: 'a', weight: 1, blocks: [{ type: 'text', text: 'x' }] },
            { id: 'a', weight: 1, blocks: [{ type: 'text', text: 'y' }] },
          ],
        },
        400,
        /^variants\[1\]\.id: "a" is used twice/,
      ],
      [
        {
          ...base,
          variants: [
            { id: 'a', weight: -1, blocks: [{ type: 'text', text: 'x' }] },
            { id: 'b', weight: 1, blocks: [{ type: 'text', text: 'y' }] },
          ],
        },
        400,
        /^variants\.0\.weight/,
      ],
      [
        {
          ...base,
          blocks: [{ type: 'text', text: 'x' }],
          variants: [
            { id: 'a', weight: 1, blocks: [{ type: 'text', text: 'x' }] },
            { id: 'b', weight: 1, blocks: [{ type: 'text', text: 'y' }] },
          ],
        },
        400,
        /^variants: give either blocks or variants/,
      ],
      [{ ...base, blocks: [{ type: 'text', text: 'x' }], script: '<x>' }, 400, /^script: unknown field/],
      // 30 blocks of 2 KB in each of 5 variants: every text is allowed, the whole is too big
      [
        {
          ...base,
          variants: ['a', 'b', 'c', 'd', 'e'].map((id) => ({
            id,
            weight: 1,
            blocks: Array.from({ length: 30 }, () => ({ type: 'text', text: 'y'.repeat(2000) })),
          })),
        },
        413,
        /^body: a page definition is at most/,
      ],
    ];
    for (const [body, status, error] of refused) {
      const res = await api('POST', '/v1/pages', body);
      expect(res.status, JSON.stringify(body).slice(0, 200)).toBe(status);
      expect(res.body.error).toMatch(error);
    }
    // nothing of them was stored
    const listed = await api('GET', '/v1/pages');
    expect(listed.body.pages.filter((p: { slug: string }) => p.slug === base.slug)).toEqual([]);

    // markup in every text is shown as text
    const evil = '<script>alert("x")</script><img src=x onerror=alert(1)>';
    const created = await api('POST', '/v1/pages', {
      ...base,
      title: evil,
      description: evil,
      status: 'published',
      blocks: [
        { type: 'heading', text: evil },
        { type: 'text', text: evil },
        { type: 'image', url: 'https://img.example.net/a.png?q="><script>', alt: evil },
        { type: 'button', label: evil, url: 'https://example.com/"onmouseover="alert(1)' },
        { type: 'form', formId },
      ],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const served = await eventually('the page served', async () => {
      const v = await visit(base.slug, uniqueId('evil-'));
      return v.status === 200 ? v : undefined;
    });
    // no tag or attribute of theirs: only their text, escaped
    expect(served.html).not.toMatch(/<script|<img src=x|"onmouseover/i);
    expect(served.html).toContain('href="https://example.com/%22onmouseover=%22alert(1)"');
    expect(served.html).toContain('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;');
    expect(served.csp).toContain('img-src https://img.example.net;');

    // the attribution fields are checked like the form's own: a bad one is a 400 naming it
    const fields = {
      ...hiddenOf(served.html),
      _token: signFormToken(cfg.forms.secret, cfg.keys.workspace, formId, Date.now() - 10_000),
      email: 'x@example.com',
    };
    for (const [bad, field] of [
      [{ _pageId: '<b>x</b>' }, '_pageId'],
      [{ _pageId: '', _variant: 'b' }, '_variant'],
      [{ _variant: 'a'.repeat(65) }, '_variant'],
    ] as const) {
      const res = await fetch(`${running.urls.ingest}/v1/forms/${cfg.keys.workspace}/${formId}/submit`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...fields, ...bad }),
      });
      const answer = (await res.json()) as { errors: Record<string, string> };
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(Object.keys(answer.errors), JSON.stringify(answer)).toContain(field);
    }

    // the slug is the workspace's: a second page cannot take it
    const taken = await api('POST', '/v1/pages', {
      ...base,
      name: 'Copy',
      blocks: [{ type: 'text', text: 'x' }],
    });
    expect(taken.status).toBe(409);
    expect(taken.body.error).toContain(`slug: "${base.slug}" is already used by page ${created.body.id}`);

    // paths that are no slug are a 404, never a file or another route
    for (const path of [
      `/p/${cfg.keys.workspace}/..%2F..%2Fetc%2Fpasswd`,
      `/p/${cfg.keys.workspace}/${base.slug}%2F..`,
      `/p/..%2F${cfg.keys.workspace}/${base.slug}`,
      `/p/${cfg.keys.workspace}/${base.slug.toUpperCase()}`,
      `/p/other_ws/${base.slug}`,
      `/p/${cfg.keys.workspace}/${'a'.repeat(200)}`,
    ]) {
      const res = await fetch(`${running.urls.ingest}${path}`);
      expect(res.status, path).toBe(404);
      expect(await res.text()).not.toContain(base.slug.toUpperCase());
    }
  }, 60_000);

  it('answers 404 for an unpublished, archived or deleted page; an edit is served (a new version); the slug is freed on delete', async () => {
    const slug = uniqueId('lifecycle-');
    const formId = await createForm();
    const created = await api('POST', '/v1/pages', {
      name: 'Lifecycle',
      slug,
      status: 'published',
      blocks: [
        { type: 'heading', text: 'First text' },
        { type: 'form', formId },
      ],
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const visitor = uniqueId('life-');
    // served once ingest has it (a 404 a moment before may have just checked the store)
    await eventually('the new page served', async () =>
      (await visit(slug, visitor)).html.includes('First text'),
    );

    const edited = await api('PUT', `/v1/pages/${id}`, {
      name: 'Lifecycle',
      slug,
      blocks: [
        { type: 'heading', text: 'Second text' },
        { type: 'form', formId },
      ],
    });
    expect(edited.body).toMatchObject({ version: 2, status: 'published' });
    // the rendered page in memory is dropped once ingest sees the change
    await eventually('the edit served', async () =>
      (await visit(slug, visitor)).html.includes('Second text'),
    );
    expect((await api('GET', `/v1/pages/${id}/versions/1`)).body.blocks[0].text).toBe('First text');

    // a change to the embedded form is a change to the page: paused, it is not offered
    expect((await visit(slug, visitor)).html).toContain('<form method="post"');
    expect((await api('POST', `/v1/forms/${formId}/pause`)).status).toBe(200);
    await eventually('the paused form off the page', async () =>
      (await visit(slug, visitor)).html.includes('This form is not available at the moment.'),
    );
    expect((await visit(slug, visitor)).html).not.toContain('<form');

    await api('POST', `/v1/pages/${id}/unpublish`);
    await eventually('the unpublished page gone', async () => (await visit(slug, visitor)).status === 404);
    await api('POST', `/v1/pages/${id}/publish`);
    await eventually('the page back', async () => (await visit(slug, visitor)).status === 200);
    const archived = await api('POST', `/v1/pages/${id}/archive`);
    expect(archived.body.status).toBe('archived');
    await eventually('the archived page gone', async () => (await visit(slug, visitor)).status === 404);

    // every change audited as a page
    const audit = await eventually('the audit entries', async () => {
      const r = await api('GET', `/v1/audit?entityType=page&entityId=${id}`);
      return r.status === 200 && r.body.items?.length >= 5 ? r.body.items : undefined;
    });
    // create, the edit, unpublish, publish, archive (newest first)
    expect(audit.map((e: { action: string }) => e.action)).toEqual([
      'update',
      'update',
      'update',
      'update',
      'create',
    ]);
    expect(audit.map((e: { entityType: string }) => e.entityType)).toEqual(Array(5).fill('page'));

    expect((await api('DELETE', `/v1/pages/${id}`)).status).toBe(204);
    expect((await api('GET', `/v1/pages/${id}`)).status).toBe(404);
    const again = await api('POST', '/v1/pages', {
      name: 'Reuse',
      slug,
      blocks: [{ type: 'text', text: 'x' }],
    });
    expect(again.status, JSON.stringify(again.body)).toBe(201);

    // saves racing for one slug: exactly one gets it
    const raced = uniqueId('race-');
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        api('POST', '/v1/pages', { name: `Race ${i}`, slug: raced, blocks: [{ type: 'text', text: 'x' }] }),
      ),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    for (const a of answers.filter((x) => x.status === 409)) expect(a.body.error).toMatch(/^slug: /);
    const holders = (await api('GET', '/v1/pages')).body.pages.filter(
      (p: { slug: string }) => p.slug === raced,
    );
    expect(holders).toHaveLength(1);
  }, 60_000);

  it('sends one cookie’s flood of views to the hot-key overflow lane; another visitor’s view stays on the events topic', async () => {
    const slug = uniqueId('flood-');
    const created = await api('POST', '/v1/pages', {
      name: 'Flood',
      slug,
      status: 'published',
      blocks: [{ type: 'heading', text: 'Flood' }],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const t = topics(cfg.kafka.topicPrefix);
    // biome-ignore lint/suspicious/noExplicitAny: events are read field by field
    type Msg = Record<string, any>;
    const main = await readTopic<Msg>(cfg.kafka.brokers, t.events, uniqueId('pages-flood-'));
    const overflow = await readTopic<Msg>(cfg.kafka.brokers, t.eventsOverflow, uniqueId('pages-flood-'));
    try {
      await eventually(
        'the flood page served',
        async () => (await visit(slug, uniqueId('probe-'))).status === 200,
      );
      const flooder = uniqueId('victim-anon-');
      const n = 60;
      for (let i = 0; i < n; i++) expect((await visit(slug, flooder)).status).toBe(200);
      const visitor = uniqueId('visitor-');
      expect((await visit(slug, visitor)).status).toBe(200);
      const of = (seen: Array<{ value: Msg }>, anon: string) =>
        seen.filter((m) => m.value.type === 'page' && m.value.anonymousId === anon).length;
      const split = await eventually('every view of the flood on one of the two lanes', () => {
        const r = { main: of(main.seen, flooder), overflow: of(overflow.seen, flooder) };
        return r.main + r.overflow === n && of(main.seen, visitor) === 1 ? r : undefined;
      });
      // CDP_HOT_KEY_BURST 20, then 1 a second: most of the 60 go to the overflow lane
      expect(split.main).toBeGreaterThanOrEqual(20);
      expect(split.overflow).toBeGreaterThan(0);
      expect(split.overflow).toBeGreaterThanOrEqual(n - 20 - 15);
      expect(of(overflow.seen, visitor)).toBe(0);
    } finally {
      await main.stop();
      await overflow.stop();
    }
  }, 60_000);

  it('serves a burst of views from memory: no Redis command per view on the ingest host’s connection', async () => {
    const slug = uniqueId('burst-');
    const formId = await createForm();
    const created = await api('POST', '/v1/pages', {
      name: 'Burst',
      slug,
      status: 'published',
      variants: [
        {
          id: 'x',
          weight: 1,
          blocks: [
            { type: 'heading', text: 'X' },
            { type: 'form', formId },
          ],
        },
        { id: 'y', weight: 3, blocks: [{ type: 'heading', text: 'Y' }] },
      ],
    });
    expect(created.status).toBe(201);

    // a second ingest host on the same stack with its own Redis connection, whose commands
    // MONITOR tells apart by the client's address; its definitions are loaded at start and
    // polled once a minute, so what it sends during the burst is the write keys' poll (a
    // GET every 500 ms) and whatever the views need
    const log = testLogger(cfg);
    const clients = createClients(cfg, log);
    const ingest = await startIngest({ ...cfg, definitions: { pollMs: 60_000 } }, clients, log);
    try {
      const info = String(await clients.redis().client('INFO'));
      const addr = /\baddr=(\S+)/.exec(info)![1]!;
      await eventually('the page on the second host', async () => {
        const r = await fetch(pageUrl(slug, ingest.url));
        return r.status === 200;
      });
      const views = 400;
      const t0 = Date.now();
      const variants = new Map<string, number>();
      const commands = await commandsFrom(addr, clients.redis(), async () => {
        for (let i = 0; i < views; i += 25)
          await Promise.all(
            Array.from({ length: 25 }, async (_, j) => {
              const r = await fetch(pageUrl(slug, ingest.url), {
                headers: { cookie: `ajs_anonymous_id=burst-${i + j}` },
              });
              expect(r.status).toBe(200);
              const v = hiddenOf(await r.text())._variant ?? 'y';
              variants.set(v, (variants.get(v) ?? 0) + 1);
            }),
          );
      });
      const ms = Date.now() - t0;
      // nothing per view, and no definition is read: at most the polls' GETs
      const polls = Math.ceil(ms / 500) + 2 * Math.ceil(ms / 60_000) + 1;
      expect(commands.length, commands.join('\n')).toBeLessThanOrEqual(polls);
      expect(
        commands.filter((c) => !/^"get" /i.test(c)),
        commands.join('\n'),
      ).toEqual([]);
      expect(views / Math.max(1, commands.length)).toBeGreaterThan(5);
      console.log(
        `burst: ${views} views in ${ms} ms, ${commands.length} Redis commands on the ingest connection (revision polls), variants ${JSON.stringify(Object.fromEntries(variants))}`,
      );
      // 1:3 weights: both shown, y about three times as often
      expect(variants.get('x')).toBeGreaterThan(50);
      expect(variants.get('y')).toBeGreaterThan(200);
    } finally {
      await ingest.stop();
      await clients.close();
    }
  }, 60_000);
});

/** The Redis commands the client at `addr` sends while `fn` runs, read from MONITOR over a bare socket. */
async function commandsFrom(
  addr: string,
  own: { echo(m: string): Promise<unknown> },
  fn: () => Promise<void>,
): Promise<string[]> {
  const url = new URL(cfg.redis.url);
  const socket = connect(Number(url.port || 6379), url.hostname);
  const seen: string[] = [];
  const marker = uniqueId('monitor-done-');
  let started: () => void = () => {};
  let markerSeen: () => void = () => {};
  let failed: (e: Error) => void = () => {};
  const ok = new Promise<void>((resolve, reject) => {
    started = resolve;
    failed = reject;
  });
  const done = ok.then(
    () =>
      new Promise<void>((resolve, reject) => {
        markerSeen = resolve;
        failed = reject;
      }),
  );
  done.catch(() => {});
  let pending = '';
  let oks = url.password ? 2 : 1;
  const from = new RegExp(`^\\+[\\d.]+ \\[\\d+ ${addr.replace(/[.[\]]/g, '\\$&')}\\] (.*)$`);
  socket.setEncoding('utf8');
  socket.on('error', (e) => failed(e));
  socket.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\r\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '+OK') {
        oks -= 1;
        if (oks === 0) started();
      } else if (line.startsWith('-')) failed(new Error(`MONITOR: ${line}`));
      else if (line.includes(marker)) markerSeen();
      else {
        const m = from.exec(line);
        if (m) seen.push(m[1]!);
      }
    }
  });
  try {
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    if (password) socket.write(`AUTH ${user ? `${user} ` : ''}${password}\r\n`);
    socket.write('MONITOR\r\n');
    await ok;
    await fn();
    // on the same connection: once MONITOR shows it, it has shown everything before it
    await own.echo(marker);
    await done;
  } finally {
    socket.destroy();
  }
  return seen;
}

describe('landing page views, in process (createIngestApp, a fake producer, a frozen clock)', () => {
  const now = new Date();
  const page = {
    id: 'pg1',
    workspaceId: 'ws1',
    version: 1,
    status: 'published',
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    name: 'Landing',
    slug: 'offer',
    blocks: [{ type: 'heading', text: 'Hello' }],
  };
  const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  const log = {
    warn: (obj: Record<string, unknown>, msg: string) => warnings.push({ obj, msg }),
    info: () => {},
    error: () => {},
    debug: () => {},
    child() {
      return log;
    },
  } as unknown as Logger;
  function setup(addressLimiter: RateLimiter | false) {
    const sent: Array<{ topic: string; key: string; anonymousId: string }> = [];
    const producer = {
      connect: async () => {},
      disconnect: async () => {},
      send: async (topic: string, msgs: Array<{ key: string; value: string }>) => {
        for (const m of msgs)
          sent.push({ topic, key: String(m.key), anonymousId: JSON.parse(m.value).anonymousId });
      },
    };
    const frozen = () => 1_000;
    const app = createIngestApp({
      producer: producer as never,
      eventsTopic: 'events',
      resolveWriteKey: (k) => (k === 'pubkey' ? { workspaceId: 'ws1', kind: 'client' } : undefined),
      log,
      hotKeys: { limiter: new RateLimiter(50, 500, frozen), overflowTopic: 'events-overflow' },
      pages: {
        pages: {
          bySlug: (ws: string, slug: string) => (ws === 'ws1' && slug === 'offer' ? page : undefined),
          form: () => undefined,
          generation: () => 1,
          refresh: async () => {},
        } as never,
        producer: producer as never,
        eventsTopic: 'events',
        log,
        now: () => new Date(),
        secret: 's'.repeat(32),
        produceTimeoutMs: 1000,
        addressLimiter,
      },
    });
    // a peer address as @hono/node-server gives it (app.request has none)
    const view = (anonymousId: string | undefined, address = '203.0.113.5') =>
      app.request(
        '/p/ws1/offer',
        { headers: anonymousId ? { cookie: `ajs_anonymous_id=%22${anonymousId}%22` } : {} },
        { incoming: { socket: { remoteAddress: address, remotePort: 40000, remoteFamily: 'IPv4' } } },
      );
    const count = (topic: string, anonymousId?: string) =>
      sent.filter((s) => s.topic === topic && (!anonymousId || s.anonymousId === anonymousId)).length;
    return { app, sent, view, count };
  }

  it('sends one cookie’s views past the hot-key limit to the overflow topic, sharing the /v1 lane; another visitor stays on the main topic', async () => {
    const { app, view, count } = setup(false);
    for (let i = 0; i < 2000; i++) expect((await view('victim-anon-1')).status).toBe(200);
    // the burst of 500 (the clock does not move), the rest on the overflow lane
    expect(count('events', 'victim-anon-1')).toBe(500);
    expect(count('events-overflow', 'victim-anon-1')).toBe(1500);
    // a normal visitor is not held up by it
    expect((await view('normal-visitor')).status).toBe(200);
    expect(count('events', 'normal-visitor')).toBe(1);
    expect(count('events-overflow', 'normal-visitor')).toBe(0);
    // the same bucket as the tracked calls: the flooded id's /v1/p goes to overflow too
    const res = await app.request('/v1/p', {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from('pubkey:').toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ anonymousId: 'victim-anon-1', name: 'x' }),
    });
    expect(res.status).toBe(200);
    expect(count('events-overflow', 'victim-anon-1')).toBe(1501);
  });

  it('past the per-address limit serves the page but does not record the view (logged); other addresses still recorded', async () => {
    warnings.length = 0;
    const { view, sent, count } = setup(new RateLimiter(1, 10, () => 1_000));
    // a fresh cookie each time: the hot-key lane alone would not stop it
    for (let i = 0; i < 30; i++) {
      const res = await view(undefined);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('<h1>Hello</h1>');
    }
    expect(sent).toHaveLength(10);
    expect(new Set(sent.map((s) => s.anonymousId)).size).toBe(10);
    const limited = warnings.filter((w) => w.msg === 'page_view_rate_limited');
    // logged once in its window, not once per view
    expect(limited).toHaveLength(1);
    expect(limited[0]!.obj).toMatchObject({ address: '203.0.113.5', workspaceId: 'ws1', pageId: 'pg1' });
    // another address is not affected
    expect((await view('normal-visitor', '198.51.100.7')).status).toBe(200);
    expect(count('events', 'normal-visitor')).toBe(1);
    // IPv6: counted per /64, so rotating addresses within one does not help
    for (let i = 0; i < 12; i++) await view(undefined, `2001:db8:1:2::${(i + 1).toString(16)}`);
    expect(sent).toHaveLength(21);
  });
});
