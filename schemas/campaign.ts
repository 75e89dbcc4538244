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

/** Liquid templates over `traits`, `event`, `profile`, `campaign` (and `unsubscribe_url` for email). */
const Template = (max: number) => Type.String({ minLength: 1, maxLength: max });

export const EmailSettings = Type.Object(
  {
    subject: Template(1000),
    text: Template(100_000),
    html: Type.Optional(Template(200_000)),
    /** Sender; the configured default (CDP_EMAIL_FROM) when omitted. */
    from: Type.Optional(Type.String({ minLength: 3, maxLength: 320 })),
    /** Open pixel and click redirects in the HTML part (activation/channels/email-tracking.ts); off by default. */
    tracking: Type.Optional(
      Type.Object(
        { opens: Type.Optional(Type.Boolean()), clicks: Type.Optional(Type.Boolean()) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const SmsSettings = Type.Object(
  {
    body: Template(1600),
    /** Sender number; the configured default (CDP_SMS_FROM) when omitted. */
    from: Type.Optional(Type.String({ minLength: 2, maxLength: 32 })),
  },
  { additionalProperties: false },
);

export const PushSettings = Type.Object(
  {
    title: Template(500),
    body: Template(4000),
    /** Trait holding the device token (default `pushToken`). */
    tokenTrait: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    data: Type.Optional(Type.Record(Type.String(), Type.String({ maxLength: 1000 }))),
  },
  { additionalProperties: false },
);

export const ChannelName = Type.Union([
  Type.Literal('webhook'),
  Type.Literal('email'),
  Type.Literal('sms'),
  Type.Literal('push'),
]);
export type ChannelName = Static<typeof ChannelName>;
export const CHANNELS: readonly ChannelName[] = ['webhook', 'email', 'sms', 'push'];

/** How often one profile may get this campaign: every entry, once ever, or once per N days. */
export const Reentry = Type.Union([
  Type.Literal('every'),
  Type.Literal('once'),
  Type.Object({ everyDays: Type.Integer({ minimum: 1, maximum: 3650 }) }, { additionalProperties: false }),
]);
export type Reentry = Static<typeof Reentry>;

/** The most sends per second (fractions allowed: 0.5 is one every 2 s). */
export const SendRate = Type.Object(
  { perSecond: Type.Number({ minimum: 0.01, maximum: 100_000 }) },
  { additionalProperties: false },
);
export type SendRate = Static<typeof SendRate>;

/** Milliseconds between two sends at the rate. */
export const sendIntervalMs = (rate: SendRate): number => 1000 / rate.perSecond;

export const CampaignPolicy = Type.Object(
  {
    reentry: Type.Optional(Reentry),
    /** Frequency caps don't apply (and the send is not counted), e.g. transactional mail. */
    ignoreCaps: Type.Optional(Type.Boolean()),
    /** Quiet hours don't apply. */
    ignoreQuietHours: Type.Optional(Type.Boolean()),
    /**
     * Sends of this campaign across all workers go out no faster than this; the ones past
     * it are delayed to their turn (activation/policy/contact-policy.lua), never dropped.
     */
    rate: Type.Optional(SendRate),
  },
  { additionalProperties: false },
);
export type CampaignPolicy = Static<typeof CampaignPolicy>;

export const CampaignInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    segmentId: Type.String({ minLength: 1, maxLength: 64 }),
    on: Type.Union([Type.Literal('enter'), Type.Literal('exit')]),
    channel: ChannelName,
    webhook: Type.Optional(WebhookSettings),
    email: Type.Optional(EmailSettings),
    sms: Type.Optional(SmsSettings),
    push: Type.Optional(PushSettings),
    /** Consent purpose the message serves (consent is per channel and purpose); default `marketing`. */
    purpose: Type.Optional(Type.String({ pattern: '^[a-z0-9_-]{1,40}$' })),
    policy: Type.Optional(CampaignPolicy),
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
  channel: ChannelName;
  webhook?: { url: string; secret: string };
  email?: Static<typeof EmailSettings>;
  sms?: Static<typeof SmsSettings>;
  push?: Static<typeof PushSettings>;
  /** Absent on definitions stored before purposes existed: `marketing`. */
  purpose?: string;
  policy?: CampaignPolicy;
  /** A journey's webhook step (activation/journeys/journey-campaigns.ts): the body is a journey.webhook. */
  journeyWebhook?: { journeyId: string; version: number; nodeId: string; data?: Record<string, unknown> };
  status: 'active' | 'paused';
  version: number;
  createdAt: string;
  updatedAt: string;
}

export const DEFAULT_PURPOSE = 'marketing';

/** The template fields of a channel's settings, as `channel.field` paths. */
export const TEMPLATE_FIELDS: Record<Exclude<ChannelName, 'webhook'>, readonly string[]> = {
  email: ['subject', 'text', 'html'],
  sms: ['body'],
  push: ['title', 'body'],
};

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

/** The body of a journey's webhook step (schemas/journey.ts WebhookNode). */
export interface JourneyWebhookBody {
  type: 'journey.webhook';
  journeyId: string;
  version: number;
  nodeId: string;
  /** The person's run number in the journey (1 for a first run). */
  run: number;
  profileId: string;
  userId: string | null;
  traits: Record<string, unknown>;
  data: Record<string, unknown>;
  occurredAt: string;
}

/** A new Standard Webhooks secret: `whsec_` + base64 of 24 random bytes. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}
