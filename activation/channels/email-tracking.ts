// Open and click tracking of an email (campaign setting `email.tracking: {opens, clicks}`,
// both off by default): after the HTML is rendered, every http(s) link of an <a> or <area>
// becomes `{ingest}/v1/e/c/{token}` and a 1×1 pixel `{ingest}/v1/e/o/{token}.gif` goes
// before </body>. Each token is signed (schemas/email-tracking-token.ts) and binds the
// workspace, profile, campaign, send key and, for a click, the exact target, which the
// ingest host redirects to (ingest/email-tracking.ts records the event on the normal
// pipeline). Left alone: the unsubscribe link (it must work without us, and a scanner
// following it through a redirect would look like a click), mailto:, tel:, anchors,
// relative links, links marked `data-cdp-notrack`, and a target too long to sign.
// The text part is not rewritten: its links stay readable.
import {
  isHttpUrl,
  MAX_TRACKING_TOKEN_LENGTH,
  signTrackingToken,
} from '../../schemas/email-tracking-token.ts';
import type { SendRequest } from './channel.ts';

export interface EmailTrackingConfig {
  /** trackingSecret(CDP_UNSUBSCRIBE_SECRET) */
  secret: string;
  /** The public ingest host (CDP_INGEST_PUBLIC_URL). */
  baseUrl: string;
}

let configured: EmailTrackingConfig | undefined;

/** Set once by the activation service (activation/main.ts); without it nothing is rewritten. */
export function configureEmailTracking(cfg: EmailTrackingConfig | undefined): void {
  configured = cfg;
}

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

/** An attribute value as the browser reads it: character references decoded. */
export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z]{2,8});?/gi, (m, ref: string) => {
    if (ref[0] === '#') {
      const n = ref[1] === 'x' || ref[1] === 'X' ? Number.parseInt(ref.slice(2), 16) : Number(ref.slice(1));
      return n > 0 && n <= 0x10ffff && !(n >= 0xd800 && n <= 0xdfff) ? String.fromCodePoint(n) : m;
    }
    return NAMED[ref.toLowerCase()] ?? m;
  });
}

const escAttr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

// an <a> or <area> start tag; its href (double-, single- or un-quoted) is found inside it
const LINK_TAG = /<(a|area)\b[^>]*>/gi;
const HREF = /(\shref\s*=\s*)("([^"]*)"|'([^']*)'|([^\s"'=<>`]+))/i;

/** The HTML with its links and pixel rewritten as the campaign asks; unchanged if it asks for neither. */
export function trackEmailHtml(
  html: string,
  req: Pick<SendRequest, 'campaign' | 'change' | 'sendKey' | 'unsubscribeUrl' | 'nowMs'>,
  cfg: EmailTrackingConfig | undefined = configured,
): string {
  const t = req.campaign.email?.tracking;
  if (!cfg || !t || (!t.opens && !t.clicks)) return html;
  const base = cfg.baseUrl.replace(/\/+$/, '');
  const claims = {
    w: req.change.workspaceId,
    p: req.change.profileId,
    k: req.campaign.id,
    s: req.sendKey,
    t: req.nowMs,
  };
  let out = html;
  if (t.clicks) {
    out = out.replace(LINK_TAG, (tag) => {
      if (/\sdata-cdp-notrack\b/i.test(tag)) return tag;
      const m = HREF.exec(tag);
      if (!m) return tag;
      const raw = m[3] ?? m[4] ?? m[5] ?? '';
      const url = decodeEntities(raw).trim();
      if (!isHttpUrl(url) || url === req.unsubscribeUrl) return tag;
      const token = signTrackingToken(cfg.secret, 'c', { ...claims, u: url });
      if (token.length > MAX_TRACKING_TOKEN_LENGTH) return tag;
      return tag.replace(HREF, (_all, lead: string) => `${lead}"${escAttr(`${base}/v1/e/c/${token}`)}"`);
    });
  }
  if (t.opens) {
    const src = `${base}/v1/e/o/${signTrackingToken(cfg.secret, 'o', claims)}.gif`;
    const pixel = `<img src="${escAttr(src)}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px;overflow:hidden">`;
    // before the last </body> (an earlier one may be inside a comment or a quoted example)
    let end = -1;
    for (const m of out.matchAll(/<\/body\s*>/gi)) end = m.index;
    out = end >= 0 ? `${out.slice(0, end)}${pixel}${out.slice(end)}` : `${out}${pixel}`;
  }
  return out;
}
