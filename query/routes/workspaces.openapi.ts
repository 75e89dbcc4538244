// OpenAPI of query/routes/workspaces.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { errors, id, json, type OpenApiPart, op } from '../openapi-common.ts';

/** OpenAPI of query/routes/workspaces.ts: its paths and the schemas they refer to. */
export const workspacesOpenApi: OpenApiPart = {
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
            '403': {
              description:
                'an owner added a person who belongs to other workspaces (only the admin key adds people to more than one)',
            },
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
  },
};
