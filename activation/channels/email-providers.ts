// Email through a provider's HTTP API instead of SMTP (CDP_EMAIL_PROVIDER), with the content
// email.ts renders (subject, text, HTML, unsubscribe link and RFC 8058 headers):
// - Amazon SES v2 SendEmail (`POST /v2/email/outbound-emails`), signed with SigV4 (sigv4.ts);
// - SendGrid v3 `POST /v3/mail/send` with a bearer API key;
// - Postmark `POST /email` with a server token, to a message stream (broadcast by default).
// 429 and 5xx are retriable, other refusals (a wrong credential, a rejected message) final;
// Postmark's ErrorCode 406 (inactive recipient: bounced, complained, unsubscribed) also marks
// the recipient invalid, so activation suppresses the address.
// None of the three has an idempotency key for sends. The send key goes with each message
// (X-CDP-Send-Key header, and SES EmailTags / SendGrid custom_args / Postmark Metadata, which
// the providers' event webhooks and logs return), so a repeat after a crash can be found, but
// a crash between the provider's answer and the claim's `sent` can deliver a message twice.
// Beside it go the campaign id and profile id (`cdp_campaign`, `cdp_profile`), so a bounce,
// complaint or delivery event becomes a ledger row of the right campaign and person
// (ingest/email-webhooks.ts). SES allows only [A-Za-z0-9_.@-] up to 256 characters in a tag
// value: other values travel as `b64.` + base64url (schemas/email-tags.ts), and one too long
// even so is left out; Postmark Metadata values over 80 characters are left out.
// With them go the workspace (`cdp_ws`) and `cdp_sig`, an HMAC over workspace, send key,
// campaign and profile as they travel (schemas/email-tags.ts): the webhooks take an event as
// a send's of that workspace only when it verifies.

import {
  EMAIL_TAGS,
  emailTagSignature,
  POSTMARK_METADATA_MAX,
  sesTagValue,
} from '../../schemas/email-tags.ts';
import type { SendResult } from './channel.ts';
import { MAX_RETRY_AFTER_MS, parseRetryAfter, refused, retriableStatus } from './channel.ts';
import { type AwsCredentials, signRequest } from './sigv4.ts';

export type EmailProvider = 'smtp' | 'ses' | 'sendgrid' | 'postmark';

export interface EmailApiConfig {
  provider: Exclude<EmailProvider, 'smtp'>;
  ses?: {
    region: string;
    accessKeyId: string;
    secretAccessKey: string;
    sessionToken?: string;
    endpoint?: string;
  };
  sendgrid?: { apiKey: string; baseUrl: string };
  postmark?: { serverToken: string; baseUrl: string; messageStream: string };
  timeoutMs: number;
  now?: () => number;
  /** The tag-signing key (emailTagSecret); default: the one configureEmailTagSigning set. */
  tagSecret?: string;
}

let configuredTagSecret: string | undefined;

/** Set once by the activation service (activation/main.ts); without it no `cdp_sig` is sent. */
export function configureEmailTagSigning(secret: string | undefined): void {
  configuredTagSecret = secret;
}

export interface EmailMessage {
  from: string;
  to: string;
  subject: string;
  text: string;
  html?: string;
  /** List-Unsubscribe, List-Unsubscribe-Post, X-CDP-Send-Key */
  headers: Record<string, string>;
  sendKey: string;
  /** Sent along (tags, custom args, metadata) so provider events find the campaign and person. */
  campaignId?: string;
  profileId?: string;
  /** The sending workspace (`cdp_ws`, covered by `cdp_sig`). */
  workspaceId?: string;
}

export interface EmailApiSender {
  send(m: EmailMessage): Promise<SendResult>;
}

/** The name under which the send key travels in tags, custom args and metadata. */
export const SEND_KEY_TAG = EMAIL_TAGS.sendKey;

/**
 * The send key, campaign, profile and workspace by tag name (those the message has and the
 * provider can carry: `fits`), and `cdp_sig` over exactly those, when there is a key and
 * both the send key and the workspace travel.
 */
function tagsOf(
  m: EmailMessage,
  fits: (v: string) => boolean,
  secret: string | undefined,
): Array<[string, string]> {
  const keep = (v: string | undefined) => (v && fits(v) ? v : undefined);
  const sendKey = keep(m.sendKey);
  const campaignId = keep(m.campaignId);
  const profileId = keep(m.profileId);
  const workspaceId = keep(m.workspaceId);
  const out: Array<[string, string]> = [];
  if (sendKey) out.push([EMAIL_TAGS.sendKey, sendKey]);
  if (campaignId) out.push([EMAIL_TAGS.campaign, campaignId]);
  if (profileId) out.push([EMAIL_TAGS.profile, profileId]);
  if (workspaceId) out.push([EMAIL_TAGS.workspace, workspaceId]);
  if (secret && sendKey && workspaceId)
    out.push([
      EMAIL_TAGS.signature,
      emailTagSignature(secret, {
        workspaceId,
        sendKey,
        ...(campaignId ? { campaignId } : {}),
        ...(profileId ? { profileId } : {}),
      }),
    ]);
  return out;
}

