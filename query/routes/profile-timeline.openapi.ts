// OpenAPI of query/routes/profile-timeline.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { id, type OpenApiPart, op, query } from '../openapi-common.ts';

/** OpenAPI of query/routes/profile-timeline.ts: its paths and the schemas they refer to. */
export const profileTimelineOpenApi: OpenApiPart = {
  paths: {
    '/v1/profiles/{id}/timeline': {
      get: op(
        'profileTimeline',
        'One list, newest first: events (all identifiers), activation decisions (sent, suppressed with reason, failed, …) and entries of current segments',
        {
          parameters: [
            id('id'),
            query('limit', { type: 'integer', minimum: 1, maximum: 1000, default: 100 }),
          ],
        },
      ),
    },
  },
};
