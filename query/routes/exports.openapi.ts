// OpenAPI of query/routes/exports.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { ExportInput } from '../../schemas/export.ts';
import { errors, id, json, type OpenApiPart, op } from '../openapi-common.ts';

/** OpenAPI of query/routes/exports.ts: its paths and the schemas they refer to. */
export const exportsOpenApi: OpenApiPart = {
  paths: {
    '/v1/exports': {
      get: op('listExports', 'The latest 50 exports of the workspace, with their progress'),
      post: op(
        'createExport',
        'Export a segment, an event query or a BI view to CSV or Parquet → 202 with the job ({id, status, rowsTotal, rowsDone, progress, file}); 429 with three under way',
        {
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/ExportInput' }) },
          responses: { '202': { description: 'the job, pending; Location: /v1/exports/{id}' }, ...errors },
        },
      ),
    },
    '/v1/exports/{id}': {
      get: op('getExport', 'An export: status pending|running|done|failed|expired, progress 0–1, file', {
        parameters: [id('id')],
      }),
      delete: op('deleteExport', 'Cancel an export or delete its file (audited)', {
        parameters: [id('id')],
      }),
    },
    '/v1/exports/{id}/file': {
      get: op(
        'downloadExport',
        'The finished file (text/csv or application/vnd.apache.parquet); 409 until done, 410 when gone',
        {
          parameters: [id('id')],
        },
      ),
    },
  },
  schemas: {
    ExportInput,
  },
};
