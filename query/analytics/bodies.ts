// Request bodies of POST /v1/analytics/*, as TypeBox schemas (validated here, published in
// the OpenAPI document). Unknown fields are refused so a typo is a 400, not a silent default.
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { firstSchemaError } from '../../schemas/schema-error.ts';
import { InputError } from './sql-params.ts';

const Time = Type.String({
  maxLength: 40,
  description: 'ISO 8601 timestamp (a date alone is midnight UTC); `to` is exclusive',
});
const Duration = (description: string) =>
  Type.String({ pattern: '^[0-9]{1,6}[smhdw]$', maxLength: 7, description });
const Path = (description: string) => Type.String({ minLength: 1, maxLength: 600, description });
const EventName = Type.String({ minLength: 1, maxLength: 512 });
const Where = Type.Unknown({
  description: 'JSON Logic filter on the event: == != < <= > >= in and or ! var (fields as paths)',
});
const range = { from: Time, to: Time };
const closed = { additionalProperties: false };

export const FunnelBody = Type.Object(
  {
    steps: Type.Array(Type.Object({ event: EventName, where: Type.Optional(Where) }, closed), {
      minItems: 1,
      maxItems: 10,
    }),
    window: Duration('how long after step 1 the later steps may happen, e.g. 1d'),
    ...range,
    breakdown: Type.Optional(Path('field whose value at the person’s first step-1 event splits the funnel')),
  },
  closed,
);
export type FunnelBody = Static<typeof FunnelBody>;

export const RetentionBody = Type.Object(
  {
    cohortEvent: EventName,
    returnEvent: EventName,
    period: Type.Union([Type.Literal('day'), Type.Literal('week')]),
    periods: Type.Integer({ minimum: 1, maximum: 100 }),
    ...range,
  },
  closed,
);
export type RetentionBody = Static<typeof RetentionBody>;

export const ATTRIBUTION_MODELS = [
  'first_touch',
  'last_touch',
  'linear',
  'time_decay',
  'position_based',
] as const;
export const AttributionBody = Type.Object(
  {
    conversionEvent: EventName,
    touchpoint: Type.Optional(
      Path('field naming the touch, e.g. context.campaign.name; events where it is non-empty are touches'),
    ),
    sends: Type.Optional(
      Type.Object(
        {
          by: Type.Union([Type.Literal('campaign'), Type.Literal('channel')], {
            description:
              'name a send touch `campaign:<id>` (a journey step `journey:<id>:<node>`) or `channel:<channel>`',
          }),
          channels: Type.Optional(
            Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
              minItems: 1,
              maxItems: 10,
              uniqueItems: true,
            }),
          ),
        },
        {
          ...closed,
          description: 'messages sent to the person (the ledger, outcome sent) count as touches too',
        },
      ),
    ),
    models: Type.Array(Type.Union(ATTRIBUTION_MODELS.map((m) => Type.Literal(m))), {
      minItems: 1,
      maxItems: 5,
      uniqueItems: true,
    }),
    lookback: Duration('touches this long before a conversion count, e.g. 30d'),
    value: Type.Optional(
      Path('numeric field of the conversion shared among its touches, e.g. properties.revenue'),
    ),
    halfLife: Type.Optional(Duration('time_decay: a touch this much older weighs half, default 7d')),
    where: Type.Optional(Where),
    ...range,
  },
  closed,
);
export type AttributionBody = Static<typeof AttributionBody>;

export const TrendsBody = Type.Object(
  {
    event: EventName,
    interval: Type.Union([Type.Literal('hour'), Type.Literal('day'), Type.Literal('week')]),
    ...range,
    breakdown: Type.Optional(
      Path('field whose values split the series (the top ones; the rest as "$other")'),
    ),
    measure: Type.Optional(
      Type.Union([Type.Literal('events'), Type.Literal('persons')], {
        description: 'count events (default) or distinct persons per point',
      }),
    ),
    where: Type.Optional(Where),
  },
  closed,
);
export type TrendsBody = Static<typeof TrendsBody>;

/** Validates a body; the first problem becomes a 400 naming the field (`steps[1].event`). */
export function validator<T extends TSchema>(schema: T): (body: unknown) => Static<T> {
  const check = TypeCompiler.Compile(schema);
  return (body) => {
    const e = firstSchemaError(check, body, { brackets: true });
    if (!e) return body as Static<T>;
    const message =
      e.schema && 'pattern' in e.schema && e.schema.pattern
        ? 'expected a duration such as 30d (s, m, h, d, w)'
        : e.message;
    throw new InputError(e.path || 'body', message);
  };
}
