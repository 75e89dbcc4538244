// OpenAPI of query/routes/workspace-settings.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { errors, json, type OpenApiPart, op } from '../openapi-common.ts';

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

/** OpenAPI of query/routes/workspace-settings.ts: its paths and the schemas they refer to. */
export const workspaceSettingsOpenApi: OpenApiPart = {
  paths: {
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
  },
};
