import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import {
  type ChannelCredentialStore,
  type CredentialChannel,
  isCredentialChannel,
  parseCredentials,
  redactCredentials,
  type StoredCredentials,
} from '../../runtime/channel-credentials.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import { SecretsKeyMissing } from '../../runtime/secrets-key.ts';
import { actorOf, recordAudit } from '../audit.ts';
import { type QueryEnv, readJson } from '../context.ts';
import { QueryError } from '../query-error.ts';

/** A service account key is a few KB; anything near this is not credentials. */
const MAX_BODY_BYTES = 64 * 1024;

/** What GET answers and the audit log keeps: never a secret, only fingerprints of them. */
export function credentialsView(
  s: StoredCredentials | undefined,
  channel: CredentialChannel,
  fingerprintKey: Buffer,
) {
  if (!s) return { channel, configured: false, source: 'deployment default' };
  if (!s.readable)
    return {
      channel,
      configured: true,
      readable: false,
      error: s.error,
      ...(s.keyId ? { keyId: s.keyId } : {}),
      ...(s.updatedAt ? { updatedAt: s.updatedAt } : {}),
      ...(s.updatedBy ? { updatedBy: s.updatedBy } : {}),
    };
  return {
    channel,
    configured: true,
    readable: true,
    source: 'workspace',
    ...redactCredentials(s.credentials, fingerprintKey),
    keyId: s.keyId,
    updatedAt: s.updatedAt,
    updatedBy: s.updatedBy,
  };
}

/**
 * The caller's workspace's own credentials for email, SMS and push (runtime/channel-credentials.ts):
 * PUT seals them (CDP_SECRETS_KEY), GET shows them redacted, DELETE goes back to the deployment's
 * defaults. Each change is an audit_log row with fingerprints, never a secret.
 */
export function channelCredentialRoutes(deps: {
  clickhouse: ClickHouseClient;
  credentials: ChannelCredentialStore;
  now: () => Date;
}) {
  const app = new Hono<QueryEnv>();
  const channelOf = (raw: string): CredentialChannel => {
    if (!isCredentialChannel(raw))
      throw new QueryError(
        404,
        `no channel ${JSON.stringify(raw.slice(0, 40))} with credentials: email, sms or push`,
      );
    return raw;
  };
  const audit = async (
    ws: string,
    actor: string,
    action: 'create' | 'update' | 'delete',
    channel: CredentialChannel,
    before: StoredCredentials | undefined,
    after: StoredCredentials | undefined,
  ) =>
    recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor,
        action,
        entityType: 'channel_credentials',
        entityId: channel,
        before: before ? credentialsView(before, channel, deps.credentials.fingerprintKey) : null,
        after: after ? credentialsView(after, channel, deps.credentials.fingerprintKey) : null,
      },
      deps.now(),
    );

  app.get('/:channel/credentials', async (c) => {
    const channel = channelOf(c.req.param('channel'));
    return c.json(
      credentialsView(
        await deps.credentials.get(c.get('workspaceId'), channel),
        channel,
        deps.credentials.fingerprintKey,
      ),
    );
  });

  app.put(
    '/:channel/credentials',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => c.json({ error: `body over ${MAX_BODY_BYTES / 1024} KiB` }, 413),
    }),
    async (c) => {
      const channel = channelOf(c.req.param('channel'));
      if (!deps.credentials.canSeal) throw new QueryError(503, new SecretsKeyMissing().message);
      const parsed = parseCredentials(channel, await readJson(c.req.raw));
      if ('error' in parsed) throw new QueryError(400, parsed.error);
      const ws = c.get('workspaceId');
      const actor = actorOf(c.get('apiKey'));
      const { before, after } = await deps.credentials.put(ws, parsed.ok, actor, deps.now());
      await audit(ws, actor, before ? 'update' : 'create', channel, before, after);
      return c.json(credentialsView(after, channel, deps.credentials.fingerprintKey), before ? 200 : 201);
    },
  );

  app.delete('/:channel/credentials', async (c) => {
    const channel = channelOf(c.req.param('channel'));
    const ws = c.get('workspaceId');
    const before = await deps.credentials.delete(ws, channel);
    if (!before) throw new QueryError(404, `no credentials stored for ${channel}`);
    await audit(ws, actorOf(c.get('apiKey')), 'delete', channel, before, undefined);
    return c.body(null, 204);
  });
  return app;
}