interface Answer {
  status: number;
  headers: Headers;
  body: string;
  latencyMs: number;
  error?: string;
}

async function post(url: string, headers: Record<string, string>, body: string, timeoutMs: number) {
  const started = performance.now();
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      body: text,
      latencyMs: Math.round(performance.now() - started),
    };
  } catch (err) {
    return {
      status: 0,
      headers: new Headers(),
      body: '',
      latencyMs: Math.round(performance.now() - started),
      error: (err as Error).message,
    };
  }
}

const json = (s: string): Record<string, unknown> => {
  try {
    const v = JSON.parse(s) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
};

/** A final or retriable failure from an answer, by its status (0: no answer, retriable). */
function failure(a: Answer, error: string, extra: Partial<SendResult> = {}): SendResult {
  const retryAfterMs = parseRetryAfter(a.headers.get('retry-after'), Date.now());
  return {
    ok: false,
    status: a.status,
    retriable: a.status === 0 || retriableStatus(a.status),
    error,
    latencyMs: a.latencyMs,
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    ...extra,
  };
}

/** `Shop <news@shop.test>` → { name: 'Shop', email: 'news@shop.test' } */
export function parseAddress(s: string): { email: string; name?: string } {
  const m = /^\s*"?([^"<]*?)"?\s*<([^>]+)>\s*$/.exec(s);
  if (!m) return { email: s.trim() };
  return m[1] ? { email: m[2]!.trim(), name: m[1] } : { email: m[2]!.trim() };
}

export function emailApiSender(cfg: EmailApiConfig): EmailApiSender {
  if (cfg.provider === 'ses') return sesSender(cfg);
  if (cfg.provider === 'sendgrid') return sendgridSender(cfg);
  return postmarkSender(cfg);
}

function sesSender(cfg: EmailApiConfig): EmailApiSender {
  const s = cfg.ses;
  const now = cfg.now ?? Date.now;
  return {
    async send(m) {
      if (!s?.region || !s.accessKeyId || !s.secretAccessKey)
        return refused(
          'SES is not configured: CDP_SES_REGION, CDP_SES_ACCESS_KEY_ID, CDP_SES_SECRET_ACCESS_KEY',
        );
      const base = (s.endpoint || `https://email.${s.region}.amazonaws.com`).replace(/\/$/, '');
      const url = new URL(`${base}/v2/email/outbound-emails`);
      const body = JSON.stringify({
        FromEmailAddress: m.from,
        Destination: { ToAddresses: [m.to] },
        Content: {
          Simple: {
            Subject: { Data: m.subject, Charset: 'UTF-8' },
            Body: {
              Text: { Data: m.text, Charset: 'UTF-8' },
              ...(m.html !== undefined ? { Html: { Data: m.html, Charset: 'UTF-8' } } : {}),
            },
            Headers: Object.entries(m.headers).map(([Name, Value]) => ({ Name, Value })),
          },
        },
        // tag values allow [A-Za-z0-9_-.@]: a send key is msg_ and base64url; a campaign or
        // profile id with other characters is sent encoded, one too long left out
        EmailTags: tagsOf(m, (v) => sesTagValue(v) !== undefined, cfg.tagSecret ?? configuredTagSecret).map(
          ([Name, v]) => ({ Name, Value: sesTagValue(v)! }),
        ),
      });
      const creds: AwsCredentials = {
        accessKeyId: s.accessKeyId,
        secretAccessKey: s.secretAccessKey,
        sessionToken: s.sessionToken || undefined,
      };
      const headers = signRequest(
        {
          method: 'POST',
          url,
          headers: { 'content-type': 'application/json' },
          body,
          service: 'ses',
          region: s.region,
          nowMs: now(),
        },
        creds,
      );
      const { host: _host, ...sendHeaders } = headers; // fetch sets Host from the URL, the same value
      const a = await post(url.href, sendHeaders, body, cfg.timeoutMs);
      if (a.error) return failure(a, `SES: ${a.error}`);
      const b = json(a.body);
      if (a.status === 200) {
        const id = typeof b.MessageId === 'string' ? b.MessageId : undefined;
        return { ok: true, status: 200, retriable: false, latencyMs: a.latencyMs, providerId: id };
      }
      // the error type is in x-amzn-ErrorType (`Type:` and sometimes a URL after the colon) or __type
      const type =
        (a.headers.get('x-amzn-errortype') ?? '').split(':')[0] ||
        String(b.__type ?? b.code ?? '')
          .split('#')
          .pop() ||
        '';
      const message = String(b.message ?? b.Message ?? a.body.slice(0, 200));
      // rate and daily quota refusals are throttling whatever type carries them (v1 called it Throttling)
      const throttled =
        type === 'TooManyRequestsException' ||
        type === 'ThrottlingException' ||
        type === 'Throttling' ||
        /maximum sending rate exceeded|daily message quota exceeded/i.test(message);
      return failure(
        a,
        `SES ${a.status}${type ? ` ${type}` : ''}: ${message}`,
        throttled ? { retriable: true } : {},
      );
    },
  };
}

