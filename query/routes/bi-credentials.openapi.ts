// OpenAPI of query/routes/bi-credentials.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { errors, id, json, type OpenApiPart, op } from '../openapi-common.ts';
import { BiCredentialInput } from './bi-credentials.ts';

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

/** OpenAPI of query/routes/bi-credentials.ts: its paths and the schemas they refer to. */
export const biCredentialsOpenApi: OpenApiPart = {
  paths: {
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
          content: json(BiCredentialInput),
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
  },
};
