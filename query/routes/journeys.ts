// Journeys: create (a draft), edit (each edit is a new version; people in flight stay on
// theirs), activate / pause / resume / archive, and per-node counts. Definitions and every
// version live in the definition store (the journey runner reloads them when the revision
// moves); every change is audited.
import { randomBytes } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { type Context, Hono } from 'hono';
import type { MigrationRecord } from '../../activation/journeys/migrations.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { DefinitionStore } from '../../runtime/definitions.ts';
import type { Redis } from '../../runtime/redis.ts';
import type { Keyring } from '../../runtime/secrets-key.ts';
import { generateWebhookSecret, TEMPLATE_FIELDS } from '../../schemas/campaign.ts';
import { DefinitionInputError } from '../../schemas/definition-input.ts';
import {
  checkJourneyInput,
  type JourneyDefinition,
  type JourneyInput,
  TRANSITIONS,
} from '../../schemas/journey.ts';
import { templateError } from '../../schemas/liquid-template.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { actorOf, recordAudit } from '../audit.ts';
import { type QueryEnv, readJson } from '../context.ts';
import { armFigures, holdoutLifts } from '../journey-lift.ts';
import { QueryError } from '../query-error.ts';
import { checkBody } from '../validate.ts';
import { publicWebhook, webhookFingerprintKey } from './campaigns.ts';

/** POST /v1/journeys/{id}/migrate: which older version's people move, and where their nodes go. */
export const MigrateInput = Type.Object(
  {
    from: Type.Integer({ minimum: 1, errorMessage: 'a version before the current one' }),
    nodes: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        maxProperties: 100,
        errorMessage: 'an object {<node of the old version>: <node of the current one>}, at most 100',
      }),
    ),
  },
  { additionalProperties: false },
);
const MIGRATE_HINT = '{from: <version>, nodes?: {<old node>: <new node>}}';

