// Email tracking links: the signed token (a changed byte, another URL, another purpose or
// another key fails) and the rewriting of the rendered HTML (http(s) links to the click
// redirect, entities decoded before signing, the unsubscribe link, mailto:, anchors and
// opted-out links untouched, one pixel before </body>, nothing at all when the campaign
// does not ask).
import { describe, expect, it } from 'vitest';
import type { CampaignDefinition } from '../../schemas/campaign.ts';
import {
  signTrackingToken,
  type TrackingClaims,
  trackingSecret,
  verifyTrackingToken,
} from '../../schemas/email-tracking-token.ts';
import { signUnsubscribeToken } from '../../schemas/unsubscribe-token.ts';
import { change } from '../../test/activation-peers.ts';
import { decodeEntities, trackEmailHtml } from './email-tracking.ts';

const SECRET = trackingSecret('unsubscribe-secret-for-tests');
const CFG = { secret: SECRET, baseUrl: 'https://t.shop.test/' };
const UNSUB = 'https://api.shop.test/v1/unsubscribe?token=abc.def&x=1';

const claims: TrackingClaims = { w: 'ws', p: 'p1', k: 'cmp1', s: 'sk1', t: 1_700_000_000_000 };

function req(tracking: { opens?: boolean; clicks?: boolean } | undefined) {
  const at = new Date().toISOString();
  const campaign: CampaignDefinition = {
    id: 'cmp_t',
    workspaceId: 'ws',
    name: 'Tracked',
    segmentId: 'seg',
    on: 'enter',
    channel: 'email',
    email: { subject: 's', text: 't', html: '<p>x</p>', ...(tracking ? { tracking } : {}) },
    status: 'active',
    version: 1,
    createdAt: at,
    updatedAt: at,
  };
  return {
    campaign,
    change: change('ws', 'seg', 'prof-1', {}),
    sendKey: 'send-key-1',
    unsubscribeUrl: UNSUB,
    nowMs: 1_700_000_000_000,
  };
}

/** The claims of every click link of the HTML, in order. */
function clicks(html: string): TrackingClaims[] {
  return [...html.matchAll(/https:\/\/t\.shop\.test\/v1\/e\/c\/([A-Za-z0-9_.-]+)/g)].map((m) => {
    const v = verifyTrackingToken(SECRET, 'c', m[1]);
    if (!v.ok) throw new Error(`invalid token in ${m[0]}: ${v.reason}`);
    return v.claims;
  });
}

describe('tracking token', () => {
  it('verifies what it signed, with the exact URL', () => {
    const t = signTrackingToken(SECRET, 'c', { ...claims, u: 'https://shop.test/a?b=1' });
    const v = verifyTrackingToken(SECRET, 'c', t);
    expect(v).toEqual({ ok: true, claims: { ...claims, u: 'https://shop.test/a?b=1' } });
  });

  it('refuses a changed payload (another URL) and a changed signature', () => {
    const t = signTrackingToken(SECRET, 'c', { ...claims, u: 'https://shop.test/a' });
    const [payload, sig] = t.split('.') as [string, string];
    const evil = Buffer.from(JSON.stringify({ ...claims, u: 'https://evil.test/' })).toString('base64url');
    expect(verifyTrackingToken(SECRET, 'c', `${evil}.${sig}`)).toEqual({ ok: false, reason: 'signature' });
    const flipped = `${sig.slice(0, -1)}${sig.endsWith('A') ? 'B' : 'A'}`;
    expect(verifyTrackingToken(SECRET, 'c', `${payload}.${flipped}`)).toEqual({
      ok: false,
      reason: 'signature',
    });
    expect(verifyTrackingToken(SECRET, 'c', payload)).toEqual({ ok: false, reason: 'malformed' });
    expect(verifyTrackingToken(SECRET, 'c', `${t}.x`)).toEqual({ ok: false, reason: 'malformed' });
    expect(verifyTrackingToken(SECRET, 'c', '')).toEqual({ ok: false, reason: 'malformed' });
    expect(verifyTrackingToken(SECRET, 'c', 'x'.repeat(5000))).toEqual({ ok: false, reason: 'malformed' });
  });

  it('is bound to its purpose and key', () => {
    const open = signTrackingToken(SECRET, 'o', claims);
    expect(verifyTrackingToken(SECRET, 'o', open).ok).toBe(true);
    // an open token is no click token (and has no URL to go to), nor the other way round
    expect(verifyTrackingToken(SECRET, 'c', open)).toEqual({ ok: false, reason: 'signature' });
    const click = signTrackingToken(SECRET, 'c', { ...claims, u: 'https://shop.test/' });
    expect(verifyTrackingToken(SECRET, 'o', click)).toEqual({ ok: false, reason: 'signature' });
    // another deployment's key, and the unsubscribe secret itself, sign nothing valid here
    const other = signTrackingToken(trackingSecret('another-secret'), 'o', claims);
    expect(verifyTrackingToken(SECRET, 'o', other)).toEqual({ ok: false, reason: 'signature' });
    const raw = signTrackingToken('unsubscribe-secret-for-tests', 'o', claims);
    expect(verifyTrackingToken(SECRET, 'o', raw)).toEqual({ ok: false, reason: 'signature' });
    // an unsubscribe token is not a tracking token
    const unsub = signUnsubscribeToken(SECRET, { w: 'ws', p: 'p1', c: 'email', u: 'marketing' });
    expect(verifyTrackingToken(SECRET, 'o', unsub).ok).toBe(false);
  });

  it('refuses a signed click token whose target is not http(s)', () => {
    const js = signTrackingToken(SECRET, 'c', { ...claims, u: 'javascript:alert(1)' });
    expect(verifyTrackingToken(SECRET, 'c', js)).toEqual({ ok: false, reason: 'malformed' });
  });
});

