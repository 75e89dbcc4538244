import { createHash } from 'node:crypto';
import type { SegmentChange } from '../schemas/segment-change.ts';

/**
 * The deterministic identity of one send: campaign × profile × segment transition
 * (the epoch names the entry or exit). Redelivered changes map to the same key, which is
 * claimed once, and it is the `webhook-id` receivers can deduplicate on.
 */
export function sendKey(
  campaignId: string,
  change: Pick<SegmentChange, 'profileId' | 'segmentId' | 'epoch'>,
): string {
  const h = createHash('sha256')
    .update(`${campaignId}\u0000${change.profileId}\u0000${change.segmentId}\u0000${change.epoch}`)
    .digest('base64url')
    .slice(0, 32);
  return `msg_${h}`;
}
