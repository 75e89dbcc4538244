// OpenAPI 3.1 description of the query API, with request bodies from the TypeBox schemas
// that validate them.
import { CampaignInput } from '../schemas/campaign.ts';
import { ComputedTraitInput } from '../schemas/computed-trait.ts';
import { DestinationInput } from '../schemas/destination.ts';
import { ERASURE_STEPS } from '../schemas/erasure.ts';
import { ExportInput } from '../schemas/export.ts';
import { FormInput } from '../schemas/form.ts';
import { JourneyInput } from '../schemas/journey.ts';
import { LeadScoreInput } from '../schemas/lead-score.ts';
import { PageInput } from '../schemas/page.ts';
import { SegmentInput } from '../schemas/segment.ts';
import { WarehouseExportInput } from '../schemas/warehouse.ts';
import { AttributionBody, FunnelBody, RetentionBody, TrendsBody } from './analytics/bodies.ts';
import { ConsentInput, SuppressionInput } from './routes/contact.ts';

const json = (schema: object) => ({ 'application/json': { schema } });
const err = { type: 'object', properties: { error: { type: 'string' } }, required: ['error'] };
const errors = {
  '400': { description: 'Invalid input; `error` names the field', content: json(err) },
  '401': { description: 'Missing or unknown admin key', content: json(err) },
  '404': { description: 'Not found', content: json(err) },
  '429': {
    description: 'Too many wrong admin keys from this address; retry after `Retry-After` seconds',
    headers: { 'Retry-After': { schema: { type: 'integer' } } },
    content: json(err),
  },
};
const id = (name: string) => ({ name, in: 'path', required: true, schema: { type: 'string' } });
const query = (name: string, schema: object = { type: 'string' }) => ({
  name,
  in: 'query',
  required: false,
  schema,
});
/** Time range, page size, cursor and format of the keyset-paged listings (ledger, audit). */
const pageParams = [
  query('from', { type: 'string', format: 'date-time' }),
  query('to', { type: 'string', format: 'date-time' }),
  query('limit', { type: 'integer', minimum: 1, maximum: 1000 }),
  query('cursor'),
  query('format', { type: 'string', enum: ['json', 'csv'] }),
];
const biCredential = {
  type: 'object',
  required: ['user', 'workspaceId', 'name', 'createdAt', 'revokedAt'],
  properties: {
    user: {
      type: 'string',
      pattern: '^bi_[0-9a-f]{12}$',
      description: 'the user name BI tools sign in with on CDP_BI_PORT',
    },
    workspaceId: { type: 'string' },
    name: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    revokedAt: { type: ['string', 'null'], format: 'date-time' },
  },
};
const writeKeyRecord = {
  type: 'object',
  required: ['id', 'name', 'kind', 'key', 'workspaceId', 'createdAt', 'revokedAt'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    kind: { type: 'string', enum: ['server', 'client'] },
    key: { type: 'string', description: 'the write key (HTTP Basic user name); masked in lists' },
    workspaceId: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    revokedAt: { type: ['string', 'null'], format: 'date-time' },
  },
};
const workspaceSettings = {
  type: 'object',
  properties: {
    clientKeys: { type: 'string', enum: ['restricted', 'trusted'] },
    clientKeysSource: { type: 'string', enum: ['workspace', 'default'] },
    doubleOptIn: {
      type: ['object', 'null'],
      description: 'purposes whose grants need confirming by a link (null: none)',
      properties: {
        purposes: {
          type: 'array',
          items: { type: 'string', pattern: '^[a-z0-9_-]{1,40}$' },
          minItems: 1,
          maxItems: 50,
        },
        ttlHours: { type: 'integer', minimum: 1, maximum: 720, default: 72 },
        from: { type: 'string' },
        template: {
          type: 'object',
          required: ['subject', 'text'],
          properties: { subject: { type: 'string' }, text: { type: 'string' }, html: { type: 'string' } },
          description: 'Liquid over confirm_url, purpose, channel, consent_text, expires_at, traits',
        },
      },
    },
  },
};

