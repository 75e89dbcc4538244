// Push channel: an FCM-compatible HTTP v1 API (bearer token) to a device token trait
// (`pushToken` unless the campaign names another). The send key goes in Idempotency-Key.

import type { Channel } from './channel.ts';
import { postProvider, providerResult, refused, renderTemplates, stringTrait } from './channel.ts';

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
      if (!s) return refused('no push settings');
      if (!cfg.project) return refused('CDP_PUSH_PROJECT is not set');
      const r = await renderTemplates({ title: s.title, body: s.body }, req);
      if ('refused' in r) return r.refused;
      const answer = await postProvider(url, {
        headers: {
          authorization: `Bearer ${cfg.token}`,
          'content-type': 'application/json',
          'Idempotency-Key': req.sendKey,
        },
        body: JSON.stringify({
          message: {
            token: req.recipient,
            notification: r.text,
            data: { ...s.data, sendKey: req.sendKey },
          },
        }),
        timeoutMs: cfg.timeoutMs,
      });
      return providerResult(answer, 'name');
    },
  };
}
