// OpenAPI of query/routes/channel-credentials.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { err, errors, json, type OpenApiPart, op } from '../openapi-common.ts';

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

/** OpenAPI of query/routes/channel-credentials.ts: its paths and the schemas they refer to. */
export const channelCredentialsOpenApi: OpenApiPart = {
  paths: {
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
  },
};
