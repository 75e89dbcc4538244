// OpenAPI of query/routes/analytics.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { AttributionBody, FunnelBody, RetentionBody, TrendsBody } from '../analytics/bodies.ts';
import { err, errors, json, type OpenApiPart, op } from '../openapi-common.ts';

/** POST /v1/analytics/*: JSON by default, the same rows as CSV with `Accept: text/csv`. */
function analyticsPaths(): Record<string, object> {
  const route = (name: string, schema: string, summary: string) => ({
    [`/v1/analytics/${name}`]: {
      post: op(`analytics${schema.replace('Body', '')}`, summary, {
        requestBody: { required: true, content: json({ $ref: `#/components/schemas/${schema}` }) },
        responses: {
          '200': {
            description: 'the result (JSON), or its rows as CSV when `Accept: text/csv`',
            content: { ...json({ type: 'object' }), 'text/csv': { schema: { type: 'string' } } },
          },
          ...errors,
          '413': { description: 'body over 64 KiB', content: json(err) },
          '429': {
            description:
              'CDP_ANALYTICS_MAX_CONCURRENT analytics queries of this workspace are already running; retry after `Retry-After` seconds',
            headers: { 'Retry-After': { schema: { type: 'integer' } } },
            content: json(err),
          },
          '500': {
            description: 'the engine failed (logged; the answer names the query id only)',
            content: json(err),
          },
          '504': { description: 'the query ran past CDP_ANALYTICS_TIMEOUT_S', content: json(err) },
        },
      }),
    },
  });
  return {
    ...route(
      'funnel',
      'FunnelBody',
      'Persons who did steps 1..k in order, each within `window` of their step-1 event: {steps: [{event, count, conversionRate}]}',
    ),
    ...route(
      'retention',
      'RetentionBody',
      'Cohorts by the period of the first cohortEvent; returned[k] = members who did returnEvent in period start + k',
    ),
    ...route(
      'attribution',
      'AttributionBody',
      'Conversions (and value) credited to touchpoints by model: {rows: [{touchpoint, model, conversions, value}], unattributed}',
    ),
    ...route(
      'trends',
      'TrendsBody',
      'Events (or persons) per hour, day or week: {series: [{key?, points: [{t, count}]}]}',
    ),
  };
}

/** OpenAPI of query/routes/analytics.ts: its paths and the schemas they refer to. */
export const analyticsOpenApi: OpenApiPart = {
  paths: {
    ...analyticsPaths(),
  },
  schemas: {
    FunnelBody,
    RetentionBody,
    AttributionBody,
    TrendsBody,
  },
};
