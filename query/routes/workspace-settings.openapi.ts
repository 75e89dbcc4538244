// OpenAPI of query/routes/workspace-settings.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { errors, json, type OpenApiPart, op } from '../openapi-common.ts';
import { WorkspaceSettingsInput } from './workspace-settings.ts';

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
            // at least one of the two (the route answers 400 "give clientKeys or doubleOptIn")
            content: json({ ...WorkspaceSettingsInput, minProperties: 1 }),
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