const CredentialChannelParam = {
  name: 'channel',
  in: 'path',
  required: true,
  schema: { type: 'string', enum: ['email', 'sms', 'push'] },
};
const fromAddress = { type: 'string', minLength: 3, maxLength: 320, pattern: '@' };
const EmailCredentialsInput = {
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['provider', 'from', 'url'],
      properties: {
        provider: { const: 'smtp' },
        from: fromAddress,
        url: {
          type: 'string',
          pattern: '^smtps?://',
          maxLength: 2048,
          description: 'smtp(s)://user:pass@host:port',
        },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['provider', 'from', 'region', 'accessKeyId', 'secretAccessKey'],
      properties: {
        provider: { const: 'ses' },
        from: fromAddress,
        region: { type: 'string', pattern: '^[a-z]{2}(-[a-z]+)+-\\d+$' },
        accessKeyId: { type: 'string', pattern: '^[A-Z0-9]+$', minLength: 16, maxLength: 128 },
        secretAccessKey: { type: 'string', minLength: 16, maxLength: 256 },
        sessionToken: { type: 'string', maxLength: 4096 },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['provider', 'from', 'apiKey'],
      properties: {
        provider: { const: 'sendgrid' },
        from: fromAddress,
        apiKey: { type: 'string', minLength: 10, maxLength: 512 },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['provider', 'from', 'serverToken'],
      properties: {
        provider: { const: 'postmark' },
        from: fromAddress,
        serverToken: { type: 'string', minLength: 10, maxLength: 256 },
        messageStream: { type: 'string', pattern: '^[A-Za-z0-9_-]+$', maxLength: 100 },
      },
    },
  ],
};
const SmsCredentialsInput = {
  type: 'object',
  additionalProperties: false,
  required: ['accountSid', 'authToken', 'from'],
  properties: {
    accountSid: { type: 'string', pattern: '^AC[0-9a-fA-F]{32}$' },
    authToken: { type: 'string', minLength: 16, maxLength: 256 },
    from: {
      type: 'string',
      description: 'E.164 number or an alphanumeric sender id (≤ 11 characters, a letter)',
    },
  },
};
const PushCredentialsInput = {
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['provider', 'serviceAccount'],
      properties: {
        provider: { const: 'fcm' },
        serviceAccount: {
          description: 'the service account key: its JSON object, or that JSON as a string (never a path)',
          oneOf: [{ type: 'object' }, { type: 'string' }],
        },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['provider', 'teamId', 'keyId', 'key', 'topic'],
      properties: {
        provider: { const: 'apns' },
        teamId: { type: 'string', pattern: '^[A-Z0-9]{10}$' },
        keyId: { type: 'string', pattern: '^[A-Z0-9]{10}$' },
        key: { type: 'string', description: 'the .p8 key, PEM (EC P-256)' },
        topic: { type: 'string', description: 'the app bundle id' },
      },
    },
  ],
};
const ChannelCredentialsView = {
  type: 'object',
  required: ['channel', 'configured'],
  description:
    'Redacted: the provider, its non-secret fields (from, region, accessKeyId, accountSid, server without password, projectId, clientEmail, teamId, keyId, topic, …) and `secrets`, a keyed fingerprint (`hmac:` + 12 hex, HMAC-SHA256 under a key derived from CDP_SECRETS_KEY) per secret',
  properties: {
    channel: { type: 'string', enum: ['email', 'sms', 'push'] },
    configured: { type: 'boolean', description: 'false: sends use the deployment default' },
    readable: {
      type: 'boolean',
      description: 'false: stored but cannot be decrypted here; sends fail `credentials unreadable`',
    },
    source: { type: 'string', enum: ['workspace', 'deployment default'] },
    provider: { type: 'string' },
    secrets: { type: 'object', additionalProperties: { type: 'string', pattern: '^hmac:[0-9a-f]{12}$' } },
    error: { type: 'string' },
    keyId: { type: 'string' },
    updatedAt: { type: 'string', format: 'date-time' },
    updatedBy: { type: 'string', description: 'the admin key fingerprint (key:…)' },
  },
  additionalProperties: true,
};

const op = (operationId: string, summary: string, extra: object = {}) => ({
  operationId,
  summary,
  responses: { '200': { description: 'OK' }, ...errors },
  ...extra,
});

const Profile = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    userIds: { type: 'array', items: { type: 'string' } },
    anonymousIds: { type: 'array', items: { type: 'string' } },
    emails: { type: 'array', items: { type: 'string' } },
    traits: { type: 'object' },
    segments: { type: 'array', items: { type: 'string' } },
    computed: {
      type: 'object',
      description: 'computed trait name → value now (null without data in its window)',
    },
    scores: { type: 'object', description: 'lead score name → points now' },
    firstSeenAt: { type: ['string', 'null'], format: 'date-time' },
    lastSeenAt: { type: ['string', 'null'], format: 'date-time' },
  },
};

