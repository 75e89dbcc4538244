// Email channel: SMTP through nodemailer (pooled) to the profile's `email` trait, with a
// signed unsubscribe link and RFC 8058 one-click headers. The send key becomes the
// Message-ID, so a resend after a crash carries the same id (receivers and ESPs can dedupe).
// The HTML part escapes trait values (`| raw` opts out); subject and text are plain text.
// One deadline (CDP_CHANNEL_TIMEOUT_MS) bounds the whole SMTP exchange of a message.
// CDP_EMAIL_PROVIDER=ses|sendgrid|postmark sends the same rendered message and headers through
// that provider's HTTP API instead (email-providers.ts).
import nodemailer from 'nodemailer';
import { withTimeout } from '../../runtime/http.ts';
import type { Channel, SendResult } from './channel.ts';
import { refused, renderTemplates, stringTrait } from './channel.ts';
import { type EmailApiConfig, type EmailProvider, emailApiSender } from './email-providers.ts';
import { trackEmailHtml } from './email-tracking.ts';

const EMAIL = /^[^\s@]+@[^\s@]+$/;

export type EmailConfig = {
  smtpUrl?: string;
  /** Instead of smtpUrl: nodemailer's SMTP options as given (a workspace's checked server). */
  smtp?: Record<string, unknown>;
  from: string;
  timeoutMs: number;
  provider?: EmailProvider;
} & Omit<EmailApiConfig, 'provider' | 'timeoutMs'>;

export function emailChannel(cfg: EmailConfig): Channel {
  // CDP_EMAIL_PROVIDER other than smtp: the same rendered message through the provider's API
  const api =
    cfg.provider && cfg.provider !== 'smtp' ? emailApiSender({ ...cfg, provider: cfg.provider }) : undefined;
  const transport =
    (cfg.smtp || cfg.smtpUrl) && !api
      ? nodemailer.createTransport(
          (cfg.smtp ?? cfg.smtpUrl) as never,
          {
            pool: true,
            maxConnections: 5,
            connectionTimeout: cfg.timeoutMs,
            greetingTimeout: cfg.timeoutMs,
            socketTimeout: cfg.timeoutMs,
          } as never,
        )
      : undefined;
  return {
    name: 'email',
    recipient: (_c, change) => {
      const e = stringTrait(change.traits, 'email');
      return e && EMAIL.test(e) ? e : undefined;
    },
    async send(req): Promise<SendResult> {
      const started = performance.now();
      const ms = () => Math.round(performance.now() - started);
      const s = req.campaign.email;
      if (!transport && !api) return refused('SMTP_URL is not set');
      if (!s) return refused('no email settings');
      const r = await renderTemplates({ subject: s.subject, text: s.text, html: s.html ?? '' }, req, {
        html: 'html',
      });
      if ('refused' in r) return r.refused;
      const { subject } = r.text;
      let { text } = r.text;
      const html = s.html ? trackEmailHtml(r.text.html, req) : undefined;
      if (!/unsubscribe_url/.test(s.text)) text = `${text}\n\nUnsubscribe: ${req.unsubscribeUrl}\n`;
      const headers = {
        'List-Unsubscribe': `<${req.unsubscribeUrl}>`,
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
        'X-CDP-Send-Key': req.sendKey,
      };
      if (api)
        return api.send({
          from: s.from ?? cfg.from,
          to: req.recipient,
          subject,
          text,
          html,
          headers,
          sendKey: req.sendKey,
          campaignId: req.campaign.id,
          profileId: req.change.profileId,
          workspaceId: req.change.workspaceId,
        });
      if (!transport) return refused('SMTP_URL is not set');
      try {
        const sending = transport.sendMail({
          from: s.from ?? cfg.from,
          to: req.recipient,
          subject,
          text,
          html,
          messageId: `<${req.sendKey}@cdp>`,
          headers,
        });
        // the socket timeouts are idle timeouts: a server answering a byte at a time passes them
        const info = await withTimeout(sending, cfg.timeoutMs, 'SMTP send');
        return { ok: true, status: 250, retriable: false, latencyMs: ms(), providerId: info.messageId };
      } catch (err) {
        const e = err as Error & { responseCode?: number; code?: string };
        const code = e.responseCode ?? 0;
        // 5xx SMTP replies are permanent (bad mailbox, policy); 4xx and no reply are transient
        return {
          ok: false,
          status: code,
          retriable: code === 0 || (code >= 400 && code < 500),
          error: e.message,
          latencyMs: ms(),
        };
      }
    },
    async close() {
      transport?.close();
    },
  };
}