describe('rewriting the HTML', () => {
  const html = [
    '<html><body>',
    '<a href="https://shop.test/sale?utm_source=mail&amp;id=7">Sale</a>',
    "<a class='x' href='http://shop.test/b&#38;c=1&#x26;d=2'>B</a>",
    '<A HREF=https://shop.test/u>Unquoted</A>',
    `<a href="${UNSUB.replace(/&/g, '&amp;')}">Unsubscribe</a>`,
    '<a href="mailto:help@shop.test?subject=Hi">Mail us</a>',
    '<a href="tel:+3312345678">Call</a>',
    '<a href="#top">Top</a>',
    '<a href="/relative">Relative</a>',
    '<a data-cdp-notrack href="https://shop.test/private">Private</a>',
    '<area shape="rect" coords="0,0,1,1" href="https://shop.test/map">',
    '<img src="https://shop.test/logo.png">',
    '</body></html>',
  ].join('\n');

  it('sends every http(s) link through a signed click token of its exact (decoded) URL', () => {
    const out = trackEmailHtml(html, req({ clicks: true }), CFG);
    const got = clicks(out);
    expect(got.map((c) => c.u)).toEqual([
      'https://shop.test/sale?utm_source=mail&id=7',
      'http://shop.test/b&c=1&d=2',
      'https://shop.test/u',
      'https://shop.test/map',
    ]);
    for (const c of got) expect(c).toMatchObject({ w: 'ws', p: 'prof-1', k: 'cmp_t', s: 'send-key-1' });
    // attributes other than href are kept
    expect(out).toContain("<a class='x' href=\"https://t.shop.test/v1/e/c/");
    expect(out).toContain('<area shape="rect" coords="0,0,1,1" href="https://t.shop.test/v1/e/c/');
  });

  it('leaves the unsubscribe link, mailto:, tel:, anchors, relative, opted-out links and images alone', () => {
    const out = trackEmailHtml(html, req({ clicks: true }), CFG);
    expect(out).toContain(`<a href="${UNSUB.replace(/&/g, '&amp;')}">Unsubscribe</a>`);
    expect(out).toContain('<a href="mailto:help@shop.test?subject=Hi">Mail us</a>');
    expect(out).toContain('<a href="tel:+3312345678">Call</a>');
    expect(out).toContain('<a href="#top">Top</a>');
    expect(out).toContain('<a href="/relative">Relative</a>');
    expect(out).toContain('<a data-cdp-notrack href="https://shop.test/private">Private</a>');
    expect(out).toContain('<img src="https://shop.test/logo.png">');
    expect(out).not.toContain('/v1/e/o/');
  });

  it('adds one open pixel before </body>, signed for the send', () => {
    const out = trackEmailHtml(html, req({ opens: true }), CFG);
    const m = [
      ...out.matchAll(/<img src="https:\/\/t\.shop\.test\/v1\/e\/o\/([A-Za-z0-9_.-]+)\.gif"[^>]*>/g),
    ];
    expect(m).toHaveLength(1);
    expect(out.indexOf(m[0]![0])).toBeLessThan(out.indexOf('</body>'));
    const v = verifyTrackingToken(SECRET, 'o', m[0]![1]);
    expect(v).toEqual({
      ok: true,
      claims: { w: 'ws', p: 'prof-1', k: 'cmp_t', s: 'send-key-1', t: 1_700_000_000_000 },
    });
    // opens only: the links are as written
    expect(clicks(out)).toEqual([]);
    expect(trackEmailHtml('<p>no body tag</p>', req({ opens: true }), CFG)).toMatch(
      /^<p>no body tag<\/p><img /,
    );
  });

  it('changes nothing when tracking is off, not configured, or both flags are false', () => {
    expect(trackEmailHtml(html, req(undefined), CFG)).toBe(html);
    expect(trackEmailHtml(html, req({ opens: false, clicks: false }), CFG)).toBe(html);
    expect(trackEmailHtml(html, req({ opens: true, clicks: true }), undefined)).toBe(html);
  });

  it('decodes character references as a browser does', () => {
    expect(decodeEntities('a&amp;b&#38;c&#x26;d&quot;&lt;&unknown;&#0;')).toBe('a&b&c&d"<&unknown;&#0;');
  });
});
