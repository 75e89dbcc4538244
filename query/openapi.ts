// OpenAPI 3.1 description of the query API, with request bodies from the TypeBox schemas
// that validate them. Each route file documents its own paths next to it
// (query/routes/<route>.openapi.ts); this file only assembles them, plus /healthz and /readyz,
// which belong to no route file (runtime/http.ts mountHealth, mounted by query/main.ts).
import type { OpenApiPart } from './openapi-common.ts';
import { analyticsOpenApi } from './routes/analytics.openapi.ts';
import { auditLogOpenApi } from './routes/audit-log.openapi.ts';
import { biCredentialsOpenApi } from './routes/bi-credentials.openapi.ts';
import { campaignsOpenApi } from './routes/campaigns.openapi.ts';
import { channelCredentialsOpenApi } from './routes/channel-credentials.openapi.ts';
import { contactOpenApi } from './routes/contact.openapi.ts';
import { destinationsOpenApi } from './routes/destinations.openapi.ts';
import { erasuresOpenApi } from './routes/erasures.openapi.ts';
import { exportsOpenApi } from './routes/exports.openapi.ts';
import { formsOpenApi } from './routes/forms.openapi.ts';
import { importsOpenApi } from './routes/imports.openapi.ts';
import { journeysOpenApi } from './routes/journeys.openapi.ts';
import { ledgerOpenApi } from './routes/ledger.openapi.ts';
import { liveOpenApi } from './routes/live.openapi.ts';
import { pagesOpenApi } from './routes/pages.openapi.ts';
import { profileDefinitionsOpenApi } from './routes/profile-definitions.openapi.ts';
import { profileTimelineOpenApi } from './routes/profile-timeline.openapi.ts';
import { profilesOpenApi } from './routes/profiles.openapi.ts';
import { segmentsOpenApi } from './routes/segments.openapi.ts';
import { templatePreviewOpenApi } from './routes/template-preview.openapi.ts';
import { trackingPlanOpenApi } from './routes/tracking-plan.openapi.ts';
import { unsubscribeOpenApi } from './routes/unsubscribe.openapi.ts';
import { warehouseExportsOpenApi } from './routes/warehouse-exports.openapi.ts';
import { workspaceSettingsOpenApi } from './routes/workspace-settings.openapi.ts';
import { workspacesOpenApi } from './routes/workspaces.openapi.ts';
import { writeKeysOpenApi } from './routes/write-keys.openapi.ts';

/** The route files' parts, in the order their paths appear. */
const PARTS: OpenApiPart[] = [
  analyticsOpenApi,
  auditLogOpenApi,
  biCredentialsOpenApi,
  campaignsOpenApi,
  channelCredentialsOpenApi,
  contactOpenApi,
  destinationsOpenApi,
  erasuresOpenApi,
  exportsOpenApi,
  formsOpenApi,
  importsOpenApi,
  journeysOpenApi,
  ledgerOpenApi,
  liveOpenApi,
  pagesOpenApi,
  profileDefinitionsOpenApi,
  profileTimelineOpenApi,
  profilesOpenApi,
  segmentsOpenApi,
  templatePreviewOpenApi,
  trackingPlanOpenApi,
  unsubscribeOpenApi,
  warehouseExportsOpenApi,
  workspaceSettingsOpenApi,
  workspacesOpenApi,
  writeKeysOpenApi,
];

export function queryOpenApi(): object {
  return {
    openapi: '3.1.0',
    info: {
      title: 'cdp query API',
      version: '0.1.0',
      description: 'Every /v1 route needs an admin key: `Authorization: Bearer <key>`.',
    },
    components: {
      securitySchemes: { adminKey: { type: 'http', scheme: 'bearer' } },
      schemas: Object.assign({}, ...PARTS.map((p) => p.schemas ?? {})),
    },
    security: [{ adminKey: [] }],
    paths: {
      // health (runtime/http.ts mountHealth): no key
      '/healthz': {
        get: {
          operationId: 'healthz',
          summary: 'Alive',
          security: [],
          responses: { '200': { description: 'alive' } },
        },
      },
      '/readyz': {
        get: {
          operationId: 'readyz',
          summary: 'Redis and ClickHouse reachable',
          security: [],
          responses: { '200': { description: 'ready' }, '503': { description: 'not ready' } },
        },
      },
      ...Object.assign({}, ...PARTS.map((p) => p.paths)),
    },
  };
}