const ErasureJob = {
  type: 'object',
  description: 'An erasure job: its state and counts, never the erased data',
  properties: {
    id: { type: 'string' },
    profileId: { type: 'string' },
    status: { type: 'string', enum: ['pending', 'done'] },
    done: {
      type: 'array',
      items: { type: 'string', enum: [...ERASURE_STEPS] },
      description: 'steps done, in order',
    },
    counts: { type: 'object', additionalProperties: { type: 'integer' } },
    requestedBy: { type: 'string', description: 'fingerprint of the admin key' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    finishedAt: { type: ['string', 'null'], format: 'date-time' },
    attempts: { type: 'integer', description: 'failed attempts so far' },
    lastError: { type: ['string', 'null'] },
    nextAttemptAt: { type: ['string', 'null'], format: 'date-time' },
  },
};
const erasureStarted = {
  '200': {
    description: 'the erasure is done (`job.status` done)',
    content: json({
      type: 'object',
      properties: {
        erased: { type: 'string' },
        identities: { type: 'integer' },
        job: { $ref: '#/components/schemas/ErasureJob' },
      },
    }),
  },
  '202': {
    description: 'the erasure job runs on (`Location: /v1/erasures/{jobId}`); same body',
  },
  ...errors,
};

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
        Profile,
        ErasureJob,
        SegmentInput,
        CampaignInput,
        DestinationInput,
        WarehouseExportInput,
        JourneyInput,
        FormInput,
        PageInput,
        ExportInput,
        ComputedTraitInput,
        LeadScoreInput,
        FunnelBody,
        RetentionBody,
        AttributionBody,
        TrendsBody,
        TrackingPlanInput: {
          type: 'object',
          required: ['mode', 'events'],
          additionalProperties: false,
          properties: {
            mode: { type: 'string', enum: ['allow', 'flag', 'quarantine'] },
            unplannedEvents: {
              type: 'string',
              enum: ['allow', 'violation'],
              description: 'what a track event whose name is not listed is (default allow)',
            },
            events: {
              type: 'object',
              description: 'track events by name',
              additionalProperties: {
                type: 'object',
                additionalProperties: false,
                properties: {
                  description: { type: 'string', maxLength: 2000 },
                  properties: { description: 'JSON Schema (draft 2020-12) of the event properties' },
                  traits: { description: 'JSON Schema of context.traits' },
                },
              },
            },
            identify: {
              type: 'object',
              additionalProperties: false,
              properties: { traits: { description: 'JSON Schema of identify traits' } },
            },
            group: {
              type: 'object',
              additionalProperties: false,
              properties: { traits: { description: 'JSON Schema of group traits' } },
            },
          },
        },
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
      '/v1/people/{id}/tokens/{tokenId}': {
        delete: op('revokePersonToken', 'Revoke a token', {
          parameters: [id('id'), id('tokenId')],
          responses: { '204': { description: 'revoked' }, ...errors },
        }),
      },
      '/v1/profiles': {
        get: op('findProfile', 'Find a profile by exactly one of userId, anonymousId or email', {
          parameters: [query('userId'), query('anonymousId'), query('email'), query('externalId')],
          responses: {
            '200': { description: 'the profile', content: json({ $ref: '#/components/schemas/Profile' }) },
            ...errors,
          },
        }),
        delete: op('eraseProfileBy', 'GDPR erasure of the profile found by exactly one identifier', {
          parameters: [query('userId'), query('anonymousId'), query('email'), query('externalId')],
          responses: erasureStarted,
        }),
      },
      '/v1/profiles/{id}': {
        get: op('getProfile', 'A profile by id; a merged-away id answers with the survivor', {
          parameters: [id('id')],
        }),
        delete: op(
          'eraseProfile',
          'GDPR erasure: starts (or resumes) the erasure job of the person and every profile merged into it',
          { parameters: [id('id')], responses: erasureStarted },
        ),
      },
      '/v1/profiles/{id}/export': {
        get: op(
          'exportProfile',
          'Access request: everything held on the person, one JSON object per line with a `type` (profile, consent, push_device, event, identity_link, membership, ledger, consent_log, journey_step; `end` last)',
          {
            parameters: [id('id')],
            responses: {
              '200': {
                description: 'NDJSON',
                content: { 'application/x-ndjson': { schema: { type: 'string' } } },
              },
              ...errors,
            },
          },
        ),
      },
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
      '/v1/profiles/{id}/events': {
        get: op(
          'profileEvents',
          'The person’s history from ClickHouse, newest first, across all its identifiers',
          {
            parameters: [
              id('id'),
              query('limit', { type: 'integer', minimum: 1, maximum: 1000, default: 100 }),
            ],
          },
        ),
      },
      '/v1/segments': {
        get: op('listSegments', 'Segments of the workspace'),
        post: op('createSegment', 'Create a segment from a JSON Logic rule', {
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/SegmentInput' }) },
          responses: { '201': { description: 'created' }, ...errors },
        }),
      },
      '/v1/segments/preview': {
        post: op(
          'previewSegment',
          'Evaluate a rule over a sample of profiles without saving it: estimated size and matching profiles',
          {
            requestBody: {
              required: true,
              content: json({
                type: 'object',
                required: ['rule'],
                properties: {
                  rule: { type: 'object' },
                  sampleSize: { type: 'integer', minimum: 1, maximum: 5000, default: 1000 },
                },
              }),
            },
          },
        ),
      },
      '/v1/segments/{id}': {
        get: op(
          'getSegment',
          'A segment, with its backfill status and `noCampaign: {entered, exited}` (changes no active campaign matched)',
          { parameters: [id('id')] },
        ),
        put: op('updateSegment', 'Replace name and rule; the version increases', {
          parameters: [id('id')],
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/SegmentInput' }) },
        }),
        delete: op(
          'deleteSegment',
          'Delete (refused while other segments or campaigns use it); emits no exits',
          {
            parameters: [id('id')],
            responses: {
              '204': { description: 'deleted' },
              '409': { description: 'in use', content: json(err) },
              ...errors,
            },
          },
        ),
      },
      '/v1/segments/{id}/members': {
        get: op('segmentMembers', 'Member profile ids, oldest entry first', {
          parameters: [
            id('id'),
            query('cursor'),
            query('limit', { type: 'integer', minimum: 1, maximum: 1000 }),
          ],
        }),
      },
      '/v1/computed-traits': {
        get: op('listComputedTraits', 'Computed traits of the workspace'),
        post: op(
          'createComputedTrait',
          'Define a count, sum, min, max or last value of an event property over a window',
          {
            requestBody: {
              required: true,
              content: json({ $ref: '#/components/schemas/ComputedTraitInput' }),
            },
            responses: {
              '201': { description: 'created' },
              '409': { description: 'name in use', content: json(err) },
              ...errors,
            },
          },
        ),
      },
      '/v1/computed-traits/{id}': {
        get: op('getComputedTrait', 'A computed trait', { parameters: [id('id')] }),
        put: op('updateComputedTrait', 'Replace the definition; the version increases', {
          parameters: [id('id')],
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/ComputedTraitInput' }) },
        }),
        delete: op('deleteComputedTrait', 'Delete (refused while a segment reads it)', {
          parameters: [id('id')],
          responses: {
            '204': { description: 'deleted' },
            '409': { description: 'in use', content: json(err) },
            ...errors,
          },
        }),
      },
      '/v1/scores': {
        get: op('listScores', 'Lead scores of the workspace'),
        post: op(
          'createScore',
          'Define a lead score: points per event or while a trait condition holds, optional half-life',
          {
            requestBody: { required: true, content: json({ $ref: '#/components/schemas/LeadScoreInput' }) },
            responses: {
              '201': { description: 'created' },
              '409': { description: 'name in use', content: json(err) },
              ...errors,
            },
          },
        ),
      },
      '/v1/scores/{id}': {
        get: op('getScore', 'A lead score', { parameters: [id('id')] }),
        put: op('updateScore', 'Replace the definition; the version increases', {
          parameters: [id('id')],
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/LeadScoreInput' }) },
        }),
        delete: op('deleteScore', 'Delete (refused while a segment reads it)', {
          parameters: [id('id')],
          responses: {
            '204': { description: 'deleted' },
            '409': { description: 'in use', content: json(err) },
            ...errors,
          },
        }),
      },
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
      '/v1/live/pipeline': {
        get: op(
          'livePipeline',
          'Events per second of the workspace (last 60 s), latency p50/p95/p99 of the stored stages (last 5 min: ingest → history row, segment change → send, provider call) and lag per consumer group and topic',
        ),
      },
      '/v1/live/segments': {
        get: op(
          'liveSegments',
          'Every segment with member count, backfill status (backfilling / ready), the 5 latest entries and exits; with `Accept: text/event-stream` a stream of `segments` events sent whenever one changes',
          {
            responses: {
              '200': {
                description: 'JSON {segments: [...]}, or server-sent events',
                content: { ...json({ type: 'object' }), 'text/event-stream': { schema: { type: 'string' } } },
              },
              ...errors,
            },
          },
        ),
      },
      '/v1/templates/preview': {
        post: op(
          'previewTemplate',
          'Render a channel’s Liquid templates (email, sms, push) for a profile, as activation would; nothing is sent',
          {
            requestBody: {
              required: true,
              content: json({
                type: 'object',
                required: ['channel', 'settings'],
                properties: {
                  channel: { enum: ['email', 'sms', 'push'] },
                  settings: { type: 'object' },
                  profileId: { type: 'string' },
                  campaignName: { type: 'string' },
                },
              }),
            },
          },
        ),
      },
      '/v1/destinations': {
        get: op('listDestinations', 'Destinations of the workspace'),
        post: op(
          'createDestination',
          'Create a destination (its own consumer group, retries, breaker, rate limit); a Standard Webhooks secret is generated when none is given; 400 names a bad field (prototype paths, Liquid, refused addresses, limits)',
          {
            requestBody: { required: true, content: json({ $ref: '#/components/schemas/DestinationInput' }) },
            responses: {
              '201': { description: 'created (with the secret)' },
              '409': { description: 'at most 50 destinations per workspace' },
              ...errors,
            },
          },
        ),
      },
      '/v1/destinations/{id}': {
        get: op('getDestination', 'A destination', { parameters: [id('id')] }),
        put: op(
          'updateDestination',
          'Replace the destination; the version increases, the secret is kept when omitted',
          {
            parameters: [id('id')],
            requestBody: { required: true, content: json({ $ref: '#/components/schemas/DestinationInput' }) },
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
        }),
      },
      '/v1/destinations/{id}/resume': {
        post: op('resumeDestination', 'Resume from where it stopped', { parameters: [id('id')] }),
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
      '/v1/campaigns': {
        get: op('listCampaigns', 'Campaigns of the workspace'),
        post: op('createCampaign', 'Create a campaign; a webhook secret is generated when none is given', {
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/CampaignInput' }) },
          responses: { '201': { description: 'created (with the secret)' }, ...errors },
        }),
      },
      '/v1/campaigns/{id}': {
        get: op('getCampaign', 'A campaign', { parameters: [id('id')] }),
        put: op('updateCampaign', 'Replace the campaign; the version increases', {
          parameters: [id('id')],
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/CampaignInput' }) },
        }),
        delete: op('deleteCampaign', 'Delete', {
          parameters: [id('id')],
          responses: { '204': { description: 'deleted' }, ...errors },
        }),
      },
      '/v1/campaigns/{id}/pause': {
        post: op(
          'pauseCampaign',
          'Pause: nothing is sent, delayed and retried sends are dropped (on record)',
          {
            parameters: [id('id')],
          },
        ),
      },
      '/v1/journeys': {
        get: op('listJourneys', 'Journeys of the workspace (latest versions)'),
        post: op(
          'createJourney',
          'Create a journey as a draft (version 1); 400 names the field of a bad graph',
          {
            requestBody: { required: true, content: json({ $ref: '#/components/schemas/JourneyInput' }) },
            responses: { '201': { description: 'created: {id, version, status: "draft", …}' }, ...errors },
          },
        ),
      },
      '/v1/journeys/{id}': {
        get: op('getJourney', 'A journey (latest version)', { parameters: [id('id')] }),
        put: op(
          'updateJourney',
          'A new version; people in flight stay on the version they entered (409 once archived)',
          {
            parameters: [id('id')],
            requestBody: { required: true, content: json({ $ref: '#/components/schemas/JourneyInput' }) },
          },
        ),
      },
      ...Object.fromEntries(
        (
          [
            ['activate', 'draft → active: people start entering'],
            ['pause', 'active → paused: no entries, no steps; people stay where they are'],
            ['resume', 'paused → active: waits past their time end at once'],
            ['archive', 'draft, active or paused → archived (final): runs end as they next move'],
          ] as const
        ).map(([action, summary]) => [
          `/v1/journeys/{id}/${action}`,
          {
            post: op(`${action}Journey`, `${summary} (409 from another status)`, { parameters: [id('id')] }),
          },
        ]),
      ),
      '/v1/journeys/{id}/stats': {
        get: op(
          'journeyStats',
          'Counts: {entered, refused, convertedAfterExit, ended: {reason: n}, nodes: {<nodeId>: {now, passed, converted, exited}}, branches: {<nodeId>: {<arm>: {entered, converted, rate}}}, holdouts: {<splitId>: {treatment, holdout, lift, difference, confidence}}}',
          { parameters: [id('id')] },
        ),
      },
      '/v1/journeys/{id}/migrate': {
        post: op(
          'migrateJourney',
          'Move people in flight on version `from` to the current version: {from, nodes?: {<old node>: <new node>}} → 202 (409 while one is under way)',
          {
            parameters: [id('id')],
            responses: { '202': { description: 'the migration, pending' }, ...errors },
          },
        ),
      },
      '/v1/journeys/{id}/migration': {
        get: op(
          'journeyMigration',
          'The latest migration: {from, to, status, moved, skipped, …} (404: none)',
          {
            parameters: [id('id')],
          },
        ),
      },
      '/v1/ledger': {
        get: op(
          'listLedger',
          'Send decisions (sent, suppressed and why, failed, retried, delayed), newest first: {items, nextCursor}; `nextCursor` is the cursor of the following page (null at the end); `format=csv` streams every matching row',
          {
            parameters: [
              ...pageParams,
              ...['campaignId', 'journeyId', 'outcome', 'reason', 'channel', 'profileId', 'userId'].map((n) =>
                query(n),
              ),
            ],
          },
        ),
      },
      '/v1/ledger/journey-steps': {
        get: op(
          'listJourneySteps',
          'Steps of journey runs (entered, waited, branched, sent, converted, exited), newest first, paged as /v1/ledger',
          {
            parameters: [
              ...pageParams,
              ...['journeyId', 'step', 'nodeId', 'profileId', 'userId'].map((n) => query(n)),
            ],
          },
        ),
      },
      '/v1/audit': {
        get: op(
          'listAudit',
          'Configuration changes (who, what, when, before/after), newest first, paged as /v1/ledger',
          {
            parameters: [
              ...pageParams,
              ...['entityType', 'entityId', 'actor', 'action'].map((n) => query(n)),
            ],
          },
        ),
      },
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
      '/v1/imports': {
        get: op('listImports', 'The latest 50 imports of the workspace, with their progress'),
        post: op(
          'createImport',
          'Import traits or consent decisions in bulk from a CSV (header row: userId and/or email, then trait columns; for consent channel, purpose, status, timestamp, source, text) or JSON lines file, streamed up to CDP_IMPORTS_MAX_MB → 202 with the job at once; a file already imported whole is not applied again (duplicateOf); 413 over the limit; 429 with three under way',
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
      '/v1/tracking-plan': {
        get: op('getTrackingPlan', 'The workspace tracking plan (latest version); 404 when there is none'),
        put: op(
          'putTrackingPlan',
          'Save the tracking plan (a new version; applies at ingest within CDP_DEFINITIONS_POLL_MS); 400 names the path of a schema that does not compile, refers outside itself, is too large or deep, or has a nested-quantifier pattern',
          {
            requestBody: {
              required: true,
              content: json({ $ref: '#/components/schemas/TrackingPlanInput' }),
            },
            responses: {
              '200': { description: 'updated: the plan with its new version' },
              '201': { description: 'created: the plan, version after any deleted plan versions' },
              ...errors,
            },
          },
        ),
        delete: op(
          'deleteTrackingPlan',
          'Remove the plan (its versions stay); events are no longer checked',
          {
            responses: { '204': { description: 'deleted' }, ...errors },
          },
        ),
      },
      '/v1/tracking-plan/versions/{version}': {
        get: op('getTrackingPlanVersion', 'A saved version of the tracking plan', {
          parameters: [id('version')],
        }),
      },
      '/v1/tracking-plan/violations': {
        get: op(
          'trackingPlanViolations',
          'Violations in [from, to) by event, property path and keyword: distinct events, by mode, last seen; and per event. Identify and group traits are under $identify and $group',
          {
            parameters: [
              query('from', { type: 'string', format: 'date-time' }),
              query('to', { type: 'string', format: 'date-time' }),
              query('event'),
            ],
          },
        ),
      },
      '/v1/tracking-plan/quarantine': {
        get: op(
          'listQuarantinedEvents',
          'Quarantined events, newest first, with reason, violations and the event (payload); paged by cursor',
          {
            parameters: [
              query('from', { type: 'string', format: 'date-time' }),
              query('to', { type: 'string', format: 'date-time' }),
              query('limit', { type: 'integer', minimum: 1, maximum: 1000 }),
              query('cursor'),
              query('event'),
              query('status', { type: 'string', enum: ['quarantined', 'replayed', 'all'] }),
            ],
          },
        ),
      },
      '/v1/tracking-plan/replay': {
        post: op(
          'replayQuarantine',
          'Re-check quarantined events against the current plan; the passing ones go to the pipeline with their messageId and are marked replayed → {replayed, stillInvalid, more, planVersion}; 409 while another replay of the workspace runs',
          {
            requestBody: {
              required: false,
              content: json({
                type: 'object',
                additionalProperties: false,
                properties: {
                  from: { type: 'string', format: 'date-time' },
                  to: { type: 'string', format: 'date-time' },
                  event: {
                    type: 'string',
                    description: 'only events of this name ($identify, $group for those calls)',
                  },
                },
              }),
            },
          },
        ),
      },
      '/v1/forms': {
        get: op('listForms', 'Forms of the workspace (latest versions)'),
        post: op('createForm', 'Create a form (version 1; status active unless given); 400 names the field', {
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/FormInput' }) },
          responses: { '201': { description: 'created: {id, version, status, …}' }, ...errors },
        }),
      },
      '/v1/forms/{id}': {
        get: op('getForm', 'A form (latest version)', { parameters: [id('id')] }),
        put: op('updateForm', 'A new version (consent records name the version whose text was shown)', {
          parameters: [id('id')],
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/FormInput' }) },
        }),
        delete: op('deleteForm', 'Delete a form (its versions stay, for the consent records)', {
          parameters: [id('id')],
        }),
      },
      '/v1/forms/{id}/versions/{version}': {
        get: op('getFormVersion', 'A saved version of a form', { parameters: [id('id'), id('version')] }),
      },
      '/v1/forms/{id}/pause': {
        post: op('pauseForm', 'Pause: the ingest host answers its posts 409', { parameters: [id('id')] }),
      },
      '/v1/forms/{id}/activate': {
        post: op('activateForm', 'Take submissions again', { parameters: [id('id')] }),
      },
      '/v1/forms/{id}/stats': {
        get: op(
          'formStats',
          'Submissions (all, from landing pages), unique submitters, the landing-page views that showed the form, conversions and rate, by day and by page',
          {
            parameters: [
              id('id'),
              query('from', { type: 'string', format: 'date-time' }),
              query('to', { type: 'string', format: 'date-time' }),
            ],
          },
        ),
      },
      '/v1/pages': {
        get: op('listPages', 'Landing pages of the workspace (latest versions)', {
          parameters: [query('status', { type: 'string', enum: ['draft', 'published', 'archived'] })],
        }),
        post: op(
          'createPage',
          'Create a landing page (version 1; a draft unless status given); 400 names the field, 409 slug in use, 413 over 256 KB',
          {
            requestBody: { required: true, content: json({ $ref: '#/components/schemas/PageInput' }) },
            responses: { '201': { description: 'created: {id, version, status, slug, …}' }, ...errors },
          },
        ),
      },
      '/v1/pages/{id}': {
        get: op('getPage', 'A landing page (latest version)', { parameters: [id('id')] }),
        put: op('updatePage', 'A new version; 409 when the new slug is in use', {
          parameters: [id('id')],
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/PageInput' }) },
        }),
        delete: op('deletePage', 'Delete a page (its versions stay; its slug is freed)', {
          parameters: [id('id')],
        }),
      },
      '/v1/pages/{id}/versions/{version}': {
        get: op('getPageVersion', 'A saved version of a page', { parameters: [id('id'), id('version')] }),
      },
      '/v1/pages/{id}/publish': {
        post: op('publishPage', 'Publish: the ingest host serves it at /p/{workspace}/{slug}', {
          parameters: [id('id')],
        }),
      },
      '/v1/pages/{id}/unpublish': {
        post: op('unpublishPage', 'Back to draft: a 404 on the ingest host', { parameters: [id('id')] }),
      },
      '/v1/pages/{id}/archive': {
        post: op('archivePage', 'Archive: a 404 on the ingest host; the slug stays taken', {
          parameters: [id('id')],
        }),
      },
      '/v1/pages/{id}/stats': {
        get: op(
          'pageStats',
          'Views, unique visitors, submissions, unique submitters, conversions (submitters who viewed the variant) and rate; per variant and per day',
          {
            parameters: [
              id('id'),
              query('from', { type: 'string', format: 'date-time' }),
              query('to', { type: 'string', format: 'date-time' }),
            ],
          },
        ),
      },
      '/v1/campaigns/{id}/resume': {
        post: op('resumeCampaign', 'Resume a paused campaign', { parameters: [id('id')] }),
      },
      '/v1/campaigns/{id}/stats': {
        get: op(
          'campaignStats',
          'Sent, failed, retried, delayed, suppressed by reason; delivery latency p50/p99 (ms); what the email provider reported back, delivery {delivered, bounced, softBounced, complained, deliveryRate, bounceRate, complaintRate} (never counted as sends); with email tracking, engagement {opened, clicked, machineOnlyOpened, machineOnlyClicked, openRate, clickRate} per send',
          {
            parameters: [id('id')],
          },
        ),
      },
      '/v1/profiles/{id}/consent': {
        get: op(
          'getConsent',
          'Consent of a profile per channel and purpose (each with status subscribed|pending|revoked)',
          {
            parameters: [id('id')],
          },
        ),
        put: op(
          'putConsent',
          'Set consent: {channel, purpose?, subscribed} or {consents: [...]}; `*` means all. ' +
            'With `confirm: true` (and `text`), a grant is recorded pending and a double opt-in confirmation mail sent',
          {
            parameters: [id('id')],
            requestBody: { required: true, content: json(ConsentInput) },
          },
        ),
      },
      '/v1/profiles/{id}/consent/history': {
        get: op('getConsentHistory', "The person's logged consent decisions, newest first", {
          parameters: [
            id('id'),
            query('channel'),
            query('purpose'),
            query('limit', { type: 'integer', minimum: 1, maximum: 1000 }),
          ],
          responses: {
            '200': {
              description: 'the history',
              content: json({
                type: 'object',
                properties: {
                  profileId: { type: 'string' },
                  history: {
                    type: 'array',
                    items: {
                      type: 'object',
                      properties: {
                        at: { type: 'string', format: 'date-time' },
                        profileId: { type: 'string' },
                        channel: { type: 'string' },
                        purpose: { type: 'string' },
                        status: { type: 'string', enum: ['subscribed', 'pending', 'revoked'] },
                        subscribed: { type: 'boolean' },
                        source: {
                          type: 'string',
                          description:
                            'api | unsubscribe_link | form:<id>@<version> | link (a double opt-in confirmation)',
                        },
                        actor: { type: 'string' },
                        campaignId: { type: 'string' },
                        ip: { type: 'string' },
                        userAgent: { type: 'string' },
                        text: { type: 'string', description: 'the exact text the person was shown' },
                        confirmation: {
                          type: 'string',
                          description: 'the double opt-in record a pending grant and its confirmation share',
                        },
                      },
                    },
                  },
                },
              }),
            },
            ...errors,
          },
        }),
      },
      '/v1/suppressions': {
        get: op('listSuppressions', 'The suppression list', {
          parameters: [query('cursor'), query('limit', { type: 'integer', minimum: 1, maximum: 1000 })],
        }),
        post: op('addSuppression', 'Suppress an email, phone, profileId or push deviceToken', {
          requestBody: { required: true, content: json(SuppressionInput) },
          responses: { '201': { description: 'added' }, ...errors },
        }),
        delete: op('removeSuppression', 'Remove by ?email=, ?phone= or ?profileId=', {
          parameters: [query('email'), query('phone'), query('profileId')],
          responses: { '204': { description: 'removed' }, ...errors },
        }),
      },
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
      '/v1/channels/{channel}/credentials': {
        get: op(
          'getChannelCredentials',
          "The workspace's own credentials for a channel, redacted (fingerprints, never secrets)",
          {
            parameters: [CredentialChannelParam],
            responses: {
              '200': {
                description: 'stored (readable or not), or `configured: false`',
                content: json(ChannelCredentialsView),
              },
              ...errors,
            },
          },
        ),
        put: op(
          'putChannelCredentials',
          "Store the workspace's credentials for email, sms or push, encrypted (CDP_SECRETS_KEY); they take precedence over the deployment's within CDP_CHANNEL_CREDENTIALS_POLL_MS (audited, fingerprints only)",
          {
            parameters: [CredentialChannelParam],
            requestBody: {
              required: true,
              description:
                'by channel: email → EmailCredentialsInput, sms → SmsCredentialsInput, push → PushCredentialsInput',
              content: json({ oneOf: [EmailCredentialsInput, SmsCredentialsInput, PushCredentialsInput] }),
            },
            responses: {
              '200': { description: 'replaced', content: json(ChannelCredentialsView) },
              '201': { description: 'stored', content: json(ChannelCredentialsView) },
              '413': { description: 'body over 64 KiB', content: json(err) },
              '503': {
                description: 'CDP_SECRETS_KEY is not set on the query service; the error says how to set it',
                content: json(err),
              },
              ...errors,
            },
          },
        ),
        delete: op(
          'deleteChannelCredentials',
          "Remove the workspace's credentials; sends use the deployment's again (audited)",
          {
            parameters: [CredentialChannelParam],
            responses: { '204': { description: 'removed' }, ...errors },
          },
        ),
      },
      '/v1/write-keys': {
        get: op('listWriteKeys', 'Write keys of the workspace, revoked ones included; keys masked', {
          responses: {
            '200': {
              description: 'the keys, each `key` masked (the full key is only in the answer to its creation)',
              content: json({
                type: 'object',
                properties: { writeKeys: { type: 'array', items: writeKeyRecord } },
              }),
            },
            ...errors,
          },
        }),
        post: op('createWriteKey', 'Create a write key', {
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              required: ['name'],
              additionalProperties: false,
              properties: {
                name: { type: 'string', minLength: 1, maxLength: 200 },
                kind: {
                  type: 'string',
                  enum: ['server', 'client'],
                  default: 'server',
                  description:
                    '`client` for keys that ship in browsers and apps (public): they cannot take over or change how a known person is reached; see GET/PUT /v1/settings',
                },
              },
            }),
          },
          responses: {
            '201': {
              description: 'created; the only answer that shows the full key',
              content: json(writeKeyRecord),
            },
            ...errors,
          },
        }),
      },
      '/v1/settings': {
        get: op('getWorkspaceSettings', 'Settings of the workspace', {
          responses: {
            '200': { description: 'settings in effect', content: json(workspaceSettings) },
            ...errors,
          },
        }),
        put: op(
          'updateWorkspaceSettings',
          'Change settings of the workspace: clientKeys, doubleOptIn (audited)',
          {
            requestBody: {
              required: true,
              content: json({
                type: 'object',
                additionalProperties: false,
                minProperties: 1,
                properties: {
                  clientKeys: {
                    enum: ['restricted', 'trusted', null],
                    description:
                      '`restricted`: client keys cannot take over or rewrite known people; `trusted`: they act like server keys; null: the deployment default (CDP_CLIENT_KEYS)',
                  },
                  doubleOptIn: {
                    description:
                      'Double opt-in: {purposes, ttlHours?, from?, template?: {subject, text, html?}}, or null to turn it off. ' +
                      'A purpose listed is opt-in: only a confirmed (or API) grant lets campaigns send on it',
                  },
                },
              }),
            },
            responses: {
              '200': { description: 'settings in effect', content: json(workspaceSettings) },
              ...errors,
            },
          },
        ),
      },
      '/v1/bi-credentials': {
        get: op('listBiCredentials', 'BI credentials of the workspace, revoked ones included; no passwords', {
          responses: {
            '200': {
              description: 'the credentials',
              content: json({
                type: 'object',
                properties: { biCredentials: { type: 'array', items: biCredential } },
              }),
            },
            ...errors,
          },
        }),
        post: op('createBiCredential', 'Create a read-only SQL credential for BI tools (audited)', {
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              required: ['name'],
              additionalProperties: false,
              properties: { name: { type: 'string', minLength: 1, maxLength: 200 } },
            }),
          },
          responses: {
            '201': {
              description:
                'created; the only answer that shows the password. Sign in on the BI SQL endpoint (CDP_BI_PORT, the ClickHouse HTTP interface) with `user` and `password`',
              content: json({
                ...biCredential,
                required: [...biCredential.required, 'password'],
                properties: { ...biCredential.properties, password: { type: 'string' } },
              }),
            },
            ...errors,
          },
        }),
      },
      '/v1/bi-credentials/{user}': {
        delete: op('revokeBiCredential', 'Revoke; its next query is refused (audited)', {
          parameters: [id('user')],
          responses: { '204': { description: 'revoked' }, ...errors },
        }),
      },
      '/v1/write-keys/{id}': {
        delete: op('revokeWriteKey', 'Revoke; ingest refuses it within a second', {
          parameters: [id('id')],
          responses: { '204': { description: 'revoked' }, ...errors },
        }),
      },
      ...analyticsPaths(),
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
    },
  };
}

