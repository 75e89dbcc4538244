// OpenAPI of query/routes/write-keys.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { errors, id, json, type OpenApiPart, op } from '../openapi-common.ts';
import { WriteKeyInput } from './write-keys.ts';

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

/** OpenAPI of query/routes/write-keys.ts: its paths and the schemas they refer to. */
export const writeKeysOpenApi: OpenApiPart = {
  paths: {
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
          content: json(WriteKeyInput),
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
    '/v1/write-keys/{id}': {
      delete: op('revokeWriteKey', 'Revoke; ingest refuses it within a second', {
        parameters: [id('id')],
        responses: { '204': { description: 'revoked' }, ...errors },
      }),
    },
  },
};
