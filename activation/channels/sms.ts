// SMS channel: a Twilio-compatible Messages API (form POST, basic auth) to the `phone`
// trait. The send key goes in I-Twilio-Idempotency-Token and Idempotency-Key, so a resend
// after a crash is one message at the provider.

import { renderTemplate } from '../../schemas/liquid-template.ts';
import type { Channel } from './channel.ts';
import { postProvider, stringTrait, templateScope } from './channel.ts';

const PHONE = /^\+?[0-9 ()-]{6,20}$/;

export function smsChannel(cfg: {
  baseUrl: string;
  accountSid: string;
  authToken: string;
  from: string;
  timeoutMs: number;
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
      if (!s) return { ok: false, status: 0, retriable: false, error: 'no sms settings', latencyMs: 0 };
      if (!cfg.accountSid)
        return {
          ok: false,
          status: 0,
          retriable: false,
          error: 'CDP_SMS_ACCOUNT_SID is not set',
          latencyMs: 0,
        };
      let body: string;
      try {
        body = await renderTemplate(s.body, templateScope(req));
      } catch (err) {
        return {
          ok: false,
          status: 0,
          retriable: false,
          error: `template: ${(err as Error).message}`,
          latencyMs: 0,
        };
      }
      const form = new URLSearchParams({ To: req.recipient, From: s.from ?? cfg.from, Body: body });
      const r = await postProvider(url, {
        headers: {
          authorization: auth,
          'content-type': 'application/x-www-form-urlencoded',
          'I-Twilio-Idempotency-Token': req.sendKey,
          'Idempotency-Key': req.sendKey,
        },
        body: form.toString(),
        timeoutMs: cfg.timeoutMs,
      });
      let providerId: string | undefined;
      try {
        providerId = r.ok ? (JSON.parse(r.body) as { sid?: string }).sid : undefined;
      } catch {}
      return {
        ok: r.ok,
        status: r.status,
        retriable: r.retriable,
        error: r.error,
        latencyMs: r.latencyMs,
        providerId,
      };
    },
  };
}
