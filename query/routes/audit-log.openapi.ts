// OpenAPI of query/routes/audit-log.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { type OpenApiPart, op, pageParams, query } from '../openapi-common.ts';

/** OpenAPI of query/routes/audit-log.ts: its paths and the schemas they refer to. */
export const auditLogOpenApi: OpenApiPart = {
  paths: {
    '/v1/audit': {
      get: op(
        'listAudit',
        'Configuration changes (who, what, when, before/after), newest first, paged as /v1/ledger',
        {
          parameters: [...pageParams, ...['entityType', 'entityId', 'actor', 'action'].map((n) => query(n))],
        },
      ),
    },
  },
};
