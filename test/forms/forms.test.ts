// Forms on the real stack: defined through the query API, rendered and taken by the ingest
// host (an HTML form's urlencoded POST, no JavaScript), a submission through Kafka and the
// processor (traits, a segment entry, a campaign's webhook), its consent recorded with the
// text shown, and everything refused (validation errors, the honeypot, hostile input) never
// stored: a valid submission sent after it with the same anonymousId (the same Kafka key, so
// handled after it) finds nothing of it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { signFormToken } from '../../ingest/form-token.ts';
import type { Config } from '../../runtime/config.ts';
import { adminApi, eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);

beforeAll(async () => {
  cfg = testConfig({
    CDP_FORMS_MIN_FILL_SECONDS: '2',
    CDP_FORMS_IP_RATE_PER_MINUTE: '100000',
    CDP_FORMS_FORM_RATE_PER_MINUTE: '100000',
  });
  receiver = await startWebhookReceiver();
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});
afterAll(async () => {
  await running?.stop();
  await receiver?.close();
});

const CONSENT_TEXT = 'Yes, email me the newsletter & offers (unsubscribe any time).';

function leadForm(extra: Record<string, unknown> = {}) {
  return {
    name: 'Lead <magnet>',
    fields: [
      { name: 'email', label: 'Email', type: 'email', required: true },
      { name: 'company', label: 'Company', type: 'text', required: true, maxLength: 80 },
      { name: 'size', label: 'Team size', type: 'number', min: 1, max: 100000, trait: 'team_size' },
      { name: 'role', label: 'Role', type: 'select', options: ['dev', 'marketing', 'other'] },
      { name: 'phone', label: 'Phone', type: 'tel' },
      { name: 'terms', label: 'I agree', type: 'checkbox' },
      { name: 'lead_source', label: 'Source', type: 'hidden', value: 'webinar' },
    ],
    consents: [{ name: 'newsletter', purpose: 'newsletter', channel: 'email', text: CONSENT_TEXT }],
    success: { redirect: 'https://example.com/thanks?x=1' },
    ...extra,
  };
}

async function createForm(body: unknown): Promise<{ id: string; version: number }> {
  const res = await api('POST', '/v1/forms', body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; version: number };
}

const submitUrl = (id: string) => `${running.urls.ingest}/v1/forms/${cfg.keys.workspace}/${id}/submit`;
/** A token as the rendered form carries it, shown long enough ago. */
const oldToken = (id: string, agoMs = 10_000) =>
  signFormToken(cfg.forms.secret, cfg.keys.workspace, id, Date.now() - agoMs);

/** An HTML form's own POST: urlencoded, a browser's Accept, no redirect followed. */
async function post(
  id: string,
  fields: Record<string, string> | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string; location: string | null; type: string }> {
  const res = await fetch(submitUrl(id), {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'text/html,application/xhtml+xml,*/*;q=0.8',
      'user-agent': 'FormTest/1.0',
      ...headers,
    },
    body: typeof fields === 'string' ? fields : new URLSearchParams(fields).toString(),
  });
  return {
    status: res.status,
    text: await res.text(),
    location: res.headers.get('location'),
    type: res.headers.get('content-type') ?? '',
  };
}

async function profileByAnon(anonymousId: string) {
  const res = await api('GET', `/v1/profiles?anonymousId=${encodeURIComponent(anonymousId)}`);
  return res.status === 200 ? res.body : undefined;
}

async function eventsOf(profileId: string) {
  return (await api('GET', `/v1/profiles/${profileId}/events`)).body.events as Array<{
    event?: string;
    type: string;
    properties: Record<string, unknown>;
  }>;
}

/** A valid submission after refused ones, on the same anonymousId: its profile shows what was stored. */
async function sentinel(id: string, anonymousId: string) {
  const ok = await post(id, {
    email: `${anonymousId}@sentinel.test`,
    company: 'Sentinel',
    anonymousId,
    _token: oldToken(id),
  });
  expect(ok.status, ok.text).toBe(303);
  const p = await eventually('the sentinel submission applied', () => profileByAnon(anonymousId));
  const events = await eventually('the sentinel event in the history', async () => {
    const ev = await eventsOf(p.id);
    return ev.some((e) => e.event === 'Form Submitted') ? ev : undefined;
  });
  return { profile: p, events };
}

