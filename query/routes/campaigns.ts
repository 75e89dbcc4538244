import { randomBytes } from 'node:crypto';
import { type Context, Hono } from 'hono';
import { fingerprint, fingerprintKey } from '../../runtime/channel-credentials.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { DefinitionStore } from '../../runtime/definitions.ts';
import { type Keyring, keyring } from '../../runtime/secrets-key.ts';
import {
  type CampaignDefinition,
  type CampaignInput,
  campaignInputCheck,
  generateWebhookSecret,
  TEMPLATE_FIELDS,
} from '../../schemas/campaign.ts';
import { templateError } from '../../schemas/liquid-template.ts';
import { type QueryEnv, readJson } from '../context.ts';
import { QueryError } from '../query-error.ts';
import { saveDefinition } from '../save-definition.ts';
import { checkBody } from '../validate.ts';
import { campaignStats } from './campaign-stats.ts';

/**
 * The key the answers fingerprint webhook signing secrets with (as destinations do: derived
 * from CDP_SECRETS_KEY, so no offline guessing), or undefined when no key is configured.
 */
export function webhookFingerprintKey(secrets: Keyring | undefined): Buffer | undefined {
  const ring = secrets ?? keyring();
  return ring.current ? fingerprintKey(ring.current.key) : undefined;
}

/**
 * A webhook's settings as the API answers them: the signing secret is write-only, so only
 * `secretSet`, a keyed `secretFingerprint` (when CDP_SECRETS_KEY is set) and, in the answer of
 * the request that generated it, `secret` (shown that once).
 */
export function publicWebhook(
  webhook: { url: string; secret?: string },
  fpKey: Buffer | undefined,
  shown?: string,
): { url: string; secretSet: boolean; secretFingerprint?: string; secret?: string } {
  const { secret, ...rest } = webhook;
  const set = typeof secret === 'string' && secret !== '';
  return {
    ...rest,
    secretSet: set,
    ...(fpKey && set ? { secretFingerprint: fingerprint(secret, fpKey) } : {}),
    ...(shown ? { secret: shown } : {}),
  };
}

/**
 * The chosen channel's settings (a webhook secret generated or kept), purpose and policy;
 * `shown`: the secret when it was generated now (the only answer that may carry it).
 */
function channelSettings(input: CampaignInput, before: CampaignDefinition | undefined) {
  const out: Partial<CampaignDefinition> & Pick<CampaignDefinition, 'channel'> = { channel: input.channel };
  let shown: string | undefined;
  if (input.purpose) out.purpose = input.purpose;
  if (input.policy) out.policy = input.policy;
  switch (input.channel) {
    case 'webhook': {
      const kept = input.webhook!.secret ?? before?.webhook?.secret;
      if (kept === undefined) shown = generateWebhookSecret();
      out.webhook = { url: input.webhook!.url, secret: kept ?? shown! };
      break;
    }
    case 'email':
      out.email = input.email;
      break;
    case 'sms':
      out.sms = input.sms;
      break;
    case 'push':
      out.push = input.push;
      break;
    default: {
      const never: never = input.channel;
      throw new QueryError(400, `channel: unknown ${String(never)}`);
    }
  }
  return { settings: out, shown };
}

