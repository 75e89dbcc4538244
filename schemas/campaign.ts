import { randomBytes } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

export const WebhookSettings = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2048 }),
    /** Standard Webhooks secret, `whsec_<base64>`; generated when omitted. */
    secret: Type.Optional(Type.String({ pattern: '^whsec_[A-Za-z0-9+/]+={0,2}$', maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const CampaignInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    segmentId: Type.String({ minLength: 1, maxLength: 64 }),
    on: Type.Union([Type.Literal('enter'), Type.Literal('exit')]),
    channel: Type.Literal('webhook'),
    webhook: WebhookSettings,
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('paused')])),
  },
  { additionalProperties: false },
);
export type CampaignInput = Static<typeof CampaignInput>;
export const campaignInputCheck = TypeCompiler.Compile(CampaignInput);

export interface CampaignDefinition {
  id: string;
  workspaceId: string;
  name: string;
  segmentId: string;
  on: 'enter' | 'exit';
  channel: 'webhook';
  webhook: { url: string; secret: string };
  status: 'active' | 'paused';
  version: number;
  createdAt: string;
  updatedAt: string;
}

/** The body of an outgoing segment webhook (DESIGN.md, Outgoing webhooks). */
export interface SegmentWebhookBody {
  type: 'segment.entered' | 'segment.exited';
  campaignId: string;
  segmentId: string;
  profileId: string;
  userId: string | null;
  traits: Record<string, unknown>;
  occurredAt: string;
}

/** A new Standard Webhooks secret: `whsec_` + base64 of 24 random bytes. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}
