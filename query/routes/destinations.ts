// Destinations (schemas/destination.ts): created, versioned and audited like campaigns; the
// destinations service (destinations/) picks each change up from the definitions revision.
// A dry-run maps a sample event with a destination's mapping and sends nothing.
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { type Context, Hono } from 'hono';
import { type GuardPolicy, refusal } from '../../activation/webhook/address-guard.ts';
import { audienceMember, SCHEMA } from '../../destinations/ads-audience.ts';
import { HUBSPOT_MAX_BATCH, HUBSPOT_UPSERT_PATH, hubspotContact } from '../../destinations/hubspot.ts';
import { SALESFORCE_MAX_BATCH, salesforceRecord } from '../../destinations/salesforce.ts';
import { fingerprint, fingerprintKey } from '../../runtime/channel-credentials.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { DefinitionStore } from '../../runtime/definitions.ts';
import { withTimeout } from '../../runtime/http.ts';
import type { Admin } from '../../runtime/kafka/index.ts';
import { type Keyring, keyring, seal } from '../../runtime/secrets-key.ts';
import {
  applyMapping,
  checkDestination,
  type DeliveryItem,
  type DestinationDefinition,
  DestinationError,
  type DestinationInput,
  deliveryBody,
  destinationAad,
  destinationGroup,
  destinationInputCheck,
  destinationSecretAad,
  generateDestinationSecret,
  passesFilter,
  publicDestination,
  signingSecretOf,
} from '../../schemas/destination.ts';
import { topics } from '../../schemas/topics.ts';
import { actorOf, recordAudit } from '../audit.ts';
import { type QueryEnv, readJson } from '../context.ts';
import { QueryError } from '../query-error.ts';
import { checkBody } from '../validate.ts';

/** What a built-in would send for one mapped item (method, path, body), or why it could not. */
function builtinRequest(
  def: DestinationDefinition,
  data: unknown,
): { method: string; path: string; body: unknown } | { error: string } {
  if (def.type === 'hubspot') {
    const c = hubspotContact(data, def.hubspot?.idProperty ?? 'email');
    return typeof c === 'string'
      ? { error: c }
      : { method: 'POST', path: HUBSPOT_UPSERT_PATH, body: { inputs: [c] } };
  }
  if (def.type === 'salesforce') {
    const sf = def.salesforce ?? { object: 'Contact', externalIdField: '', apiVersion: 'v60.0' };
    const r = salesforceRecord(data, sf.object, sf.externalIdField);
    return typeof r === 'string'
      ? { error: r }
      : {
          method: 'PATCH',
          path: `/services/data/${sf.apiVersion}/composite/sobjects/${sf.object}/${sf.externalIdField}`,
          body: { allOrNone: false, records: [r] },
        };
  }
  const a = def.audience ?? { audienceId: '', identifier: 'email' as const, apiVersion: 'v21.0' };
  const m = audienceMember(data, a.identifier);
  return 'error' in m
    ? m
    : {
        method: m.action === 'add' ? 'POST' : 'DELETE',
        path: `/${a.apiVersion}/${a.audienceId}/users`,
        body: { payload: { schema: [SCHEMA[a.identifier]], data: [[m.hash]] } },
      };
}

/**
 * Whether two base URLs send to the same place (compared as parsed: `HTTPS://Api.HubAPI.com` and
 * `https://api.hubapi.com/` are one endpoint; another host, port, scheme or path is not).
 */
