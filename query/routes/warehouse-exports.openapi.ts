// OpenAPI of query/routes/warehouse-exports.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { WarehouseExportInput } from '../../schemas/warehouse.ts';
import { errors, id, json, type OpenApiPart, op } from '../openapi-common.ts';

/** OpenAPI of query/routes/warehouse-exports.ts: its paths and the schemas they refer to. */
export const warehouseExportsOpenApi: OpenApiPart = {
  paths: {
    '/v1/warehouse-exports': {
      get: op('listWarehouseExports', 'Warehouse exports of the workspace (S3 secrets never shown)'),
      post: op(
        'createWarehouseExport',
        'Create a warehouse export: events, identity and/or segment_changes as Parquet files per UTC day and Kafka partition, to a directory under the deployment warehouse root or an S3-compatible bucket; its own consumer group reads from the oldest retained offset; 400 names a bad field (paths leaving the root, refused endpoints, bad buckets)',
        {
          requestBody: {
            required: true,
            content: json({ $ref: '#/components/schemas/WarehouseExportInput' }),
          },
          responses: {
            '201': { description: 'created' },
            '409': { description: 'at most 10 warehouse exports per workspace' },
            ...errors,
          },
        },
      ),
    },
    '/v1/warehouse-exports/{id}': {
      get: op('getWarehouseExport', 'A warehouse export', { parameters: [id('id')] }),
      put: op(
        'updateWarehouseExport',
        'Replace the export; the version increases, the S3 secret is kept when omitted; status paused stops its consumer, offsets and files kept',
        {
          parameters: [id('id')],
          requestBody: {
            required: true,
            content: json({ $ref: '#/components/schemas/WarehouseExportInput' }),
          },
        },
      ),
      delete: op(
        'deleteWarehouseExport',
        'Delete: its consumer stops; files already written stay where they are',
        {
          parameters: [id('id')],
          responses: { '204': { description: 'deleted' }, ...errors },
        },
      ),
    },
    '/v1/warehouse-exports/{id}/stats': {
      get: op(
        'warehouseExportStats',
        'Progress: {rows, files, skipped, errors, lastError, lastErrorAt, lastFileAt, rangesPending, lag}',
        { parameters: [id('id')] },
      ),
    },
  },
  schemas: {
    WarehouseExportInput,
  },
};
