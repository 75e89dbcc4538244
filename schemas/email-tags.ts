// What an email send carries to the provider so its bounce, complaint and delivery events
// can be tied back to the send: the send key, the campaign and the profile, as SES EmailTags,
// SendGrid custom_args and Postmark Metadata (activation/channels/email-providers.ts), read
// back by the provider webhooks (ingest/email-webhooks.ts).

/** Tag, custom-arg and metadata names. */
export const EMAIL_TAGS = {
  sendKey: 'cdp_send_key',
  campaign: 'cdp_campaign',
  profile: 'cdp_profile',
} as const;

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
