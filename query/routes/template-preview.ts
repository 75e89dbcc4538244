// POST /v1/templates/preview: renders a channel's Liquid templates as activation would for
// one profile (its traits and ids; a segment entry happening now), so a marketer sees the
// message before saving the campaign. Nothing is sent or stored.
import { Type } from '@sinclair/typebox';
import { Hono } from 'hono';
import { readProfile } from '../../profiles/read.ts';
import type { Redis } from '../../runtime/redis.ts';
import { TEMPLATE_FIELDS } from '../../schemas/campaign.ts';
import {
  MESSAGE_RENDER_BUDGET_MS,
  RenderBudgetError,
  renderBudget,
  templateError,
  templateFormat,
} from '../../schemas/liquid-template.ts';
import type { QueryEnv } from '../context.ts';
import { QueryError } from '../query-error.ts';
import { validate } from '../validate.ts';

type TemplateChannel = keyof typeof TEMPLATE_FIELDS;

const channels = Object.keys(TEMPLATE_FIELDS) as TemplateChannel[];
export const TemplatePreviewInput = Type.Object(
  {
    channel: Type.Union(
      channels.map((ch) => Type.Literal(ch)),
      { errorMessage: `one of ${channels.join(', ')}` },
    ),
    settings: Type.Record(Type.String(), Type.Unknown(), {
      errorMessage: 'an object with the channel’s template fields',
      description: 'the campaign settings of the channel: its Liquid template fields',
    }),
    profileId: Type.Optional(
      Type.String({ minLength: 1, errorMessage: 'a profile id', description: 'render for this profile' }),
    ),
    // anything but a string shows as "preview", as it always has
    campaignName: Type.Optional(Type.Unknown({ description: 'campaign.name in the templates' })),
  },
  { errorMessage: 'an object {channel, settings, profileId?, campaignName?}' },
);

export function templatePreviewRoutes(deps: {
  redis: Redis;
  redisPrefix: string;
  now: () => Date;
  /** The render budget of one preview (all its fields), as activation gives one message. */
  renderBudgetMs?: number;
  /** The clock the render budget counts with (tests). */
  renderClock?: () => number;
}) {
  const app = new Hono<QueryEnv>();
  app.post('/preview', validate(TemplatePreviewInput), async (c) => {
    const ws = c.get('workspaceId');
    const body = c.req.valid('json');
    const { channel, settings } = body;
    let traits: Record<string, unknown> = {};
    let profile: { id: string; userId: string | null } = { id: 'preview', userId: null };
    if (body.profileId !== undefined) {
      const p = await readProfile(deps.redis, deps.redisPrefix, ws, body.profileId);
      if (!p) throw new QueryError(404, `no profile ${body.profileId}`);
      traits = p.traits;
      profile = { id: p.id, userId: p.userIds[0] ?? null };
    }
    const scope = {
      traits,
      profile,
      event: {
        type: 'segment.entered',
        segmentId: 'preview',
        occurredAt: deps.now().toISOString(),
        messageId: null,
      },
      campaign: {
        id: 'preview',
        name: typeof body.campaignName === 'string' ? body.campaignName : 'preview',
      },
      unsubscribe_url: 'https://example.invalid/v1/unsubscribe?token=preview',
    };
    const rendered: Record<string, string> = {};
    // one budget for all the fields, as activation renders one message
    const budget = renderBudget(deps.renderBudgetMs ?? MESSAGE_RENDER_BUDGET_MS, { now: deps.renderClock });
    for (const field of TEMPLATE_FIELDS[channel as TemplateChannel]) {
      const source = (settings as Record<string, unknown>)[field];
      if (source === undefined || source === '') continue;
      if (typeof source !== 'string')
        throw new QueryError(400, `settings.${field}: a Liquid template string`);
      const why = templateError(source);
      if (why) throw new QueryError(400, `settings.${field}: invalid Liquid template: ${why}`);
      try {
        rendered[field] = await budget.render(field, source, scope, templateFormat(channel, field));
      } catch (err) {
        if (err instanceof RenderBudgetError) throw new QueryError(400, `settings.${err.message}`);
        throw new QueryError(400, `settings.${field}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    return c.json({ profileId: profile.id, rendered });
  });
  return app;
}
