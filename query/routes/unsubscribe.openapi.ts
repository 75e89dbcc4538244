// OpenAPI of query/routes/unsubscribe.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { type OpenApiPart, op, query } from '../openapi-common.ts';

/** OpenAPI of query/routes/unsubscribe.ts: its paths and the schemas they refer to. */
export const unsubscribeOpenApi: OpenApiPart = {
  paths: {
    '/v1/unsubscribe': {
      get: op('unsubscribePage', 'Confirmation page for a signed unsubscribe token (no admin key)', {
        security: [],
        parameters: [{ ...query('token'), required: true }],
        responses: { '200': { description: 'HTML page' }, '400': { description: 'invalid token' } },
      }),
      post: op('unsubscribe', 'Unsubscribe (the page button and RFC 8058 one-click); no admin key', {
        security: [],
        parameters: [{ ...query('token'), required: true }],
        responses: { '200': { description: 'unsubscribed' }, '400': { description: 'invalid token' } },
      }),
    },
  },
};
