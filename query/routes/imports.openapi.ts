// OpenAPI of query/routes/imports.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { errors, id, type OpenApiPart, op, query } from '../openapi-common.ts';

/** OpenAPI of query/routes/imports.ts: its paths and the schemas they refer to. */
export const importsOpenApi: OpenApiPart = {
  paths: {
    '/v1/imports': {
      get: op('listImports', 'The latest 50 imports of the workspace, with their progress'),
      post: op(
        'createImport',
        'Import traits or consent decisions in bulk from a CSV (header row: userId and/or email, then trait columns; for consent channel, purpose, status, timestamp, source, text) or JSON lines file, streamed up to CDP_IMPORTS_MAX_MB → 202 with the job at once; a file already imported whole is not applied again (duplicateOf); 413 over the limit; 429 with three under way, or with CDP_IMPORTS_MAX_UPLOADS uploads of the workspace being received (Retry-After)',
        {
          parameters: [query('kind', { type: 'string', enum: ['traits', 'consent'] })],
          requestBody: {
            required: true,
            content: {
              'text/csv': { schema: { type: 'string' } },
              'application/x-ndjson': { schema: { type: 'string' } },
            },
          },
          responses: {
            '202': { description: 'the job, processing; Location: /v1/imports/{id}' },
            ...errors,
          },
        },
      ),
    },
    '/v1/imports/{id}': {
      get: op(
        'getImport',
        'An import: status processing|done|failed (error says why), rowsRead, rowsAccepted, rowsRejected, committedLine, sha256',
        { parameters: [id('id')] },
      ),
    },
    '/v1/imports/{id}/errors': {
      get: op('listImportErrors', 'Rejected rows {line, reason}, the first 1,000 kept', {
        parameters: [id('id'), query('offset', { type: 'integer' }), query('limit', { type: 'integer' })],
      }),
    },
  },
};
