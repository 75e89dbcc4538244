// Double opt-in on the real stack (Kafka, Redis, chDB, every service) with a real SMTP
// server: a purpose the workspace wants confirmed is recorded pending from a form box, no
// marketing goes out on it, one confirmation mail arrives whose link (on the public ingest
// host) shows a page on GET without confirming, and confirms on POST (source `link`, address,
// agent, the text shown); the history and the export show both rows. Tampered, expired,
// foreign and replayed links, two confirmations at once, and an erased person.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { signFormToken } from '../../ingest/form-token.ts';
import type { Config } from '../../runtime/config.ts';
import { confirmSecret, signConfirmToken } from '../../schemas/double-opt-in.ts';
import { type Mail, startSmtpServer } from '../activation-peers.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger, uniqueId } from '../harness.ts';

const PUBLIC = 'https://confirm.example.test';
let cfg: Config;
let running: RunningServices;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);
const track = ingestApi(
  () => running.urls.ingest!,
  () => cfg,
);

beforeAll(async () => {
  smtp = await startSmtpServer();
  cfg = testConfig({
    SMTP_URL: smtp.url,
    CDP_INGEST_PUBLIC_URL: PUBLIC,
    CDP_FORMS_MIN_FILL_SECONDS: '1',
    CDP_FORMS_IP_RATE_PER_MINUTE: '100000',
    CDP_FORMS_FORM_RATE_PER_MINUTE: '100000',
  });
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});
afterAll(async () => {
  await running?.stop();
  await smtp?.close();
});

const NEWS_TEXT = 'Yes, send me the newsletter & offers (unsubscribe any time).';
const UPDATES_TEXT = 'Send me product updates.';

/** The text part of a mail: quoted-printable or base64 decoded. */
function textOf(m: Mail): string {
  const enc = (m.headers.get('content-transfer-encoding') ?? '').toLowerCase();
  if (enc === 'base64') return Buffer.from(m.body.replace(/\s/g, ''), 'base64').toString('utf8');
  if (enc === 'quoted-printable')
    return Buffer.from(
      m.body
        .replace(/=\r?\n/g, '')
        .replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
      'latin1',
    ).toString('utf8');
  return m.body;
}
const optInMails = (to: string) =>
  smtp.mails.filter((m) => m.to.includes(to) && m.headers.has('x-cdp-opt-in'));
/** The confirmation link of the one mail to `to`, and its path on the real ingest host. */
async function linkFor(to: string) {
  const mail = await eventually(`the confirmation mail to ${to}`, () => optInMails(to)[0]);
  const link = textOf(mail).match(/https?:\/\/\S+\/v1\/consent\/confirm\?t=[A-Za-z0-9_.%-]+/)?.[0];
  expect(link, textOf(mail)).toBeDefined();
  const url = new URL(link!);
  return {
    mail,
    link: link!,
    token: url.searchParams.get('t')!,
    local: `${running.urls.ingest}${url.pathname}${url.search}`,
  };
}
const confirmPage = async (url: string, method: 'GET' | 'POST', ua = 'ConfirmTest/1') => {
  const res = await fetch(url, { method, headers: { 'user-agent': ua }, redirect: 'manual' });
  return { status: res.status, text: await res.text(), headers: res.headers };
};
const consentOf = async (pid: string) =>
  (await api('GET', `/v1/profiles/${pid}/consent`)).body.consents as Array<Record<string, unknown>>;
const historyOf = async (pid: string, q = '') =>
  (await api('GET', `/v1/profiles/${pid}/consent/history${q}`)).body.history as Array<
    Record<string, unknown>
  >;

