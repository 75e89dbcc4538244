// Email open and click tracking on the real stack (Kafka, Redis, chDB, every service) with a
// real SMTP server: a campaign with `email.tracking` sends HTML whose links go through the
// public ingest host and which carries a pixel; fetching them from the mail answers the GIF
// and a 302 to the original URL and puts Email Opened / Email Link Clicked on the person's
// timeline (through Kafka and the processor, like any event), where a segment on human
// clicks reacts. A privacy proxy's open is recorded flagged; a forged token is a 400 and
// leaves nothing on the timeline (a later valid click on the same Kafka key shows it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { signTrackingToken, trackingSecret } from '../../schemas/email-tracking-token.ts';
import { type Mail, startSmtpServer } from '../activation-peers.ts';
import { adminApi, eventually, ingestApi, testConfig, testLogger, uniqueId } from '../harness.ts';

const PUBLIC = 'https://track.example.test';
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
  cfg = testConfig({ SMTP_URL: smtp.url, CDP_INGEST_PUBLIC_URL: PUBLIC });
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});
afterAll(async () => {
  await running?.stop();
  await smtp?.close();
});

/** The HTML part of a mail, decoded. */
function htmlOf(mail: Mail): string {
  const boundary = /boundary="?([^";]+)"?/.exec(mail.headers.get('content-type') ?? '')?.[1];
  const chunks = boundary ? mail.raw.split(`--${boundary}`).slice(1, -1) : [mail.raw];
  for (const chunk of chunks) {
    const [head = '', ...rest] = chunk.replace(/^\r?\n/, '').split(/\r?\n\r?\n/);
    if (!/content-type:\s*text\/html/i.test(head)) continue;
    const body = rest.join('\n\n');
    const enc = /content-transfer-encoding:\s*(\S+)/i.exec(head)?.[1]?.toLowerCase();
    if (enc === 'base64') return Buffer.from(body.replace(/\s/g, ''), 'base64').toString('utf8');
    if (enc === 'quoted-printable')
      return Buffer.from(
        body
          .replace(/=\r?\n/g, '')
          .replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
        'latin1',
      ).toString('utf8');
    return body;
  }
  throw new Error(`no HTML part in ${mail.raw.slice(0, 500)}`);
}

/** A link of the mail, on the test's ingest host instead of the public one. */
const local = (link: string) => `${running.urls.ingest}${new URL(link.replace(/&amp;/g, '&')).pathname}`;

type TimelineEvent = { event?: string; type: string; properties: Record<string, unknown> };
const eventsOf = async (pid: string) =>
  ((await api('GET', `/v1/profiles/${pid}/events`)).body.events ?? []) as TimelineEvent[];

