// OpenAPI of query/routes/contact.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.

import { errors, id, json, type OpenApiPart, op, query } from '../openapi-common.ts';
import { ConsentBody, SuppressionInput } from './contact.ts';

/** OpenAPI of query/routes/contact.ts: its paths and the schemas they refer to. */
export const contactOpenApi: OpenApiPart = {
  paths: {
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
          requestBody: { required: true, content: json(ConsentBody) },
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
  },
};