export function journeyRoutes(deps: {
  clickhouse: ClickHouseClient;
  defs: DefinitionStore;
  redis: Redis;
  redisPrefix: string;
  now: () => Date;
  /** CDP_SECRETS_KEY: answers carry a keyed fingerprint of a webhook's secret; none: no fingerprint. */
  secrets?: Keyring;
}) {
  const app = new Hono<QueryEnv>();
  const fpKey = webhookFingerprintKey(deps.secrets);
  /**
   * What the API answers for a journey: no webhook node (or webhook send) carries its signing
   * secret, only `secretSet` and `secretFingerprint`; `shown`: the secrets generated for this
   * request, by node id (in that one answer only).
   */
  const view = (def: JourneyDefinition, shown?: Map<string, string>) => ({
    ...def,
    nodes: def.nodes.map((n) =>
      (n.type === 'send' || n.type === 'webhook') && n.webhook
        ? { ...n, webhook: publicWebhook(n.webhook, fpKey, shown?.get(n.id)) }
        : n,
    ),
  });

  /** Shape and graph (schemas/journey.ts), then what needs the workspace: segments, templates, URLs. */
  const validate = async (
    ws: string,
    body: unknown,
    before?: JourneyDefinition,
    shown?: Map<string, string>,
  ): Promise<JourneyInput> => {
    let input: JourneyInput;
    try {
      input = checkJourneyInput(body);
    } catch (err) {
      if (err instanceof DefinitionInputError) throw new QueryError(400, err.message);
      throw err;
    }
    const segments: Array<[string, string]> = [];
    if ('segment' in input.entry) segments.push(['entry.segment', input.entry.segment]);
    if ('broadcast' in input.entry) segments.push(['entry.broadcast.segment', input.entry.broadcast.segment]);
    if ('schedule' in input.entry) segments.push(['entry.schedule.segment', input.entry.schedule.segment]);
    if (input.goal && 'segment' in input.goal) segments.push(['goal.segment', input.goal.segment]);
    if (input.exitOnSegmentExit) segments.push(['exitOnSegmentExit', input.exitOnSegmentExit]);
    input.nodes.forEach((n, i) => {
      if (n.type === 'wait' && typeof n.for !== 'string' && 'until' in n.for && 'segment' in n.for.until)
        segments.push([`nodes[${i}].for.until.segment`, n.for.until.segment]);
      if (n.type === 'branch')
        for (const s of JSON.stringify(n.rule).matchAll(/"in_segment":\["([^"]+)"\]/g))
          segments.push([`nodes[${i}].rule`, s[1]!]);
    });
    for (const [field, id] of segments)
      if (!(await deps.defs.get('segments', ws, id))) throw new QueryError(400, `${field}: no segment ${id}`);
    input.nodes.forEach((n, i) => {
      if (n.type !== 'send' && n.type !== 'webhook') return;
      const channel = n.type === 'send' ? n.channel : 'webhook';
      const at = `nodes[${i}].${channel}`;
      if (n.type === 'webhook' || n.channel === 'webhook') {
        let url: URL;
        try {
          url = new URL(n.webhook!.url);
        } catch {
          throw new QueryError(400, `${at}.url: not a valid URL`);
        }
        if (url.protocol !== 'https:' && url.protocol !== 'http:')
          throw new QueryError(400, `${at}.url: must be http or https`);
        if (url.username || url.password)
          throw new QueryError(400, `${at}.url: credentials in the URL are not allowed`);
        // a secret per send step, kept across versions unless given
        const kept = before?.nodes.find(
          (b) => b.id === n.id && (b.type === 'send' || b.type === 'webhook') && b.webhook?.secret,
        );
        let secret =
          n.webhook!.secret ??
          (kept?.type === 'send' || kept?.type === 'webhook' ? kept.webhook?.secret : undefined);
        if (secret === undefined) {
          secret = generateWebhookSecret();
          shown?.set(n.id, secret);
        }
        n.webhook = { url: n.webhook!.url, secret };
      } else if (n.type === 'send') {
        const settings = n[n.channel] as Record<string, unknown>;
        for (const field of TEMPLATE_FIELDS[n.channel]) {
          const source = settings[field];
          if (typeof source !== 'string') continue;
          const why = templateError(source);
          if (why) throw new QueryError(400, `${at}.${field}: invalid Liquid template: ${why}`);
        }
      }
    });
    return input;
  };

  const load = async (ws: string, id: string) => {
    const def = await deps.defs.get('journeys', ws, id);
    if (!def) throw new QueryError(404, `no journey ${id}`);
    return def;
  };

  /** Stores the journey (and the version, when it is a new one) in one step, then audits. */
  const save = async (
    c: Context<QueryEnv>,
    before: JourneyDefinition | null,
    after: JourneyDefinition,
    action: 'create' | 'update',
  ) => {
    const entries: Array<{ kind: 'journeys' | 'journeyVersions'; def: JourneyDefinition; field?: string }> = [
      { kind: 'journeys', def: after },
    ];
    if (!before || before.version !== after.version)
      entries.push({ kind: 'journeyVersions', def: after, field: `${after.id}@${after.version}` });
    await deps.defs.putMany(entries);
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: after.workspaceId,
        actor: actorOf(c.get('apiKey')),
        action,
        entityType: 'journey',
        entityId: after.id,
        before,
        after,
      },
      deps.now(),
    );
    return after;
  };

  app.post('/', async (c) => {
    const ws = c.get('workspaceId');
    const shown = new Map<string, string>();
    const input = await validate(ws, await readJson(c.req.raw), undefined, shown);
    const at = deps.now().toISOString();
    const def: JourneyDefinition = {
      id: `jrn_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`,
      workspaceId: ws,
      ...input,
      version: 1,
      status: 'draft',
      createdAt: at,
      updatedAt: at,
    };
    return c.json(view(await save(c, null, def, 'create'), shown), 201);
  });

  app.get('/', async (c) =>
    c.json({ journeys: (await deps.defs.list('journeys', c.get('workspaceId'))).map((d) => view(d)) }),
  );
  app.get('/:id', async (c) => c.json(view(await load(c.get('workspaceId'), c.req.param('id')))));

  // an edit is a new version; people in flight continue on the version they entered
  app.put('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    if (before.status === 'archived') throw new QueryError(409, 'journey is archived');
    const shown = new Map<string, string>();
    const input = await validate(ws, await readJson(c.req.raw), before, shown);
    const after: JourneyDefinition = {
      ...input,
      id: before.id,
      workspaceId: ws,
      status: before.status,
      version: before.version + 1,
      createdAt: before.createdAt,
      updatedAt: deps.now().toISOString(),
    };
    return c.json(view(await save(c, before, after, 'update'), shown));
  });

  for (const action of Object.keys(TRANSITIONS) as Array<keyof typeof TRANSITIONS>) {
    app.post(`/:id/${action}`, async (c) => {
      const ws = c.get('workspaceId');
      const before = await load(ws, c.req.param('id'));
      const { from, to } = TRANSITIONS[action];
      if (before.status === to) return c.json(view(before));
      if (!from.includes(before.status))
        throw new QueryError(409, `cannot ${action} a journey that is ${before.status}`);
      const after: JourneyDefinition = { ...before, status: to, updatedAt: deps.now().toISOString() };
      return c.json(view(await save(c, before, after, 'update')));
    });
  }

  // people in flight on an older version moved to the current one (the journey runner works
  // it off: activation/journeys/migrations.ts); one migration per journey at a time
  app.post('/:id/migrate', async (c) => {
    const ws = c.get('workspaceId');
    const def = await load(ws, c.req.param('id'));
    if (def.status === 'archived') throw new QueryError(409, 'journey is archived');
    const body = checkBody(MigrateInput, await readJson(c.req.raw), { hint: MIGRATE_HINT });
    const from = body.from;
    // the schema checks the shape; what needs the journey is checked here
    if (from >= def.version)
      throw new QueryError(400, `from: a version before the current one (${def.version})`);
    const old = await deps.defs.get('journeyVersions', ws, `${def.id}@${from}`);
    if (!old) throw new QueryError(400, `from: no version ${from}`);
    const nodes: Record<string, string> = {};
    for (const [k, v] of Object.entries(body.nodes ?? {})) {
      if (!old.nodes.some((n) => n.id === k))
        throw new QueryError(400, `nodes.${k}: no node "${k}" in version ${from}`);
      if (!def.nodes.some((n) => n.id === v))
        throw new QueryError(400, `nodes.${k}: no node ${JSON.stringify(v)} in version ${def.version}`);
      nodes[k] = v;
    }
    const field = `${ws}/${def.id}`;
    const key = globalKeys(deps.redisPrefix).journeysMigrations;
    const prev = await deps.redis.hget(key, field);
    if (prev && (JSON.parse(prev) as MigrationRecord).status === 'pending')
      throw new QueryError(
        409,
        `a migration from version ${(JSON.parse(prev) as MigrationRecord).from} is under way`,
      );
    const record: MigrationRecord = {
      from,
      to: def.version,
      nodes,
      status: 'pending',
      cursor: '0',
      moved: 0,
      skipped: 0,
      requestedAt: deps.now().toISOString(),
    };
    await deps.redis.hset(key, field, JSON.stringify(record));
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor: actorOf(c.get('apiKey')),
        action: 'update',
        entityType: 'journey',
        entityId: def.id,
        before: null,
        after: { migrate: { from, to: def.version, nodes } },
      },
      deps.now(),
    );
    return c.json(record, 202);
  });

  app.get('/:id/migration', async (c) => {
    const ws = c.get('workspaceId');
    const def = await load(ws, c.req.param('id'));
    const raw = await deps.redis.hget(globalKeys(deps.redisPrefix).journeysMigrations, `${ws}/${def.id}`);
    if (!raw) throw new QueryError(404, `no migration of journey ${def.id}`);
    return c.json(JSON.parse(raw) as MigrationRecord);
  });

  app.get('/:id/stats', async (c) => {
    const ws = c.get('workspaceId');
    const def = await load(ws, c.req.param('id'));
    const raw = await deps.redis.hgetall(workspaceKeys(deps.redisPrefix, ws).journeyStats(def.id));
    const versions = await deps.defs.list('journeyVersions', ws);
    const ids = new Set<string>();
    for (const v of versions) if (v.id === def.id) for (const n of v.nodes) ids.add(n.id);
    const nodes: Record<string, { now: number; passed: number; converted: number; exited: number }> = {};
    for (const id of ids) nodes[id] = { now: 0, passed: 0, converted: 0, exited: 0 };
    const ended: Record<string, number> = {};
    for (const [field, value] of Object.entries(raw)) {
      const n = Number(value);
      const [kind, id] = [field.slice(0, field.indexOf(':')), field.slice(field.indexOf(':') + 1)];
      if (kind === 'ended') ended[id] = n;
      else if (kind === 'now' || kind === 'passed' || kind === 'converted' || kind === 'exited') {
        nodes[id] ??= { now: 0, passed: 0, converted: 0, exited: 0 };
        nodes[id][kind] = n;
      }
    }
    const branches = armFigures(raw);
    return c.json({
      journeyId: def.id,
      version: def.version,
      status: def.status,
      entered: Number(raw.entered ?? 0),
      refused: Number(raw.refused ?? 0),
      convertedAfterExit: Number(raw.convertedAfterExit ?? 0),
      ended,
      nodes,
      branches,
      holdouts: holdoutLifts(branches),
    });
  });
  return app;
}
