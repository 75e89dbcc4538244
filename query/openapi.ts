// OpenAPI 3.1 description of the query API, with request bodies from the TypeBox schemas
// that validate them. Each route file documents its own paths next to it
// (query/routes/<route>.openapi.ts); this file assembles them, plus the paths of the routes
// documented here still (workspaces and people, destinations, health).
import { DestinationInput } from '../schemas/destination.ts';
import { errors, id, json, type OpenApiPart, op } from './openapi-common.ts';
import { analyticsOpenApi } from './routes/analytics.openapi.ts';
import { auditLogOpenApi } from './routes/audit-log.openapi.ts';
import { biCredentialsOpenApi } from './routes/bi-credentials.openapi.ts';
import { campaignsOpenApi } from './routes/campaigns.openapi.ts';
import { channelCredentialsOpenApi } from './routes/channel-credentials.openapi.ts';
import { contactOpenApi } from './routes/contact.openapi.ts';
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
import { writeKeysOpenApi } from './routes/write-keys.openapi.ts';

const P = DestinationInput.properties;
/**
 * A destination as the API answers it (schemas/destination.ts publicDestination, and the
 * route's view): no token, and a webhook's signing secret only as `http.secretSet` and
 * `http.secretFingerprint`. `saved`: the answer of a create or an update, which also carries
 * `http.secret` when the server generated one, that once.
 */