describe('email open and click tracking', () => {
  it('the pixel and a link of a sent mail reach the timeline; a proxy open is flagged; a forged token records nothing', async () => {
    const company = uniqueId('Acme');
    const userId = uniqueId('u-');
    const email = `${userId}@shop.test`;

    const seg = await api('POST', '/v1/segments', {
      name: 'Tracked mail audience',
      rule: { '==': [{ var: 'traits.company' }, company] },
    });
    expect(seg.status).toBe(201);
    const clickers = await api('POST', '/v1/segments', {
      name: 'Human clickers',
      rule: {
        '>=': [{ event_count: ['Email Link Clicked', '1d', { '==': [{ var: 'bot' }, false] }] }, 1],
      },
    });
    expect(clickers.status, JSON.stringify(clickers.body)).toBe(201);
    // unknown keys in tracking are refused like any other campaign field
    const bad = await api('POST', '/v1/campaigns', {
      name: 'Bad',
      segmentId: seg.body.id,
      on: 'enter',
      channel: 'email',
      email: { subject: 's', text: 't', tracking: { opens: true, pixels: true } },
    });
    expect(bad.status).toBe(400);
    const cmp = await api('POST', '/v1/campaigns', {
      name: 'Tracked offer',
      segmentId: seg.body.id,
      on: 'enter',
      channel: 'email',
      email: {
        subject: 'Offer for {{ traits.company }}',
        text: 'Shop: https://shop.test/sale',
        html: '<html><body><p>Hi</p><a href="https://shop.test/sale?utm_source=mail&amp;c={{ traits.company }}">Sale</a> <a href="mailto:help@shop.test">Help</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>',
        tracking: { opens: true, clicks: true },
      },
    });
    expect(cmp.status, JSON.stringify(cmp.body)).toBe(201);

    await track('/v1/identify', { userId, traits: { email, company } });
    // a second person, whose mail only a privacy proxy loads
    const other = `${uniqueId('o-')}@shop.test`;
    await track('/v1/identify', { userId: uniqueId('u-'), traits: { email: other, company } });
    const mail = await eventually('the tracked mail', () => smtp.mails.find((m) => m.to.includes(email)));
    const html = htmlOf(mail);
    const pixel = /<img src="(https:\/\/track\.example\.test\/v1\/e\/o\/[A-Za-z0-9_.-]+\.gif)"/.exec(
      html,
    )?.[1];
    const click = /<a href="(https:\/\/track\.example\.test\/v1\/e\/c\/[A-Za-z0-9_.-]+)">Sale<\/a>/.exec(
      html,
    )?.[1];
    expect(pixel, html).toBeDefined();
    expect(click, html).toBeDefined();
    expect(html).toContain('<a href="mailto:help@shop.test">Help</a>');
    expect(html).toMatch(/<a href="http:\/\/[^"]+\/v1\/unsubscribe\?[^"]+">Unsubscribe<\/a>/);
    // the text part keeps its links as written
    expect(mail.raw).toContain('https://shop.test/sale');

    const profile = await eventually('the profile', async () => {
      const r = await api('GET', `/v1/profiles?userId=${encodeURIComponent(userId)}`);
      return r.status === 200 ? r.body : undefined;
    });

    // a forged token (another key) and a tampered one: 400, no redirect
    const forged = signTrackingToken(trackingSecret('not-the-secret'), 'c', {
      w: cfg.keys.workspace,
      p: profile.id,
      k: cmp.body.id,
      s: 'forged',
      t: Date.now() - 60_000,
      u: 'https://evil.test/',
    });
    for (const path of [`/v1/e/c/${forged}`, `${new URL(click!).pathname}x`]) {
      const res = await fetch(`${running.urls.ingest}${path}`, {
        redirect: 'manual',
        headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0' },
      });
      expect(res.status, path).toBe(400);
      expect(res.headers.get('location')).toBeNull();
    }

    // the person opens (an ordinary mail client, past the 2 s a scanner takes) and clicks
    await new Promise((r) => setTimeout(r, 2100));
    const human = {
      'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0',
    };
    for (let i = 0; i < 3; i++) {
      const open = await fetch(local(pixel!), { headers: human });
      expect(open.status).toBe(200);
      expect(open.headers.get('content-type')).toBe('image/gif');
      expect((await open.arrayBuffer()).byteLength).toBe(43);
    }
    // Apple Mail Privacy Protection fetches the pixel too
    expect((await fetch(local(pixel!), { headers: { 'user-agent': 'Mozilla/5.0' } })).status).toBe(200);
    const res = await fetch(local(click!), { headers: human, redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe(`https://shop.test/sale?utm_source=mail&c=${company}`);

    const events = await eventually('the opens and the click on the timeline', async () => {
      const ev = await eventsOf(profile.id);
      return ev.some((e) => e.event === 'Email Link Clicked') &&
        ev.filter((e) => e.event === 'Email Opened').length >= 2
        ? ev
        : undefined;
    });
    const opens = events.filter((e) => e.event === 'Email Opened');
    // three fetches by the person are one open; the proxy's is its own, flagged
    expect(opens).toHaveLength(2);
    const byBot = new Map(opens.map((e) => [e.properties.bot, e.properties]));
    expect(byBot.get(false)).toMatchObject({ campaignId: cmp.body.id, botReason: null });
    expect(byBot.get(true)).toMatchObject({ campaignId: cmp.body.id, botReason: 'proxy:apple-mpp' });
    const clicks = events.filter((e) => e.event === 'Email Link Clicked');
    expect(clicks).toHaveLength(1);
    expect(clicks[0]!.properties).toMatchObject({
      campaignId: cmp.body.id,
      url: `https://shop.test/sale?utm_source=mail&c=${company}`,
      bot: false,
    });
    expect(String(clicks[0]!.properties.sendKey)).toBe(opens[0]!.properties.sendKey);
    // the forged click left nothing: the only click is the real one, to the real URL
    expect(events.some((e) => JSON.stringify(e.properties).includes('evil.test'))).toBe(false);

    const otherMail = await eventually('the second mail', () => smtp.mails.find((m) => m.to.includes(other)));
    const otherPixel = /<img src="(https:\/\/[^"]+\/v1\/e\/o\/[A-Za-z0-9_.-]+\.gif)"/.exec(
      htmlOf(otherMail),
    )?.[1];
    expect(otherPixel).toBeDefined();
    expect(otherPixel).not.toBe(pixel);
    expect((await fetch(local(otherPixel!), { headers: { 'user-agent': 'Mozilla/5.0' } })).status).toBe(200);

    // the campaign's stats, per send: the first was opened and clicked by its person (the
    // proxy's open of it does not make it machine-only), the second only by the proxy
    const stats = await eventually('the engagement in the campaign stats', async () => {
      const st = (await api('GET', `/v1/campaigns/${cmp.body.id}/stats`)).body;
      return st.sent === 2 && st.engagement?.clicked === 1 && st.engagement?.machineOnlyOpened === 1
        ? st
        : undefined;
    });
    expect(stats.engagement).toEqual({
      opened: 1,
      clicked: 1,
      machineOnlyOpened: 1,
      machineOnlyClicked: 0,
      openRate: 0.5,
      clickRate: 0.5,
    });

    // the segment on human clicks reacted
    await eventually('the human-clickers segment', async () => {
      const p = (await api('GET', `/v1/profiles/${profile.id}`)).body;
      return (p.segments as string[] | undefined)?.includes(clickers.body.id) ? p : undefined;
    });
  });
});