export function campaignRoutes(deps: {
  clickhouse: ClickHouseClient;
  defs: DefinitionStore;
  now: () => Date;
  /** CDP_SECRETS_KEY: answers carry a keyed fingerprint of a webhook's secret; none: no fingerprint. */
  secrets?: Keyring;
}) {
  const app = new Hono<QueryEnv>();
  const fpKey = webhookFingerprintKey(deps.secrets);
  /** What the API answers for a campaign: never the webhook secret, unless generated for this request. */
  const view = (def: CampaignDefinition, shown?: string) =>
    def.webhook ? { ...def, webhook: publicWebhook(def.webhook, fpKey, shown) } : def;

  const validate = async (ws: string, raw: unknown): Promise<CampaignInput> => {
    const body = checkBody(campaignInputCheck, raw);
    const settings = body[body.channel];
    if (!settings) throw new QueryError(400, `${body.channel}: required when channel is ${body.channel}`);
    if (body.channel === 'webhook') {
      let url: URL;
      try {
        url = new URL(body.webhook!.url);
      } catch {
        throw new QueryError(400, 'webhook.url: not a valid URL');
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:')
        throw new QueryError(400, 'webhook.url: must be http or https');
      if (url.username || url.password)
        throw new QueryError(400, 'webhook.url: credentials in the URL are not allowed');
    } else {
      // template syntax errors are found now, not at send time
      for (const field of TEMPLATE_FIELDS[body.channel]) {
        const source = (settings as Record<string, unknown>)[field];
        if (typeof source !== 'string') continue;
        const why = templateError(source);
        if (why) throw new QueryError(400, `${body.channel}.${field}: invalid Liquid template: ${why}`);
      }
    }
    if (!(await deps.defs.get('segments', ws, body.segmentId)))
      throw new QueryError(400, `segmentId: no segment ${body.segmentId}`);
    return body;
  };

  const load = async (ws: string, id: string) => {
    const def = await deps.defs.get('campaigns', ws, id);
    if (!def) throw new QueryError(404, `no campaign ${id}`);
    return def;
  };

  app.post('/', async (c) => {
    const ws = c.get('workspaceId');
    const input = await validate(ws, await readJson(c.req.raw));
    const at = deps.now().toISOString();
    const { settings, shown } = channelSettings(input, undefined);
    const def: CampaignDefinition = {
      id: `cmp_${randomBytes(9).toString('base64url')}`,
      workspaceId: ws,
      name: input.name,
      segmentId: input.segmentId,
      on: input.on,
      ...settings,
      status: input.status ?? 'active',
      version: 1,
      createdAt: at,
      updatedAt: at,
    };
    await saveDefinition(deps, c, 'campaigns', null, def);
    return c.json(view(def, shown), 201);
  });

  app.get('/', async (c) =>
    c.json({ campaigns: (await deps.defs.list('campaigns', c.get('workspaceId'))).map((d) => view(d)) }),
  );
  app.get('/:id', async (c) => c.json(view(await load(c.get('workspaceId'), c.req.param('id')))));

  /** Stores a new version of a campaign and audits the change. */
  const saveVersion = async (c: Context<QueryEnv>, before: CampaignDefinition, after: CampaignDefinition) => {
    await saveDefinition(deps, c, 'campaigns', before, after);
    return after;
  };

  app.put('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    const input = await validate(ws, await readJson(c.req.raw));
    const { webhook: _w, email: _e, sms: _s, push: _p, purpose: _u, policy: _o, ...kept } = before;
    const { settings, shown } = channelSettings(input, before);
    const after: CampaignDefinition = {
      ...kept,
      name: input.name,
      segmentId: input.segmentId,
      on: input.on,
      ...settings,
      status: input.status ?? before.status,
      version: before.version + 1,
      updatedAt: deps.now().toISOString(),
    };
    return c.json(view(await saveVersion(c, before, after), shown));
  });

  const setStatus = (status: 'active' | 'paused') => async (c: Context<QueryEnv>) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id') ?? '');
    if (before.status === status) return c.json(view(before));
    const after: CampaignDefinition = {
      ...before,
      status,
      version: before.version + 1,
      updatedAt: deps.now().toISOString(),
    };
    return c.json(view(await saveVersion(c, before, after)));
  };
  app.post('/:id/pause', setStatus('paused'));
  app.post('/:id/resume', setStatus('active'));

  app.get('/:id/stats', async (c) => {
    const ws = c.get('workspaceId');
    const def = await load(ws, c.req.param('id'));
    return c.json(await campaignStats(deps.clickhouse, ws, def.id));
  });

  app.delete('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    await saveDefinition(deps, c, 'campaigns', before, null);
    return c.body(null, 204);
  });
  return app;
}
