// Push channel: an FCM-compatible HTTP v1 API (bearer token) to a device token trait
// (`pushToken` unless the campaign names another). The send key goes in Idempotency-Key.

import { renderTemplate } from '../../schemas/liquid-template.ts';
import type { Channel } from './channel.ts';
import { postProvider, stringTrait, templateScope } from './channel.ts';

export function pushChannel(cfg: {
  baseUrl: string;
  project: string;
  token: string;
  timeoutMs: number;
}): Channel {
  const url = `${cfg.baseUrl.replace(/\/$/, '')}/v1/projects/${encodeURIComponent(cfg.project)}/messages:send`;
  return {
    name: 'push',
    recipient: (c, change) => stringTrait(change.traits, c.push?.tokenTrait ?? 'pushToken'),
    async send(req) {
      const s = req.campaign.push;
      if (!s) return { ok: false, status: 0, retriable: false, error: 'no push settings', latencyMs: 0 };
      if (!cfg.project)
        return { ok: false, status: 0, retriable: false, error: 'CDP_PUSH_PROJECT is not set', latencyMs: 0 };
      let title: string;
      let body: string;
      try {
        const scope = templateScope(req);
        title = await renderTemplate(s.title, scope);
        body = await renderTemplate(s.body, scope);
      } catch (err) {
        return {
          ok: false,
          status: 0,
          retriable: false,
          error: `template: ${(err as Error).message}`,
          latencyMs: 0,
        };
      }
      const r = await postProvider(url, {
        headers: {
          authorization: `Bearer ${cfg.token}`,
          'content-type': 'application/json',
          'Idempotency-Key': req.sendKey,
        },
        body: JSON.stringify({
          message: {
            token: req.recipient,
            notification: { title, body },
            data: { ...s.data, sendKey: req.sendKey },
          },
        }),
        timeoutMs: cfg.timeoutMs,
      });
      let providerId: string | undefined;
      try {
        providerId = r.ok ? (JSON.parse(r.body) as { name?: string }).name : undefined;
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
