// What an email send carries to the provider so its bounce, complaint and delivery events
// can be tied back to the send: the send key, the campaign and the profile, as SES EmailTags,
// SendGrid custom_args and Postmark Metadata (activation/channels/email-providers.ts), read
// back by the provider webhooks (ingest/email-webhooks.ts).
//
// Beside them go the workspace (`cdp_ws`) and a signature (`cdp_sig`): base64url of the first
// 16 bytes of HMAC-SHA256 over the workspace, send key, campaign and profile as they travel,
// keyed with emailTagSecret(CDP_UNSUBSCRIBE_SECRET), which activation (signing) and ingest
// (checking) both have. The webhook credentials (SendGrid's verification key, Postmark's Basic
// credentials, the SNS topic allowlist) are the deployment's, not a workspace's: they vouch
// that the provider saw the address, not that the event belongs to the workspace in the URL.
// The signature does: a ledger row or a soft-bounce resend happens only for tags it covers
// and whose `cdp_ws` is the URL's workspace.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Tag, custom-arg and metadata names. */
export const EMAIL_TAGS = {
  sendKey: 'cdp_send_key',
  campaign: 'cdp_campaign',
  profile: 'cdp_profile',
  workspace: 'cdp_ws',
  signature: 'cdp_sig',
} as const;

/** The tag-signing key: derived from the unsubscribe secret (no new secret to configure). */
export const emailTagSecret = (unsubscribeSecret: string) =>
  createHmac('sha256', unsubscribeSecret).update('cdp-email-tags').digest('base64url');

/** What the tags of one send say (as they travel: a tag left out is absent here too). */
export interface EmailTagValues {
  workspaceId: string;
  sendKey: string;
  campaignId?: string;
  profileId?: string;
}

/** `cdp_sig` of the tags: 22 characters of base64url, allowed as they are in every provider's tags. */
export function emailTagSignature(secret: string, t: EmailTagValues): string {
  const msg = JSON.stringify([
    'cdp-email-tags/1',
    t.workspaceId,
    t.sendKey,
    t.campaignId ?? null,
    t.profileId ?? null,
  ]);
  return createHmac('sha256', secret).update(msg).digest().subarray(0, 16).toString('base64url');
}

/** Whether `signature` is the tags' signature (constant time); false when anything is missing. */
export function verifyEmailTags(
  secret: string | undefined,
  t: Partial<EmailTagValues>,
  signature: string | undefined,
): boolean {
  if (!secret || !t.workspaceId || !t.sendKey || !signature) return false;
  const want = Buffer.from(emailTagSignature(secret, t as EmailTagValues));
  const got = Buffer.from(signature);
  return want.length === got.length && timingSafeEqual(want, got);
}

/** What SES allows in a tag value. */
const SES_TAG_VALUE = /^[A-Za-z0-9_.@-]{1,256}$/;
const SES_ENCODED = 'b64.';

/**
 * A value as an SES tag value: as it is when SES allows it ([A-Za-z0-9_.@-], up to 256
 * characters), else `b64.` + base64url of its UTF-8 (also for a value that itself starts
 * with `b64.`, so reading back is unambiguous); undefined (the tag is left out) when even
 * that is over 256 characters (a value over 189 bytes).
 */
export function sesTagValue(v: string): string | undefined {
  if (SES_TAG_VALUE.test(v) && !v.startsWith(SES_ENCODED)) return v;
  const e = SES_ENCODED + Buffer.from(v, 'utf8').toString('base64url');
  return e.length <= 256 ? e : undefined;
}

/** The value an SES tag value stands for (sesTagValue's inverse). */
export function fromSesTagValue(v: string | undefined): string | undefined {
  if (v === undefined || !v.startsWith(SES_ENCODED)) return v;
  const b = v.slice(SES_ENCODED.length);
  // what sesTagValue made round-trips; anything else is taken as it is
  if (!/^[A-Za-z0-9_-]*$/.test(b) || Buffer.from(b, 'base64url').toString('base64url') !== b) return v;
  return Buffer.from(b, 'base64url').toString('utf8');
}

/** Postmark Metadata values are at most 80 characters: a longer one is left out. */
export const POSTMARK_METADATA_MAX = 80;
