// OpenAPI of query/routes/profiles.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { errors, id, json, type OpenApiPart, op, query } from '../openapi-common.ts';

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

/** OpenAPI of query/routes/profiles.ts: its paths and the schemas they refer to. */
export const profilesOpenApi: OpenApiPart = {
  paths: {
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
  },
  schemas: {
    Profile,
  },
};