/** POST /v1/analytics/*: JSON by default, the same rows as CSV with `Accept: text/csv`. */
function analyticsPaths(): Record<string, object> {
  const route = (name: string, schema: string, summary: string) => ({
    [`/v1/analytics/${name}`]: {
      post: op(`analytics${schema.replace('Body', '')}`, summary, {
        requestBody: { required: true, content: json({ $ref: `#/components/schemas/${schema}` }) },
        responses: {
          '200': {
            description: 'the result (JSON), or its rows as CSV when `Accept: text/csv`',
            content: { ...json({ type: 'object' }), 'text/csv': { schema: { type: 'string' } } },
          },
          ...errors,
          '413': { description: 'body over 64 KiB', content: json(err) },
          '500': {
            description: 'the engine failed (logged; the answer names the query id only)',
            content: json(err),
          },
          '504': { description: 'the query ran past CDP_ANALYTICS_TIMEOUT_S', content: json(err) },
        },
      }),
    },
  });
  return {
    ...route(
      'funnel',
      'FunnelBody',
      'Persons who did steps 1..k in order, each within `window` of their step-1 event: {steps: [{event, count, conversionRate}]}',
    ),
    ...route(
      'retention',
      'RetentionBody',
      'Cohorts by the period of the first cohortEvent; returned[k] = members who did returnEvent in period start + k',
    ),
    ...route(
      'attribution',
      'AttributionBody',
      'Conversions (and value) credited to touchpoints by model: {rows: [{touchpoint, model, conversions, value}], unattributed}',
    ),
    ...route(
      'trends',
      'TrendsBody',
      'Events (or persons) per hour, day or week: {series: [{key?, points: [{t, count}]}]}',
    ),
  };
}
