// OpenAPI of query/routes/erasures.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { ErasureJob, errors, id, json, type OpenApiPart, op, query } from '../openapi-common.ts';

/** OpenAPI of query/routes/erasures.ts: its paths and the schemas they refer to. */
export const erasuresOpenApi: OpenApiPart = {
  paths: {
    '/v1/erasures': {
      get: op('listErasures', 'The latest erasure jobs, newest first', {
        parameters: [query('limit', { type: 'integer', minimum: 1, maximum: 1000, default: 100 })],
      }),
    },
    '/v1/erasures/{jobId}': {
      get: op('getErasure', 'An erasure job', {
        parameters: [id('jobId')],
        responses: {
          '200': { description: 'the job', content: json({ $ref: '#/components/schemas/ErasureJob' }) },
          ...errors,
        },
      }),
    },
  },
  schemas: {
    ErasureJob,
  },
};
