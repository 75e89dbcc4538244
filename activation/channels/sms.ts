// SMS channel: a Twilio-compatible Messages API (form POST, basic auth) to the `phone`
// trait. With a public ingest URL the message asks for delivery status callbacks there
// (ingest/sms-webhooks.ts), signed with the auth token.
//
// Twilio's answers (its error `code` in a JSON body): 429 / 20429 and 5xx are retried (after
// Retry-After when given); 21211 (invalid 'To'), 21614 (not a mobile number) and 21610 (the
// number texted STOP to the sender) mark the recipient invalid, so activation puts the phone
// on the suppression list; other 4xx (20003 credentials refused, 21603 no sender, 21617 body
// too long, …) are final, with Twilio's code and message in the ledger.
//
// Exactly once: Twilio documents no idempotency key for creating a message. The send key goes
// in I-Twilio-Idempotency-Token and Idempotency-Key for Twilio-compatible providers that
// honour one; with Twilio itself a crash or timeout after it accepted the message and before
// the claim is `sent` sends the SMS again.

import type { Channel } from './channel.ts';
import { postProvider, providerResult, refused, renderTemplates, stringTrait } from './channel.ts';

const PHONE = /^\+?[0-9 ()-]{6,20}$/;

/** Twilio error codes that say this number cannot get SMS from us: invalid, landline, opted out. */
const INVALID_RECIPIENT = new Set([21211, 21614, 21610]);

function twilioError(body: string): { code: number; message: string } | undefined {
  try {
    const e = JSON.parse(body) as { code?: unknown; message?: unknown };
    return typeof e.code === 'number'
      ? { code: e.code, message: String(e.message ?? '').slice(0, 200) }
      : undefined;
  } catch {
    return undefined;
  }
}

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
      const result = providerResult(answer, 'sid');
      if (answer.ok || answer.status === 0) return result;
      const e = twilioError(answer.body);
      const error = e ? `Twilio ${e.code}: ${e.message}` : result.error;
      if (e && INVALID_RECIPIENT.has(e.code))
        return { ...result, error, retriable: false, invalidRecipient: true };
      return { ...result, error };
    },
  };
}
