// SMS channel: a Twilio-compatible Messages API (form POST, basic auth) to the `phone`
// trait. The send key goes in I-Twilio-Idempotency-Token and Idempotency-Key, so a resend
// after a crash is one message at the provider. With a public ingest URL the message asks
// for delivery status callbacks there (ingest/sms-webhooks.ts), signed with the auth token.

import type { Channel } from './channel.ts';
import { postProvider, providerResult, refused, renderTemplates, stringTrait } from './channel.ts';

const PHONE = /^\+?[0-9 ()-]{6,20}$/;

export function smsChannel(cfg: {
  baseUrl: string;
  accountSid: string;
  authToken: string;
  from: string;
  timeoutMs: number;
  /** The ingest host's public URL; empty: no StatusCallback (the account's own settings apply). */
  statusCallbackBase?: string;
}): Channel {
  const url = `${cfg.baseUrl.replace(/\/$/, '')}/2010-04-01/Accounts/${encodeURIComponent(cfg.accountSid)}/Messages.json`;
  const auth = `Basic ${Buffer.from(`${cfg.accountSid}:${cfg.authToken}`).toString('base64')}`;
  return {
    name: 'sms',
    recipient: (_c, change) => {
      const p = stringTrait(change.traits, 'phone');
      return p && PHONE.test(p) ? p.replace(/[ ()-]/g, '') : undefined;
    },
    async send(req) {
      const s = req.campaign.sms;
      if (!s) return refused('no sms settings');
      if (!cfg.accountSid) return refused('CDP_SMS_ACCOUNT_SID is not set');
      const r = await renderTemplates({ body: s.body }, req);
      if ('refused' in r) return r.refused;
      const form = new URLSearchParams({ To: req.recipient, From: s.from ?? cfg.from, Body: r.text.body });
      if (cfg.statusCallbackBase)
        form.set(
          'StatusCallback',
          `${cfg.statusCallbackBase.replace(/\/+$/, '')}/v1/webhooks/sms/twilio/${encodeURIComponent(req.campaign.workspaceId)}/status`,
        );
      const answer = await postProvider(url, {
        headers: {
          authorization: auth,
          'content-type': 'application/x-www-form-urlencoded',
          'I-Twilio-Idempotency-Token': req.sendKey,
          'Idempotency-Key': req.sendKey,
        },
        body: form.toString(),
        timeoutMs: cfg.timeoutMs,
      });
      return providerResult(answer, 'sid');
    },
  };
}
