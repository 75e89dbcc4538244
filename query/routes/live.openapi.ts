// OpenAPI of query/routes/live.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { errors, json, type OpenApiPart, op } from '../openapi-common.ts';

/** OpenAPI of query/routes/live.ts: its paths and the schemas they refer to. */
export const liveOpenApi: OpenApiPart = {
  paths: {
    '/v1/live/pipeline': {
      get: op(
        'livePipeline',
        'Events per second of the workspace (last 60 s), latency p50/p95/p99 of the stored stages (last 5 min: ingest → history row, segment change → send, provider call) and lag per consumer group and topic',
      ),
    },
    '/v1/live/segments': {
      get: op(
        'liveSegments',
        'Every segment with member count, backfill status (backfilling / ready), the 5 latest entries and exits; with `Accept: text/event-stream` a stream of `segments` events sent whenever one changes',
        {
          responses: {
            '200': {
              description: 'JSON {segments: [...]}, or server-sent events',
              content: { ...json({ type: 'object' }), 'text/event-stream': { schema: { type: 'string' } } },
            },
            ...errors,
          },
        },
      ),
    },
  },
};
