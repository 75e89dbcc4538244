// OpenAPI of query/routes/destinations.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { DestinationInput } from '../../schemas/destination.ts';
import { errors, id, json, type OpenApiPart, op } from '../openapi-common.ts';

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

/** OpenAPI of query/routes/destinations.ts: its paths and the schemas they refer to. */
export const destinationsOpenApi: OpenApiPart = {
  paths: {
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
  },
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
  },
};