function sameEndpoint(a: string, b: string): boolean {
  const norm = (u: string) => {
    try {
      const url = new URL(u);
      return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}${url.search}`;
    } catch {
      return `invalid:${u}`;
    }
  };
  return norm(a) === norm(b);
}

/** Destinations per workspace (each runs a consumer group of its own). */
export const MAX_DESTINATIONS_PER_WORKSPACE = 50;

export function destinationRoutes(deps: {
  clickhouse: ClickHouseClient;
  defs: DefinitionStore;
  now: () => Date;
  /** Which literal addresses a destination URL may name (the activation address guard's policy). */
  addressPolicy: GuardPolicy;
  /** For the consumer lag in stats (kafkajs); none: `lag: null`. */
  kafkaAdmin?: Admin;
  topicPrefix?: string;
  /** Seals a provider's credentials (CDP_SECRETS_KEY); none: a built-in with credentials cannot be saved. */
  secrets?: Keyring;
}) {
  const app = new Hono<QueryEnv>();
  const ring = deps.secrets ?? keyring();
  // keyed like the channel credentials' fingerprints: no offline guessing from GET or the audit log
  const fpKey = ring.current ? fingerprintKey(ring.current.key) : undefined;

  /**
   * What the API answers for a definition: the public view (no secret, no token), a webhook's
   * secret as a keyed fingerprint when CDP_SECRETS_KEY is set, and `shown`: a signing secret
   * the server generated for this request, shown in that one answer only (the caller has no
   * other way to learn it).
   */
  const view = (def: DestinationDefinition, shown?: string) => {
    const v = publicDestination(def);
    if (def.type !== 'http') return v;
    const plain = plainSecret(def);
    return {
      ...v,
      http: {
        ...v.http,
        ...(fpKey && plain ? { secretFingerprint: fingerprint(plain, fpKey) } : {}),
        ...(shown ? { secret: shown } : {}),
      },
    };
  };
  /** A webhook's signing secret in clear, or undefined (none, or sealed with a key not at hand). */
  const plainSecret = (def: DestinationDefinition): string | undefined => {
    if (def.type !== 'http') return undefined;
    try {
      return signingSecretOf(ring, def) || undefined;
    } catch {
      return undefined;
    }
  };

  /**
   * Stores (or deletes) a definition and audits it, like saveDefinition, but the audit log
   * sees the public view: sealed credentials never, only that they were set or replaced.
   */
  const save = async (
    c: Context<QueryEnv>,
    before: DestinationDefinition | null,
    after: DestinationDefinition | null,
  ) => {
    const ws = c.get('workspaceId');
    const entity = (after ?? before)!;
    if (after) await deps.defs.put('destinations', after);
    else await deps.defs.remove('destinations', ws, entity.id);
    const replaced =
      after?.credentials !== undefined &&
      JSON.stringify(after.credentials) !== JSON.stringify(before?.credentials);
    const secretReplaced =
      before !== null && after?.type === 'http' && plainSecret(after) !== plainSecret(before);
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor: actorOf(c.get('apiKey')),
        action: before === null ? 'create' : after === null ? 'delete' : 'update',
        entityType: 'destination',
        entityId: entity.id,
        before: before ? view(before) : null,
        after: after
          ? {
              ...view(after),
              ...(replaced ? { credentialsReplaced: true } : {}),
              ...(secretReplaced ? { secretReplaced: true } : {}),
            }
          : null,
      },
      deps.now(),
    );
  };

  const validate = (raw: unknown): DestinationInput => {
    const body = checkBody(destinationInputCheck, raw);
    let url: URL;
    try {
      url = new URL(body.http.url);
    } catch {
      throw new QueryError(400, 'http.url: not a valid URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new QueryError(400, 'http.url: must be http or https');
    if (url.username || url.password)
      throw new QueryError(400, 'http.url: credentials in the URL are not allowed');
    // a literal address is judged now; a name is resolved (and judged) at every connection
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) {
      const why = refusal(host, deps.addressPolicy);
      if (why) throw new QueryError(400, `http.url: destination refused: ${why}`);
    }
    if (body.type !== 'hubspot' && body.hubspot)
      throw new QueryError(400, `hubspot: only for a destination of type hubspot`);
    if (body.type !== 'salesforce' && body.salesforce)
      throw new QueryError(400, `salesforce: only for a destination of type salesforce`);
    if (body.type === 'salesforce') {
      if (!body.salesforce) throw new QueryError(400, 'salesforce: required (externalIdField, token)');
      if ((body.http.batch?.maxEvents ?? 0) > SALESFORCE_MAX_BATCH)
        throw new QueryError(
          400,
          `http.batch.maxEvents: Salesforce takes at most ${SALESFORCE_MAX_BATCH} records a request`,
        );
      if (body.http.secret) throw new QueryError(400, 'http.secret: a salesforce destination is not signed');
    }
    if (body.type !== 'audience' && body.audience)
      throw new QueryError(400, `audience: only for a destination of type audience`);
    if (body.type === 'audience') {
      if (!body.audience) throw new QueryError(400, 'audience: required (audienceId, token)');
      if (body.source.kind !== 'segment_changes')
        throw new QueryError(400, 'source.kind: an audience follows segment_changes');
      if (body.mapping)
        throw new QueryError(
          400,
          'mapping: an audience reads the change itself (type and the identifier trait)',
        );
      if (body.http.secret)
        throw new QueryError(400, 'http.secret: an audience is not signed (its token is audience.token)');
    }
    if (body.type === 'hubspot' && (body.http.batch?.maxEvents ?? 0) > HUBSPOT_MAX_BATCH)
      throw new QueryError(
        400,
        `http.batch.maxEvents: HubSpot takes at most ${HUBSPOT_MAX_BATCH} contacts a batch`,
      );
    if (body.type === 'hubspot' && body.http.secret)
      throw new QueryError(
        400,
        'http.secret: a hubspot destination is not signed (its token is hubspot.token)',
      );
    try {
      checkDestination(body);
    } catch (err) {
      if (err instanceof DestinationError) throw new QueryError(400, err.message);
      throw err;
    }
    return body;
  };

  const load = async (ws: string, id: string) => {
    const def = await deps.defs.get('destinations', ws, id);
    if (!def) throw new QueryError(404, `no destination ${id}`);
    return def;
  };

  /** A built-in's credentials: the new token sealed for this destination, or the stored ones kept. */
  const credentials = (
    input: DestinationInput,
    ws: string,
    id: string,
    before: DestinationDefinition | undefined,
  ) => {
    if (input.type === 'http') return {};
    const token =
      input.type === 'hubspot'
        ? input.hubspot?.token
        : input.type === 'salesforce'
          ? input.salesforce?.token
          : input.audience?.token;
    const field = `${input.type}.token`;
    if (token === undefined) {
      if (before?.type === input.type && before.credentials) {
        // a stored token goes only where it was given for: re-pointing the destination (a
        // developer may edit it, but never saw the token) must come with the token again
        if (sameEndpoint(before.http.url, input.http.url)) return { credentials: before.credentials };
        throw new QueryError(
          400,
          `${field}: required when http.url changes (the stored token is only sent to the URL it was given with)`,
        );
      }
      throw new QueryError(
        400,
        input.type === 'hubspot'
          ? 'hubspot.token: required (a HubSpot private-app access token)'
          : input.type === 'salesforce'
            ? 'salesforce.token: required (an OAuth access token)'
            : 'audience.token: required (the ads API access token)',
      );
    }
    if (!ring.current)
      throw new QueryError(503, 'CDP_SECRETS_KEY is not set: a destination with credentials cannot be saved');
    return { credentials: seal(ring, JSON.stringify({ token }), destinationAad(ws, id)) };
  };

  /**
   * A webhook's signing secret as stored: the one given, else the stored one of a webhook
   * (a built-in's was never shown, so a destination becoming a webhook gets a new one), else
   * a new one, which is `shown` once. With CDP_SECRETS_KEY it is sealed (bound to the
   * destination) and `secret` is ''; a kept secret stays as it was sealed, one kept in clear
   * is sealed now. A built-in is not signed: ''.
   */
  const signing = (
    input: DestinationInput,
    ws: string,
    id: string,
    before: DestinationDefinition | undefined,
  ): { http: Pick<DestinationDefinition['http'], 'secret' | 'sealedSecret'>; shown?: string } => {
    if (input.type !== 'http') return { http: { secret: '' } };
    let plain: string;
    let shown: string | undefined;
    if (input.http.secret === undefined && before?.type === 'http') {
      if (before.http.sealedSecret) return { http: { secret: '', sealedSecret: before.http.sealedSecret } };
      plain = before.http.secret;
    } else {
      plain = input.http.secret ?? generateDestinationSecret();
      if (input.http.secret === undefined) shown = plain;
    }
    if (!ring.current) return { http: { secret: plain }, shown };
    return {
      http: { secret: '', sealedSecret: seal(ring, plain, destinationSecretAad(ws, id)) },
      shown,
    };
  };

  const settings = (input: DestinationInput) => ({
    name: input.name,
    type: input.type,
    source: input.source,
    ...(input.mapping ? { mapping: input.mapping } : {}),
    // the signing secret is the caller's to add (signing()): it needs the destination id
    http: { ...input.http, secret: '' },
    ...(input.type === 'hubspot' ? { hubspot: { idProperty: input.hubspot?.idProperty ?? 'email' } } : {}),
    ...(input.type === 'salesforce' && input.salesforce
      ? {
          salesforce: {
            externalIdField: input.salesforce.externalIdField,
            object: input.salesforce.object ?? 'Contact',
            apiVersion: input.salesforce.apiVersion ?? 'v60.0',
          },
        }
      : {}),
    ...(input.type === 'audience' && input.audience
      ? {
          audience: {
            audienceId: input.audience.audienceId,
            identifier: input.audience.identifier ?? 'email',
            apiVersion: input.audience.apiVersion ?? 'v21.0',
          },
        }
      : {}),
    ...(input.rateLimit ? { rateLimit: input.rateLimit } : {}),
    ...(input.retry ? { retry: input.retry } : {}),
  });

  app.post('/', async (c) => {
    const ws = c.get('workspaceId');
    const input = validate(await readJson(c.req.raw));
    if ((await deps.defs.list('destinations', ws)).length >= MAX_DESTINATIONS_PER_WORKSPACE)
      throw new QueryError(409, `at most ${MAX_DESTINATIONS_PER_WORKSPACE} destinations per workspace`);
    const at = deps.now().toISOString();
    const id = `dst_${randomBytes(9).toString('base64url')}`;
    const sig = signing(input, ws, id, undefined);
    const s = settings(input);
    const def: DestinationDefinition = {
      id,
      workspaceId: ws,
      ...s,
      http: { ...s.http, ...sig.http },
      ...credentials(input, ws, id, undefined),
      status: input.status ?? 'active',
      version: 1,
      createdAt: at,
      updatedAt: at,
    };
    await save(c, null, def);
    return c.json(view(def, sig.shown), 201);
  });

  app.get('/', async (c) =>
    c.json({
      destinations: (await deps.defs.list('destinations', c.get('workspaceId'))).map((d) => view(d)),
    }),
  );
  app.get('/:id', async (c) => c.json(view(await load(c.get('workspaceId'), c.req.param('id')))));

  app.put('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    const input = validate(await readJson(c.req.raw));
    const sig = signing(input, ws, before.id, before);
    const s = settings(input);
    const after: DestinationDefinition = {
      id: before.id,
      workspaceId: before.workspaceId,
      ...s,
      http: { ...s.http, ...sig.http },
      ...credentials(input, ws, before.id, before),
      status: input.status ?? before.status,
      version: before.version + 1,
      createdAt: before.createdAt,
      updatedAt: deps.now().toISOString(),
    };
    await save(c, before, after);
    return c.json(view(after, sig.shown));
  });

  const setStatus = (status: 'active' | 'paused') => async (c: Context<QueryEnv>) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id') ?? '');
    if (before.status === status) return c.json(view(before));
    const after: DestinationDefinition = {
      ...before,
      status,
      version: before.version + 1,
      updatedAt: deps.now().toISOString(),
    };
    await save(c, before, after);
    return c.json(view(after));
  };
  app.post('/:id/pause', setStatus('paused'));
  app.post('/:id/resume', setStatus('active'));

  app.delete('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    await save(c, before, null);
    return c.body(null, 204);
  });

  /**
   * Deliveries from the ledger: items sent, retried (attempts that failed and were parked,
   * and items parked while the circuit was open), dead-lettered; delivery latency (from the
   * source message reaching Kafka to the receiver's answer) over the items sent.
   */
  app.get('/:id/stats', async (c) => {
    const ws = c.get('workspaceId');
    const def = await load(ws, c.req.param('id'));
    const rs = await deps.clickhouse.query({
      query: `SELECT
          uniqExactIf(send_key, outcome = 'sent') AS sent,
          countIf(outcome = 'retried' AND reason != 'circuit_open') AS retried,
          countIf(outcome = 'retried' AND reason = 'circuit_open') AS circuit_open,
          uniqExactIf(send_key, outcome = 'dead_lettered') AS dead_lettered,
          quantileExactIf(0.5)(latency_ms, outcome = 'sent') AS p50,
          quantileExactIf(0.99)(latency_ms, outcome = 'sent') AS p99
        FROM activation_ledger
        WHERE workspace_id = {ws:String} AND campaign_id = {id:String} AND channel = 'destination'`,
      query_params: { ws, id: def.id },
      format: 'JSONEachRow',
    });
    const [row] = await rs.json<Record<string, string | number>>();
    // how far its own consumer group is behind (its lag is its own: other destinations' do not add to it)
    let lag: number | null = null;
    if (deps.kafkaAdmin?.groupLag) {
      const t = topics(deps.topicPrefix ?? '');
      const sources = def.source.kind === 'events' ? [t.events, t.eventsOverflow] : [t.segmentChanges];
      try {
        const parts = await withTimeout(
          deps.kafkaAdmin.groupLag(destinationGroup(deps.topicPrefix ?? '', def.id), sources),
          3000,
          'reading consumer offsets',
        );
        lag = parts.reduce((a, p) => a + p.lag, 0);
      } catch {
        lag = null;
      }
    }
    const n = (k: string) => Number(row?.[k] ?? 0);
    return c.json({
      destinationId: def.id,
      sent: n('sent'),
      retried: n('retried'),
      circuitOpen: n('circuit_open'),
      deadLettered: n('dead_lettered'),
      latencyMs: n('sent') > 0 ? { p50: n('p50'), p99: n('p99') } : { p50: null, p99: null },
      lag,
    });
  });

  /**
   * `{event}` (for an events source) or `{change}` (segment changes) → whether it passes the
   * filter and the body that would be sent; a mapping error is a 422 naming the field.
   */
  app.post('/:id/dry-run', async (c) => {
    const def = await load(c.get('workspaceId'), c.req.param('id'));
    const body = await readJson(c.req.raw);
    const field = def.source.kind === 'events' ? 'event' : 'change';
    const sample = (body as Record<string, unknown> | null)?.[field];
    if (sample === null || typeof sample !== 'object' || Array.isArray(sample))
      throw new QueryError(400, `${field}: an object is required`);
    const source = sample as Record<string, unknown>;
    let matched: boolean;
    if (def.source.kind === 'events') {
      try {
        matched = passesFilter(def.source.filter, source);
      } catch (err) {
        return c.json({ matched: false, error: `source.filter: ${(err as Error).message}` }, 422);
      }
    } else {
      const segmentId = source.segmentId;
      matched = !def.source.segmentIds || def.source.segmentIds.includes(String(segmentId));
    }
    let data: unknown;
    try {
      data = await applyMapping(def.mapping, source);
    } catch (err) {
      if (err instanceof DestinationError) return c.json({ matched, error: err.message }, 422);
      throw err;
    }
    const item: DeliveryItem = {
      id: String(source.messageId ?? 'sample'),
      type: def.source.kind === 'events' ? 'event' : 'segment_change',
      timestamp: String(source.timestamp ?? source.occurredAt ?? deps.now().toISOString()),
      data,
    };
    if (def.type !== 'http') {
      // a built-in: the request its provider would get for this one item
      const req = builtinRequest(def, data);
      if ('error' in req) return c.json({ matched, error: req.error }, 422);
      return c.json({ matched, payload: req });
    }
    const batched = (def.http.batch?.maxEvents ?? 1) > 1;
    return c.json({ matched, payload: JSON.parse(deliveryBody([item], batched)) as unknown });
  });
  return app;
}