describe('double opt-in', () => {
  it('the setting is validated, kept and audited', async () => {
    expect((await api('PUT', '/v1/settings', { doubleOptIn: { purposes: [] } })).status).toBe(400);
    const bad = await api('PUT', '/v1/settings', {
      doubleOptIn: { purposes: ['newsletter'], template: { subject: 'x', text: 'Hi {{ oops' } },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain('doubleOptIn.template.text');
    expect((await api('PUT', '/v1/settings', { doubleOptIn: { purposes: ['news letter'] } })).status).toBe(
      400,
    );
    expect((await api('PUT', '/v1/settings', {})).status).toBe(400);
    const ok = await api('PUT', '/v1/settings', {
      doubleOptIn: {
        purposes: ['newsletter'],
        ttlHours: 48,
        from: 'Shop <news@shop.test>',
        template: {
          subject: 'Confirm your {{ purpose }} subscription, {{ traits.first_name }}',
          text: 'You agreed to: {{ consent_text }}\nConfirm here: {{ confirm_url }}\nUntil {{ expires_at }}.',
        },
      },
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body).toMatchObject({
      clientKeys: 'restricted',
      doubleOptIn: { purposes: ['newsletter'], ttlHours: 48 },
    });
    expect((await api('GET', '/v1/settings')).body.doubleOptIn.purposes).toEqual(['newsletter']);
    const audit = await eventually('the settings change in the audit log', async () => {
      type Settings = { doubleOptIn: { purposes: string[] } | null };
      const items = (await api('GET', '/v1/audit?entityType=workspace_settings')).body.items as Array<{
        before: Settings;
        after: Settings;
      }>;
      return items?.find((i) => i.after?.doubleOptIn?.purposes?.[0] === 'newsletter');
    });
    expect(audit.before.doubleOptIn).toBeNull();
  });

  it('a form grant is pending (no marketing), the mail link shows a page on GET and confirms on POST', async () => {
    const company = uniqueId('Acme');
    const seg = await api('POST', '/v1/segments', {
      name: 'DOI leads',
      rule: { '==': [{ var: 'traits.company' }, company] },
    });
    expect(seg.status).toBe(201);
    const cmp = await api('POST', '/v1/campaigns', {
      name: 'Newsletter offer',
      segmentId: seg.body.id,
      on: 'enter',
      channel: 'email',
      purpose: 'newsletter',
      email: { subject: 'Offer for {{ traits.company }}', text: 'Buy now {{ unsubscribe_url }}' },
    });
    expect(cmp.status, JSON.stringify(cmp.body)).toBe(201);
    const form = await api('POST', '/v1/forms', {
      name: 'Newsletter signup',
      fields: [
        { name: 'email', label: 'Email', type: 'email', required: true },
        { name: 'first_name', label: 'First name', type: 'text' },
        { name: 'company', label: 'Company', type: 'text' },
      ],
      consents: [
        { name: 'news', purpose: 'newsletter', channel: 'email', text: NEWS_TEXT },
        { name: 'updates', purpose: 'updates', channel: 'email', text: UPDATES_TEXT },
      ],
      success: { message: 'Check your inbox' },
    });
    expect(form.status).toBe(201);
    const anonymousId = uniqueId('doi-');
    const email = `${anonymousId}@example.com`;
    const res = await fetch(`${running.urls.ingest}/v1/forms/${cfg.keys.workspace}/${form.body.id}/submit`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'FormTest/1.0' },
      body: new URLSearchParams({
        email,
        first_name: 'Ada',
        company,
        news: 'on',
        updates: 'on',
        anonymousId,
        _token: signFormToken(cfg.forms.secret, cfg.keys.workspace, form.body.id, Date.now() - 10_000),
      }).toString(),
    });
    expect(res.status, await res.text()).toBe(200);

    const profile = await eventually('the profile', async () => {
      const r = await api('GET', `/v1/profiles?anonymousId=${anonymousId}`);
      return r.status === 200 && r.body.traits?.company === company ? r.body : undefined;
    });
    const pending = await eventually('both boxes recorded', async () => {
      const c = await consentOf(profile.id);
      return c?.length === 2 ? c : undefined;
    });
    expect(pending).toMatchObject([
      {
        channel: 'email',
        purpose: 'newsletter',
        subscribed: false,
        status: 'pending',
        source: `form:${form.body.id}@1`,
      },
      // a purpose without double opt-in is subscribed at once, as before
      { channel: 'email', purpose: 'updates', subscribed: true, status: 'subscribed' },
    ]);

    // the campaign's send is suppressed: pending (or, decided before the box was recorded, unconfirmed)
    const decision = await eventually('the campaign decision', async () => {
      const items = (await api('GET', `/v1/ledger?campaignId=${cmp.body.id}`)).body.items as Array<
        Record<string, unknown>
      >;
      return items?.find((i) => i.outcome === 'suppressed' || i.outcome === 'sent');
    });
    expect(decision).toMatchObject({ outcome: 'suppressed' });
    expect(['consent_pending', 'consent_unconfirmed']).toContain(decision.reason);

    const { mail, link, token, local } = await linkFor(email);
    expect(link.startsWith(`${PUBLIC}/v1/consent/confirm?t=`)).toBe(true);
    expect(mail.headers.get('subject')).toBe('Confirm your newsletter subscription, Ada');
    expect(mail.headers.get('from')).toBe('Shop <news@shop.test>');
    expect(textOf(mail)).toContain(`You agreed to: ${NEWS_TEXT}`);
    // nothing but the confirmation went to the person
    expect(smtp.mails.filter((m) => m.to.includes(email))).toHaveLength(1);

    // GET (what a mail scanner does) shows the page and changes nothing
    const shown = await confirmPage(local, 'GET', 'LinkScanner/1');
    expect(shown.status).toBe(200);
    expect(shown.text).toContain('Yes, send me the newsletter &#38; offers');
    expect(shown.text).toMatch(/<form method="post" action="\/v1\/consent\/confirm\?t=[^"]+"><button/);
    expect(shown.headers.get('cache-control')).toBe('no-store');
    expect(shown.headers.get('referrer-policy')).toBe('no-referrer');
    expect((await consentOf(profile.id))[0]).toMatchObject({ purpose: 'newsletter', status: 'pending' });

    // tampered: a changed payload or signature is a 400 on GET and POST, nothing written
    const [payload, sig] = token.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    const forged = `${Buffer.from(JSON.stringify({ ...claims, u: 'updates' })).toString('base64url')}.${sig}`;
    const tampered = `${running.urls.ingest}/v1/consent/confirm?t=${forged}`;
    expect((await confirmPage(tampered, 'GET')).status).toBe(400);
    expect((await confirmPage(tampered, 'POST')).status).toBe(400);
    expect(
      (await confirmPage(`${running.urls.ingest}/v1/consent/confirm?t=${payload}.x${sig.slice(1)}`, 'POST'))
        .status,
    ).toBe(400);
    expect((await confirmPage(`${running.urls.ingest}/v1/consent/confirm`, 'POST')).status).toBe(400);
    // expired: a correctly signed token past its time is a 410
    const secret = confirmSecret(cfg.unsubscribe.secret);
    const expired = signConfirmToken(secret, { ...claims, e: Math.floor(Date.now() / 1000) - 1 });
    const exp = await confirmPage(`${running.urls.ingest}/v1/consent/confirm?t=${expired}`, 'POST');
    expect(exp.status).toBe(410);
    expect(exp.text).toContain('expired');
    // signed, but not bound to this record's purpose: nothing to confirm
    const foreign = signConfirmToken(secret, { ...claims, u: 'updates' });
    expect((await confirmPage(`${running.urls.ingest}/v1/consent/confirm?t=${foreign}`, 'POST')).status).toBe(
      410,
    );
    expect((await consentOf(profile.id))[0]).toMatchObject({ purpose: 'newsletter', status: 'pending' });

    // POST confirms
    const done = await confirmPage(local, 'POST');
    expect(done.status).toBe(200);
    expect(done.text).toContain('your subscription is confirmed');
    expect((await consentOf(profile.id))[0]).toMatchObject({
      purpose: 'newsletter',
      subscribed: true,
      status: 'subscribed',
      source: 'link',
    });
    // a replay changes nothing and says so
    const again = await confirmPage(local, 'POST');
    expect(again.status).toBe(200);
    expect(again.text).toContain('already confirmed');

    const history = await eventually('the confirmation in the history', async () => {
      const h = await historyOf(profile.id, '?purpose=newsletter');
      return h?.length === 2 ? h : undefined;
    });
    expect(history).toMatchObject([
      {
        purpose: 'newsletter',
        status: 'subscribed',
        subscribed: true,
        source: 'link',
        actor: 'confirm_link',
        ip: '127.0.0.1',
        userAgent: 'ConfirmTest/1',
        text: NEWS_TEXT,
      },
      {
        purpose: 'newsletter',
        status: 'pending',
        subscribed: false,
        source: `form:${form.body.id}@1`,
        userAgent: 'FormTest/1.0',
        text: NEWS_TEXT,
      },
    ]);
    expect(history[0]!.confirmation).toBe(history[1]!.confirmation);
    expect(history[0]!.confirmation).toBe(claims.r);
    expect(Date.parse(String(history[0]!.at))).toBeGreaterThan(Date.parse(String(history[1]!.at)));
    const all = await historyOf(profile.id);
    expect(all.map((h) => `${h.purpose}:${h.status}`).sort()).toEqual([
      'newsletter:pending',
      'newsletter:subscribed',
      'updates:subscribed',
    ]);

    // the person's export has both rows
    const exp2 = await fetch(`${running.urls.query}/v1/profiles/${profile.id}/export`, {
      headers: { authorization: `Bearer ${cfg.keys.adminKey}` },
    });
    const lines = (await exp2.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const logged = lines.filter((l) => l.type === 'consent_log' && l.purpose === 'newsletter');
    expect(logged.map((l) => [l.status, l.source, l.ref]).sort()).toEqual([
      ['pending', `form:${form.body.id}@1`, claims.r],
      ['subscribed', 'link', claims.r],
    ]);
    expect(lines.at(-1)).toMatchObject({ type: 'end' });

    // confirmed: marketing on the purpose goes out on the next entry
    await track('/v1/identify', { anonymousId, traits: { company: `${company}-left` } });
    await eventually('the segment exited', async () => {
      const r = await api('GET', `/v1/profiles/${profile.id}`);
      return !(r.body.segments as string[]).includes(seg.body.id);
    });
    await track('/v1/identify', { anonymousId, traits: { company } });
    const offer = await eventually('the newsletter offer mail', () =>
      smtp.mails.find((m) => m.to.includes(email) && m.headers.get('subject') === `Offer for ${company}`),
    );
    expect(offer).toBeDefined();
    // one confirmation mail in all
    expect(optInMails(email)).toHaveLength(1);
  });

  it('the consent API asks for confirmation; two confirmations at once record one; an erased person has nothing to confirm', async () => {
    const people = [uniqueId('api-'), uniqueId('api-')];
    for (const u of people)
      await track('/v1/identify', { userId: u, traits: { email: `${u}@example.com`, first_name: 'Bo' } });
    const pids = await Promise.all(
      people.map((u) =>
        eventually('the profile', async () => {
          const r = await api('GET', `/v1/profiles?userId=${u}`);
          return r.status === 200 ? (r.body.id as string) : undefined;
        }),
      ),
    );
    const bad = await api('PUT', `/v1/profiles/${pids[0]}/consent`, {
      channel: 'email',
      purpose: 'newsletter',
      subscribed: true,
      confirm: true,
    });
    expect(bad.status).toBe(400); // no text
    for (const pid of pids) {
      const r = await api('PUT', `/v1/profiles/${pid}/consent`, {
        channel: 'email',
        purpose: 'newsletter',
        subscribed: true,
        confirm: true,
        text: 'Newsletter, agreed on the phone',
      });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body.confirmations).toMatchObject([
        { channel: 'email', purpose: 'newsletter', status: 'pending' },
      ]);
      expect(r.body.consents).toMatchObject([{ purpose: 'newsletter', status: 'pending', source: 'api' }]);
    }

    // two POSTs at once: one confirms, the other finds it confirmed; one record either way
    const first = await linkFor(`${people[0]}@example.com`);
    const both = await Promise.all([confirmPage(first.local, 'POST'), confirmPage(first.local, 'POST')]);
    expect(both.map((b) => b.status)).toEqual([200, 200]);
    expect(both.filter((b) => b.text.includes('your subscription is confirmed'))).toHaveLength(1);
    expect(both.filter((b) => b.text.includes('already confirmed'))).toHaveLength(1);
    await eventually('the confirmation logged', async () =>
      (await historyOf(pids[0]!)).some((h) => h.source === 'link'),
    );
    await new Promise((r) => setTimeout(r, 1500)); // a second row would have come by now
    const h = await historyOf(pids[0]!);
    expect(h.filter((x) => x.source === 'link')).toHaveLength(1);
    expect(h.map((x) => x.status)).toEqual(['subscribed', 'pending']);

    // erased before confirming: the link finds nothing, and nothing comes back
    const second = await linkFor(`${people[1]}@example.com`);
    const del = await api('DELETE', `/v1/profiles/${pids[1]}`);
    expect([200, 202]).toContain(del.status);
    await eventually('the erasure done', async () => {
      const j = await api('GET', `/v1/erasures/${del.body.job?.id ?? del.body.job}`);
      return j.body.status === 'done';
    });
    expect((await confirmPage(second.local, 'GET')).status).toBe(410);
    expect((await confirmPage(second.local, 'POST')).status).toBe(410);
    const after = await api('GET', `/v1/profiles/${pids[1]}/consent/history`);
    expect(after.body.history ?? []).toEqual([]);
  });
});