describe('forms', () => {
  it('a no-JS form post sets traits, enters a segment, triggers the campaign webhook and records consent with its text', async () => {
    const company = uniqueId('Acme');
    const seg = await api('POST', '/v1/segments', {
      name: 'Form leads',
      rule: {
        and: [
          { '==': [{ var: 'traits.company' }, company] },
          { '==': [{ var: 'traits.lead_source' }, 'webinar'] },
        ],
      },
    });
    expect(seg.status).toBe(201);
    const cmp = await api('POST', '/v1/campaigns', {
      name: 'Welcome leads',
      segmentId: seg.body.id,
      on: 'enter',
      channel: 'webhook',
      webhook: { url: receiver.url },
    });
    expect(cmp.status).toBe(201);
    const form = await createForm(leadForm());

    // the form as a browser gets it: every hidden input is in the HTML
    const page = await fetch(
      `${running.urls.ingest}/v1/forms/${cfg.keys.workspace}/${form.id}?utm_source=news&utm_campaign=spring`,
      { headers: { accept: 'text/html', referer: 'https://blog.example.com/post' } },
    );
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toBe(
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https://example.com",
    );
    const html = await page.text();
    expect(html).toContain('Lead &#60;magnet&#62;');
    expect(html).toContain(CONSENT_TEXT.replace('&', '&#38;'));
    const hidden = Object.fromEntries(
      [...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [
        m[1]!,
        m[2]!.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n))),
      ]),
    );
    expect(Object.keys(hidden).sort()).toEqual(['_page', '_referrer', '_token', 'lead_source']);
    expect(hidden._referrer).toBe('https://blog.example.com/post');
    const anonymousId = uniqueId('browser-');
    const fields = {
      ...hidden,
      _website: '',
      email: `${anonymousId}@Example.com`,
      company,
      size: '42',
      role: 'dev',
      phone: '+44 20 7946 0000',
      terms: 'on',
      newsletter: 'on',
    };
    // posted at once: faster than a person fills a form
    const fast = await post(form.id, fields);
    expect(fast.status).toBe(400);
    expect(fast.text).toContain('too fast');
    // the same form, posted once the minimum time passed; the analytics.js cookie links the browser
    const sent = await eventually(
      'the post accepted after the minimum time to fill',
      async () => {
        const r = await post(form.id, fields, { cookie: `other=1; ajs_anonymous_id=%22${anonymousId}%22` });
        return r.status === 303 ? r : undefined;
      },
      10_000,
      250,
    );
    expect(sent.location).toBe('https://example.com/thanks?x=1');

    const profile = await eventually('the submission on the profile', async () => {
      const p = await profileByAnon(anonymousId);
      return p?.traits?.company === company ? p : undefined;
    });
    expect(profile.traits).toMatchObject({
      email: `${anonymousId}@Example.com`,
      company,
      team_size: 42,
      role: 'dev',
      phone: '+44 20 7946 0000',
      terms: true,
      lead_source: 'webinar',
    });
    // the email identifies the person
    const byEmail = await api(
      'GET',
      `/v1/profiles?email=${encodeURIComponent(`${anonymousId}@example.com`)}`,
    );
    expect(byEmail.body.id).toBe(profile.id);
    await eventually('the segment entered', async () =>
      ((await profileByAnon(anonymousId))?.segments as string[] | undefined)?.includes(seg.body.id),
    );
    const delivery = await eventually('the campaign webhook', () =>
      receiver.deliveries.find((d) => d.body.includes(profile.id)),
    );
    expect(JSON.parse(delivery.body)).toMatchObject({ type: 'segment.entered', campaignId: cmp.body.id });

    const events = await eventually('the Form Submitted event in the history', async () => {
      const ev = await eventsOf(profile.id);
      return ev.find((e) => e.event === 'Form Submitted');
    });
    expect(events.properties).toMatchObject({
      formId: form.id,
      formVersion: 1,
      referrer: 'https://blog.example.com/post',
      utm: { source: 'news', campaign: 'spring' },
    });
    expect(String(events.properties.url)).toContain('utm_source=news');

    // consent: current decision, and the log row with source, address, agent and text
    const consent = await eventually('the consent recorded', async () => {
      const c = (await api('GET', `/v1/profiles/${profile.id}/consent`)).body.consents as Array<
        Record<string, unknown>
      >;
      return c?.length ? c : undefined;
    });
    expect(consent).toMatchObject([{ channel: 'email', purpose: 'newsletter', subscribed: true }]);
    const row = await eventually('the consent log row', async () => {
      const res = await fetch(`${running.urls.query}/v1/profiles/${profile.id}/export`, {
        headers: { authorization: `Bearer ${cfg.keys.adminKey}` },
      });
      const lines = (await res.text())
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
      return lines.find((l) => l.type === 'consent_log');
    });
    expect(row).toMatchObject({
      channel: 'email',
      purpose: 'newsletter',
      subscribed: 1,
      source: `form:${form.id}@1`,
      user_agent: 'FormTest/1.0',
      text: CONSENT_TEXT,
    });
    expect(row.ip).toMatch(/127\.0\.0\.1/);
  });

  it('a JSON post gets JSON; a message success is an escaped HTML page for a form post', async () => {
    const form = await createForm(
      leadForm({ consents: [], success: { message: 'Thanks! <script>alert(1)</script>' } }),
    );
    const anonymousId = uniqueId('json-');
    const res = await fetch(submitUrl(form.id), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        email: `${anonymousId}@example.com`,
        company: 'Json Co',
        size: 7,
        terms: true,
        anonymousId,
        _token: oldToken(form.id),
      }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ success: true, message: 'Thanks! <script>alert(1)</script>' });
    const p = await eventually('the JSON submission applied', async () => {
      const p = await profileByAnon(anonymousId);
      return p?.traits?.team_size === 7 ? p : undefined;
    });
    expect(p.traits.terms).toBe(true);

    const page = await post(form.id, {
      email: 'html@example.com',
      company: 'Html Co',
      anonymousId: uniqueId('html-'),
      _token: oldToken(form.id),
    });
    expect(page.status).toBe(200);
    expect(page.type).toContain('text/html');
    expect(page.text).toContain('Thanks! &#60;script&#62;alert(1)&#60;/script&#62;');
    expect(page.text).not.toContain('<script>');
  });

  it('validation errors: a 400 naming each field (an HTML list for a form post, JSON for a script), nothing stored', async () => {
    const form = await createForm(leadForm());
    const anonymousId = uniqueId('invalid-');
    const bad = {
      email: 'not-an-email',
      size: 'many',
      role: 'ceo',
      anonymousId,
      _token: oldToken(form.id),
    };
    const html = await post(form.id, bad);
    expect(html.status).toBe(400);
    expect(html.type).toContain('text/html');
    for (const f of ['email', 'company', 'size', 'role'])
      expect(html.text).toContain(`<strong>${f}</strong>`);
    expect(html.text).toContain('not an email address');
    expect(html.text).toContain('required');

    const json = await fetch(submitUrl(form.id), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams(bad).toString(),
    });
    expect(json.status).toBe(400);
    const body = (await json.json()) as { success: boolean; errors: Record<string, string> };
    expect(body.success).toBe(false);
    expect(body.errors).toEqual({
      email: 'not an email address',
      company: 'required',
      size: 'must be a number',
      role: 'not one of the choices',
    });

    const { profile, events } = await sentinel(form.id, anonymousId);
    expect(profile.traits.company).toBe('Sentinel');
    expect(profile.traits.role).toBeUndefined();
    expect(events.filter((e) => e.event === 'Form Submitted')).toHaveLength(1);
  });

  it('the honeypot: a filled one is answered as a success and nothing is stored', async () => {
    const form = await createForm(leadForm());
    const anonymousId = uniqueId('bot-');
    const trap = await post(form.id, {
      email: 'bot@spam.test',
      company: 'Spam Inc',
      role: 'other',
      _website: 'http://spam.test',
      anonymousId,
      _token: oldToken(form.id),
    });
    expect(trap.status).toBe(303);
    expect(trap.location).toBe('https://example.com/thanks?x=1');
    const { profile, events } = await sentinel(form.id, anonymousId);
    expect(profile.traits.role).toBeUndefined();
    expect(profile.traits.company).toBe('Sentinel');
    expect(events.filter((e) => e.event === 'Form Submitted')).toHaveLength(1);
  });

  it('hostile input is a clear 4xx and nothing of it is stored', async () => {
    const form = await createForm(leadForm());
    const anonymousId = uniqueId('hostile-');
    const base = {
      email: 'mallory@evil.test',
      company: 'Evil',
      anonymousId,
      _token: oldToken(form.id),
    };
    const enc = (o: Record<string, string>) => new URLSearchParams(o).toString();
    const cases: Array<{
      what: string;
      body: string;
      headers?: Record<string, string>;
      status: number;
      says: string;
    }> = [
      {
        what: 'oversized body',
        body: enc({ ...base, company: 'x'.repeat(40_000) }),
        status: 413,
        says: 'over 32768 bytes',
      },
      {
        what: 'over maxLength',
        body: enc({ ...base, company: 'x'.repeat(81) }),
        status: 400,
        says: 'at most 80 characters',
      },
      {
        what: 'unknown field',
        body: enc({ ...base, isAdmin: 'true' }),
        status: 400,
        says: 'not a field of this form',
      },
      {
        what: 'script in a value',
        body: enc({ ...base, company: '<script>alert(1)</script>' }),
        status: 400,
        says: 'markup',
      },
      {
        what: 'an event handler',
        body: enc({ ...base, company: 'x<img src=x onerror=alert(1)>' }),
        status: 400,
        says: 'markup',
      },
      {
        what: 'control characters',
        body: enc({ ...base, company: 'a\u0000b' }),
        status: 400,
        says: 'control characters',
      },
      {
        what: 'a field twice',
        body: `${enc(base)}&company=Again`,
        status: 400,
        says: 'given more than once',
      },
      {
        what: 'a checkbox with junk',
        body: enc({ ...base, terms: 'maybe' }),
        status: 400,
        says: 'must be checked or not',
      },
      {
        what: 'a javascript: page',
        body: enc({ ...base, _page: 'javascript:alert(1)' }),
        status: 400,
        says: 'not an http(s) URL',
      },
      {
        what: 'a hostile anonymousId',
        body: enc({ ...base, anonymousId: 'a"><script>' }),
        status: 400,
        says: 'anonymousId',
      },
      {
        what: 'a forged token',
        body: enc({ ...base, _token: `${Date.now() - 10_000}.${'A'.repeat(43)}` }),
        status: 400,
        says: 'invalid signature',
      },
      {
        what: 'an expired token',
        body: enc({ ...base, _token: oldToken(form.id, 25 * 3_600_000) }),
        status: 400,
        says: 'expired',
      },
      {
        what: 'no token',
        body: enc({ email: base.email, company: base.company, anonymousId }),
        status: 400,
        says: '_token',
      },
      {
        what: 'too many fields',
        body: enc(Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`f${i}`, 'x']))),
        status: 400,
        says: 'more than 100 fields',
      },
      {
        what: 'multipart',
        body: 'x',
        headers: { 'content-type': 'multipart/form-data; boundary=x' },
        status: 415,
        says: 'unsupported content type',
      },
      {
        what: 'a JSON object value',
        body: JSON.stringify({ ...base, company: { $gt: '' } }),
        headers: { 'content-type': 'application/json' },
        status: 400,
        says: 'must be a string, number or boolean',
      },
      {
        what: 'a JSON array',
        body: '[1,2]',
        headers: { 'content-type': 'application/json' },
        status: 400,
        says: 'JSON object',
      },
      {
        what: 'a JSON __proto__',
        body: `{"__proto__":{"admin":true},"email":"a@b.co","company":"X","anonymousId":"${anonymousId}","_token":"${base._token}"}`,
        headers: { 'content-type': 'application/json' },
        status: 400,
        says: '__proto__',
      },
      {
        what: 'a token of another form',
        body: enc({
          ...base,
          _token: signFormToken(cfg.forms.secret, cfg.keys.workspace, 'frm_other', Date.now() - 10_000),
        }),
        status: 400,
        says: 'invalid signature',
      },
    ];
    for (const c of cases) {
      const res = await post(form.id, c.body, c.headers);
      expect(res.status, `${c.what}: ${res.text}`).toBe(c.status);
      expect(res.text, c.what).toContain(c.says);
      // what it echoes is escaped
      expect(res.text, c.what).not.toMatch(/<script|<img/);
    }
    // an unknown field named as markup is named escaped
    const named = await post(form.id, `${enc(base)}&%3Cscript%3E=1`);
    expect(named.status).toBe(400);
    expect(named.text).toContain('&#60;script&#62;');

    // an unknown form, another workspace's, a paused one
    expect((await post('frm_nope', enc(base))).status).toBe(404);
    expect(
      (
        await fetch(`${running.urls.ingest}/v1/forms/other_ws/${form.id}/submit`, {
          method: 'POST',
          body: enc(base),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        })
      ).status,
    ).toBe(404);
    const paused = await createForm(leadForm({ status: 'paused' }));
    const res = await post(paused.id, enc({ ...base, _token: oldToken(paused.id) }));
    expect(res.status).toBe(409);
    expect(res.text).toContain('paused');

    const { profile, events } = await sentinel(form.id, anonymousId);
    expect(profile.traits.company).toBe('Sentinel');
    expect(JSON.stringify(profile.traits)).not.toMatch(/Evil|script|admin/);
    expect(events.filter((e) => e.event === 'Form Submitted')).toHaveLength(1);
  });

  it('definitions: clear 400s naming the field, versions on each edit, pause takes effect on the ingest host', async () => {
    const bad: Array<[unknown, string]> = [
      [leadForm({ success: { redirect: 'javascript:alert(1)' } }), 'success.redirect: must be http or https'],
      [leadForm({ success: { redirect: '/relative' } }), 'success.redirect: not an absolute URL'],
      [
        leadForm({ success: { redirect: 'https://example.com/\r\nSet-Cookie: a=b' } }),
        'success.redirect: no spaces or control characters',
      ],
      [leadForm({ success: { redirect: 'https://u:p@example.com' } }), 'success.redirect: credentials'],
      [leadForm({ fields: [{ name: 'a', label: 'A', type: 'select' }] }), 'fields[0].options'],
      [leadForm({ fields: [{ name: 'a', label: 'A', type: 'radio' }] }), 'fields.0.type'],
      [
        leadForm({ fields: [{ name: 'a', label: 'A', type: 'text', pattern: '(' }] }),
        'fields[0].pattern: not a valid',
      ],
      [
        leadForm({ fields: [{ name: 'a', label: 'A', type: 'text', pattern: '(a+)+' }] }),
        'fields[0].pattern',
      ],
      [
        leadForm({ fields: [{ name: 'anonymousId', label: 'A', type: 'text' }] }),
        'fields[0].name: "anonymousId" is reserved',
      ],
      [leadForm({ fields: [{ name: '_token', label: 'A', type: 'text' }] }), 'fields.0.name'],
      [
        leadForm({
          fields: [
            { name: 'a', label: 'A', type: 'text', trait: 'x' },
            { name: 'b', label: 'B', type: 'text', trait: 'x' },
          ],
        }),
        'fields[1].trait: "x" is set by another field',
      ],
      [
        leadForm({ consents: [{ name: 'email', purpose: 'p', channel: 'email', text: 't' }] }),
        'consents[0].name: "email" is used twice',
      ],
      [leadForm({ colour: 'red' }), 'colour: unknown field'],
      [
        leadForm({ fields: [{ name: 'p', label: 'P', type: 'text', trait: '__proto__' }] }),
        'fields[0].trait: "__proto__" is not a trait name',
      ],
    ];
    for (const [body, says] of bad) {
      const res = await api('POST', '/v1/forms', body);
      expect(res.status, says).toBe(400);
      expect(res.body.error, says).toContain(says);
    }

    const form = await createForm(leadForm());
    const edited = await api('PUT', `/v1/forms/${form.id}`, leadForm({ name: 'Lead v2' }));
    expect(edited.body).toMatchObject({ version: 2, name: 'Lead v2', status: 'active' });
    expect((await api('GET', `/v1/forms/${form.id}/versions/1`)).body.name).toBe('Lead <magnet>');
    expect((await api('GET', '/v1/forms')).body.forms.some((f: { id: string }) => f.id === form.id)).toBe(
      true,
    );

    expect((await api('POST', `/v1/forms/${form.id}/pause`)).body.status).toBe('paused');
    const body = { email: 'p@example.com', company: 'P', _token: oldToken(form.id) };
    await eventually(
      'the pause reached the ingest host',
      async () => (await post(form.id, body)).status === 409,
    );
    expect((await api('POST', `/v1/forms/${form.id}/activate`)).body.status).toBe('active');
    await eventually('the form takes posts again', async () => (await post(form.id, body)).status === 303);

    expect((await api('DELETE', `/v1/forms/${form.id}`)).status).toBe(204);
    expect((await api('GET', `/v1/forms/${form.id}`)).status).toBe(404);
    await eventually(
      'the deleted form is gone from the ingest host',
      async () => (await post(form.id, body)).status === 404,
    );
  });
});
