// Webhook channel: the Standard Webhooks-signed segment body (or a journey webhook step's
// body) to the campaign's URL, through
// the address guard (no private or loopback destinations unless configured).
import type { JourneyWebhookBody, SegmentWebhookBody } from '../../schemas/campaign.ts';
import type { GuardPolicy } from '../webhook/address-guard.ts';
import { sendWebhook } from '../webhook/send-webhook.ts';
import { type Channel, refused } from './channel.ts';

export function webhookChannel(policy: GuardPolicy & { timeoutMs: number }): Channel {
  return {
    name: 'webhook',
    recipient: (c) => c.webhook?.url,
    async send(req) {
      const { campaign: c, change } = req;
      if (!c.webhook) return refused('no webhook settings');
      const j = c.journeyWebhook;
      const body: SegmentWebhookBody | JourneyWebhookBody = j
        ? {
            type: 'journey.webhook',
            journeyId: j.journeyId,
            version: j.version,
            nodeId: j.nodeId,
            run: change.epoch,
            profileId: change.profileId,
            userId: change.userId,
            traits: change.traits,
            data: j.data ?? {},
            occurredAt: change.occurredAt,
          }
        : {
            type: change.type === 'entered' ? 'segment.entered' : 'segment.exited',
            campaignId: c.id,
            segmentId: change.segmentId,
            profileId: change.profileId,
            userId: change.userId,
            traits: change.traits,
            occurredAt: change.occurredAt,
          };
      return sendWebhook(
        {
          url: c.webhook.url,
          secret: c.webhook.secret,
          id: req.sendKey,
          body: JSON.stringify(body),
          timestampSeconds: Math.floor(req.nowMs / 1000),
          ...(req.traceparent ? { traceparent: req.traceparent } : {}),
        },
        policy,
      );
    },
  };
}
