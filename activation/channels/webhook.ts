// Webhook channel: the Standard Webhooks-signed segment body to the campaign's URL, through
// the address guard (no private or loopback destinations unless configured).
import type { SegmentWebhookBody } from '../../schemas/campaign.ts';
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
      const body: SegmentWebhookBody = {
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
        },
        policy,
      );
    },
  };
}