const destinationView = (saved: boolean) => ({
  type: 'object',
  required: [
    'id',
    'workspaceId',
    'name',
    'type',
    'source',
    'http',
    'status',
    'version',
    'createdAt',
    'updatedAt',
  ],
  properties: {
    id: { type: 'string', pattern: '^dst_' },
    workspaceId: { type: 'string' },
    name: P.name,
    type: P.type,
    source: P.source,
    mapping: P.mapping,
    http: {
      type: 'object',
      required: ['url'],
      properties: {
        url: P.http.properties.url,
        batch: P.http.properties.batch,
        timeoutMs: P.http.properties.timeoutMs,
        secretSet: {
          type: 'boolean',
          description:
            'a webhook (type http): whether it has a signing secret; the secret itself is write-only',
        },
        secretFingerprint: {
          type: 'string',
          pattern: '^hmac:[0-9a-f]{12}$',
          description:
            'a webhook, when CDP_SECRETS_KEY is set: a keyed fingerprint of its signing secret (tells secrets apart, cannot be checked against guesses without the key; changes when the key is rotated)',
        },
        ...(saved
          ? {
              secret: {
                type: 'string',
                pattern: '^whsec_[A-Za-z0-9+/]+={0,2}$',
                description:
                  'the signing secret the server generated for this request (a create without `http.secret`, or an update that turned a built-in into a webhook): shown in this answer only, never again; absent when the secret was given or kept',
              },
            }
          : {}),
      },
    },
    hubspot: { type: 'object', properties: { idProperty: { type: 'string' } } },
    salesforce: {
      type: 'object',
      properties: {
        externalIdField: { type: 'string' },
        object: { type: 'string' },
        apiVersion: { type: 'string' },
      },
    },
    audience: {
      type: 'object',
      properties: {
        audienceId: { type: 'string' },
        identifier: { type: 'string', enum: ['email', 'phone'] },
        apiVersion: { type: 'string' },
      },
    },
    credentialsSet: {
      type: 'boolean',
      description: 'a built-in: whether its token is stored (write-only, never returned)',
    },
    rateLimit: P.rateLimit,
    retry: P.retry,
    status: { type: 'string', enum: ['active', 'paused'] },
    version: { type: 'integer', minimum: 1 },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
});
const destinationRef = json({ $ref: '#/components/schemas/Destination' });

/** The route files' parts, in the order their paths appear. */
const PARTS: OpenApiPart[] = [
  analyticsOpenApi,
  auditLogOpenApi,
  biCredentialsOpenApi,
  campaignsOpenApi,
  channelCredentialsOpenApi,
  contactOpenApi,
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
      schemas: {
        DestinationInput,
        Destination: {
          ...destinationView(false),
          description: 'A destination as GET, the list, pause and resume answer it: secrets never',
        },
        DestinationSaved: {
          ...destinationView(true),
          description:
            'A destination as the create (201) and the update (200) answer it: `http.secret` only when the server generated it for this request',
        },
        ...Object.assign({}, ...PARTS.map((p) => p.schemas ?? {})),
      },
    },
    security: [{ adminKey: [] }],
    paths: {
      // workspaces, people and roles (query/routes/workspaces.ts, query/roles.ts): the bearer
      // key is the admin key or a person's token (cdp_pt_…); X-Workspace names the workspace
      '/v1/me': {
        get: op(
          'whoAmI',
          'Who the key is: admin key or person, current workspace, role, permissions, workspaces',
        ),
      },
      '/v1/workspaces': {
        get: op('listWorkspaces', 'Workspaces: all for the admin key, a person’s own (with their role)'),
        post: op('createWorkspace', 'Create a workspace (the admin key only); 409 when the name is taken', {
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              required: ['name'],
              additionalProperties: false,
              properties: { name: { type: 'string', minLength: 1, maxLength: 100 } },
            }),
          },
          responses: {
            '201': { description: 'created' },
            '403': { description: 'not the admin key' },
            '409': { description: 'name taken' },
            ...errors,
          },
        }),
      },
      '/v1/workspaces/{id}/archive': {
        post: op(
          'archiveWorkspace',
          'Archive a workspace: its tokens, write keys, BI credentials, imports and warehouse exports stop, data is kept',
          {
            parameters: [id('id')],
            responses: {
              '200': { description: 'archived' },
              '403': { description: 'not an owner of it' },
              '409': { description: 'the built-in workspace' },
              ...errors,
            },
          },
        ),
      },
      '/v1/workspaces/{id}/unarchive': {
        post: op(
          'unarchiveWorkspace',
          'Un-archive a workspace (the admin key only): its tokens, write keys, BI credentials and warehouse exports work again',
          {
            parameters: [id('id')],
            responses: {
              '200': { description: 'active (also when it was not archived)' },
              '403': { description: 'not the admin key' },
              ...errors,
            },
          },
        ),
      },
      '/v1/people': {
        get: op('listPeople', 'People of the workspace with their roles (owners)'),
        post: op(
          'addPerson',
          'Add a person with a role (201), or change an existing person’s role here (200)',
          {
            requestBody: {
              required: true,
              content: json({
                type: 'object',
                required: ['email', 'role'],
                additionalProperties: false,
                properties: {
                  email: { type: 'string', maxLength: 254 },
                  name: { type: 'string', maxLength: 200 },
                  role: { type: 'string', enum: ['owner', 'marketer', 'analyst', 'developer'] },
                },
              }),
            },
            responses: {
              '200': { description: 'role changed' },
              '201': { description: 'added' },
              '409': { description: 'this would demote the workspace’s last owner' },
              ...errors,
            },
          },
        ),
      },
      '/v1/people/{id}': {
        delete: op('removePerson', 'Remove a person from this workspace', {
          parameters: [id('id')],
          responses: {
            '204': { description: 'removed' },
            '409': { description: 'the workspace’s last owner' },
            ...errors,
          },
        }),
      },
      '/v1/people/{id}/tokens': {
        get: op('listPersonTokens', 'A person’s tokens, without secrets', { parameters: [id('id')] }),
        post: op(
          'issuePersonToken',
          'Issue a token (in `token`, shown once); an owner’s works in this workspace only',
          {
            parameters: [id('id')],
            responses: { '201': { description: 'issued' }, ...errors },
          },
        ),
      },
      '/v1/people/{id}/tokens/{token}': {
        delete: op('revokePersonToken', 'Revoke a token (by its id, as listed)', {
          parameters: [id('id'), { ...id('token'), description: 'the token id' }],
          responses: { '204': { description: 'revoked' }, ...errors },
        }),
      },
      '/v1/destinations': {
        get: op('listDestinations', 'Destinations of the workspace', {
          responses: {
            '200': {
              description: 'the destinations, secrets never (`http.secretSet`, `http.secretFingerprint`)',
              content: json({
                type: 'object',
                required: ['destinations'],
                properties: {
                  destinations: { type: 'array', items: { $ref: '#/components/schemas/Destination' } },
                },
              }),
            },
            ...errors,
          },
        }),
        post: op(
          'createDestination',
          'Create a destination (its own consumer group, retries, breaker, rate limit); a Standard Webhooks secret is generated when none is given; 400 names a bad field (prototype paths, Liquid, refused addresses, limits)',
          {
            requestBody: { required: true, content: json({ $ref: '#/components/schemas/DestinationInput' }) },
            responses: {
              '201': {
                description:
                  'created; a webhook whose secret the server generated carries it in `http.secret`, in this answer only (it is write-only: afterwards only `http.secretSet` and `http.secretFingerprint`)',
                content: json({ $ref: '#/components/schemas/DestinationSaved' }),
              },
              '409': { description: 'at most 50 destinations per workspace' },
              ...errors,
            },
          },
        ),
      },
      '/v1/destinations/{id}': {
        get: op('getDestination', 'A destination', {
          parameters: [id('id')],
          responses: {
            '200': { description: 'the destination, secrets never', content: destinationRef },
            ...errors,
          },
        }),
        put: op(
          'updateDestination',
          'Replace the destination; the version increases, the secret is kept when omitted',
          {
            parameters: [id('id')],
            requestBody: { required: true, content: json({ $ref: '#/components/schemas/DestinationInput' }) },
            responses: {
              '200': {
                description:
                  'replaced; `http.secret` only when the server generated one now (a built-in turned into a webhook without `http.secret`), in this answer only',
                content: json({ $ref: '#/components/schemas/DestinationSaved' }),
              },
              ...errors,
            },
          },
        ),
        delete: op('deleteDestination', 'Delete: its consumer stops, its parked retries are dropped', {
          parameters: [id('id')],
          responses: { '204': { description: 'deleted' }, ...errors },
        }),
      },
      '/v1/destinations/{id}/pause': {
        post: op('pauseDestination', 'Pause: its consumer stops; offsets and parked retries are kept', {
          parameters: [id('id')],
          responses: { '200': { description: 'paused', content: destinationRef }, ...errors },
        }),
      },
      '/v1/destinations/{id}/resume': {
        post: op('resumeDestination', 'Resume from where it stopped', {
          parameters: [id('id')],
          responses: { '200': { description: 'active', content: destinationRef }, ...errors },
        }),
      },
      '/v1/destinations/{id}/dry-run': {
        post: op(
          'dryRunDestination',
          'Map a sample ({event} or {change}) with the destination: {matched, payload} as it would be sent, or 422 {matched, error} when the mapping fails; nothing is sent',
          {
            parameters: [id('id')],
            requestBody: {
              required: true,
              content: json({
                type: 'object',
                properties: { event: { type: 'object' }, change: { type: 'object' } },
              }),
            },
            responses: {
              '200': { description: '{matched, payload}' },
              '422': { description: '{matched, error}: the mapping failed on the sample' },
              ...errors,
            },
          },
        ),
      },
      '/v1/destinations/{id}/stats': {
        get: op(
          'destinationStats',
          'Deliveries from the ledger and its own consumer lag: {sent, retried, circuitOpen, deadLettered, latencyMs: {p50, p99}, lag}',
          { parameters: [id('id')] },
        ),
      },
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