function sendgridSender(cfg: EmailApiConfig): EmailApiSender {
  const s = cfg.sendgrid;
  return {
    async send(m) {
      if (!s?.apiKey) return refused('SendGrid is not configured: CDP_SENDGRID_API_KEY');
      const content = [{ type: 'text/plain', value: m.text }];
      if (m.html !== undefined) content.push({ type: 'text/html', value: m.html });
      const body = JSON.stringify({
        personalizations: [
          {
            to: [{ email: m.to }],
            custom_args: Object.fromEntries(tagsOf(m, () => true, cfg.tagSecret ?? configuredTagSecret)),
          },
        ],
        from: parseAddress(m.from),
        subject: m.subject,
        content,
        headers: m.headers,
      });
      const a = await post(
        `${s.baseUrl.replace(/\/$/, '')}/v3/mail/send`,
        { authorization: `Bearer ${s.apiKey}`, 'content-type': 'application/json' },
        body,
        cfg.timeoutMs,
      );
      if (a.error) return failure(a, `SendGrid: ${a.error}`);
      if (a.status === 202 || a.status === 200)
        return {
          ok: true,
          status: a.status,
          retriable: false,
          latencyMs: a.latencyMs,
          providerId: a.headers.get('x-message-id') ?? undefined,
        };
      const errors = json(a.body).errors;
      const message = Array.isArray(errors)
        ? errors.map((e) => String((e as { message?: unknown }).message ?? '')).join('; ')
        : a.body.slice(0, 200);
      // SendGrid's 429 says when its window resets (epoch seconds): the retry waits for it
      const reset = a.status === 429 ? a.headers.get('x-ratelimit-reset') : null;
      const resetMs = reset && /^\d{1,12}$/.test(reset) ? Number(reset) * 1000 - Date.now() : undefined;
      return failure(
        a,
        `SendGrid ${a.status}: ${message}${reset ? ` (rate limit resets at ${reset})` : ''}`,
        resetMs !== undefined ? { retryAfterMs: Math.min(MAX_RETRY_AFTER_MS, Math.max(0, resetMs)) } : {},
      );
    },
  };
}

function postmarkSender(cfg: EmailApiConfig): EmailApiSender {
  const s = cfg.postmark;
  return {
    async send(m) {
      if (!s?.serverToken) return refused('Postmark is not configured: CDP_POSTMARK_SERVER_TOKEN');
      const body = JSON.stringify({
        From: m.from,
        To: m.to,
        Subject: m.subject,
        TextBody: m.text,
        ...(m.html !== undefined ? { HtmlBody: m.html } : {}),
        Headers: Object.entries(m.headers).map(([Name, Value]) => ({ Name, Value })),
        MessageStream: s.messageStream,
        Metadata: Object.fromEntries(
          tagsOf(m, (v) => v.length <= POSTMARK_METADATA_MAX, cfg.tagSecret ?? configuredTagSecret),
        ),
      });
      const a = await post(
        `${s.baseUrl.replace(/\/$/, '')}/email`,
        {
          accept: 'application/json',
          'content-type': 'application/json',
          'x-postmark-server-token': s.serverToken,
        },
        body,
        cfg.timeoutMs,
      );
      if (a.error) return failure(a, `Postmark: ${a.error}`);
      const b = json(a.body);
      const code = typeof b.ErrorCode === 'number' ? b.ErrorCode : undefined;
      if (a.status === 200 && (code === undefined || code === 0))
        return {
          ok: true,
          status: 200,
          retriable: false,
          latencyMs: a.latencyMs,
          providerId: typeof b.MessageID === 'string' ? b.MessageID : undefined,
        };
      const error = `Postmark ${a.status}${code !== undefined ? ` ErrorCode ${code}` : ''}: ${String(b.Message ?? a.body.slice(0, 200))}`;
      // 406: the recipient is inactive (hard bounce, spam complaint, manual suppression)
      if (code === 406) return failure(a, error, { retriable: false, invalidRecipient: true });
      return failure(a, error);
    },
  };
}
