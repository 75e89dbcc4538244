import { randomBytes } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { Hono } from 'hono';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { DefinitionStore } from '../../runtime/definitions.ts';
import type { Redis } from '../../runtime/redis.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { compileRule, RuleError } from '../../schemas/rules.ts';
import {
  type BackfillStatus,
  type SegmentDefinition,
  type SegmentInput,
  segmentInputCheck,
} from '../../schemas/segment.ts';
import { type QueryEnv, readJson } from '../context.ts';
import { previewSegment } from '../preview-segment.ts';
import { QueryError } from '../query-error.ts';
import { saveDefinition } from '../save-definition.ts';
import { checkBody, validate } from '../validate.ts';

const MAX_PREVIEW_SAMPLE = 5000;

/** POST /v1/segments/preview: a rule (checked as on create) and how many profiles to sample. */
export const SegmentPreviewInput = Type.Object(
  {
    rule: Type.Unknown({ errorMessage: 'required', description: 'a JSON Logic rule, as in SegmentInput' }),
    // null: the default, as before
    sampleSize: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: MAX_PREVIEW_SAMPLE }), Type.Null()], {
        default: 1000,
        errorMessage: `an integer from 1 to ${MAX_PREVIEW_SAMPLE}`,
      }),
    ),
  },
  { errorMessage: 'an object {rule, sampleSize?}' },
);

export interface SegmentRouteDeps {
  redis: Redis;
  clickhouse: ClickHouseClient;
  defs: DefinitionStore;
  redisPrefix: string;
  now: () => Date;
}

export function segmentRoutes(deps: SegmentRouteDeps) {
  const app = new Hono<QueryEnv>();

  /** Validates input and rule; refuses unknown referenced segments and reference cycles. */
  const checkSegment = async (ws: string, raw: unknown, selfId?: string): Promise<SegmentInput> => {
    const body = checkBody(segmentInputCheck, raw);
    let compiled: ReturnType<typeof compileRule>;
    try {
      compiled = compileRule(body.rule);
    } catch (err) {
      if (err instanceof RuleError) throw new QueryError(400, err.message);
      throw err;
    }
    const refs = compiled.segments;
    // computed.<name> and scores.<name> must name existing definitions
    for (const [kind, names, label] of [
      ['computedTraits', compiled.computed, 'computed'],
      ['scores', compiled.scores, 'scores'],
    ] as const) {
      const wanted = [...names].filter((n) => n !== '*');
      if (wanted.length === 0) continue;
      const known = new Set((await deps.defs.list(kind, ws)).map((d) => d.name));
      for (const n of wanted)
        if (!known.has(n))
          throw new QueryError(
            400,
            `rule: ${label}.${n} names no ${kind === 'scores' ? 'score' : 'computed trait'}`,
          );
    }
    const all = new Map((await deps.defs.list('segments', ws)).map((s) => [s.id, s]));
    for (const r of refs) {
      if (r === selfId) throw new QueryError(400, `rule: in_segment refers to the segment itself`);
      if (!all.has(r)) throw new QueryError(400, `rule: in_segment refers to unknown segment ${r}`);
    }
    if (selfId) {
      // would the edited rule close a cycle? follow references from each referenced segment
      const seen = new Set<string>();
      const stack = [...refs];
      while (stack.length > 0) {
        const id = stack.pop()!;
        if (id === selfId) throw new QueryError(400, 'rule: in_segment references form a cycle');
        if (seen.has(id)) continue;
        seen.add(id);
        const d = all.get(id);
        if (d) for (const r of compileRule(d.rule).segments) stack.push(r);
      }
    }
    return body;
  };

  // Nothing is saved: the rule is validated as on create and evaluated over a sample.
  app.post('/preview', validate(SegmentPreviewInput), async (c) => {
    const ws = c.get('workspaceId');
    const body = c.req.valid('json');
    const sampleSize = body.sampleSize ?? 1000;
    const { rule } = await checkSegment(ws, { name: 'preview', rule: body.rule });
    const preview = await previewSegment({
      redis: deps.redis,
      clickhouse: deps.clickhouse,
      prefix: deps.redisPrefix,
      workspaceId: ws,
      rule: compileRule(rule),
      nowMs: deps.now().getTime(),
      sampleSize,
      defs: deps.defs,
    });
    return c.json(preview);
  });

  app.post('/', async (c) => {
    const ws = c.get('workspaceId');
    const input = await checkSegment(ws, await readJson(c.req.raw));
    const at = deps.now().toISOString();
    const def: SegmentDefinition = {
      id: `seg_${randomBytes(9).toString('base64url')}`,
      workspaceId: ws,
      name: input.name,
      ...(input.description ? { description: input.description } : {}),
      rule: input.rule,
      version: 1,
      status: 'active',
      createdAt: at,
      updatedAt: at,
    };
    await saveDefinition(deps, c, 'segments', null, def);
    return c.json(def, 201);
  });

  app.get('/', async (c) => c.json({ segments: await deps.defs.list('segments', c.get('workspaceId')) }));

  const load = async (ws: string, id: string) => {
    const def = await deps.defs.get('segments', ws, id);
    if (!def) throw new QueryError(404, `no segment ${id}`);
    return def;
  };

  app.get('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const def = await load(ws, c.req.param('id'));
    const [raw, [entered, exited]] = await Promise.all([
      deps.redis.hget(globalKeys(deps.redisPrefix).backfills, `${ws}/${def.id}`),
      // changes activation found no active campaign for (activation/no-campaign.ts)
      deps.redis.hmget(
        workspaceKeys(deps.redisPrefix, ws).noCampaign,
        `${def.id}:entered`,
        `${def.id}:exited`,
      ),
    ]);
    const b = raw ? (JSON.parse(raw) as BackfillStatus) : undefined;
    // a version whose backfill has not reported yet is still backfilling
    const backfill =
      b && b.version === def.version
        ? { status: b.status, scanned: b.scanned, startedAt: b.startedAt, finishedAt: b.finishedAt }
        : { status: 'backfilling', scanned: 0, startedAt: null, finishedAt: null };
    const noCampaign = { entered: Number(entered ?? 0), exited: Number(exited ?? 0) };
    return c.json({ ...def, backfill, noCampaign });
  });

  app.put('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    const input = await checkSegment(ws, await readJson(c.req.raw), before.id);
    const after: SegmentDefinition = {
      ...before,
      name: input.name,
      rule: input.rule,
      version: before.version + 1,
      updatedAt: deps.now().toISOString(),
    };
    if (input.description !== undefined) after.description = input.description;
    await saveDefinition(deps, c, 'segments', before, after);
    return c.json(after);
  });

  app.delete('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    const dependents = (await deps.defs.list('segments', ws)).filter((s) =>
      compileRule(s.rule).segments.has(before.id),
    );
    if (dependents.length > 0)
      throw new QueryError(
        409,
        `segment is used by ${dependents.map((d) => d.id).join(', ')}: change those first`,
      );
    const campaigns = (await deps.defs.list('campaigns', ws)).filter((x) => x.segmentId === before.id);
    if (campaigns.length > 0)
      throw new QueryError(
        409,
        `segment triggers campaigns ${campaigns.map((d) => d.id).join(', ')}: delete those first`,
      );
    // Deleting a segment emits no exits: it stops existing, members are dropped silently.
    await saveDefinition(deps, c, 'segments', before, null);
    await deps.redis.del(workspaceKeys(deps.redisPrefix, ws).segmentMembers(before.id));
    return c.body(null, 204);
  });

  app.get('/:id/members', async (c) => {
    const ws = c.get('workspaceId');
    const def = await load(ws, c.req.param('id'));
    const limit = Number(c.req.query('limit') ?? '100');
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw new QueryError(400, 'limit: an integer from 1 to 1000');
    const cursorRaw = c.req.query('cursor') ?? '0';
    const cursor = Number(cursorRaw);
    if (!Number.isInteger(cursor) || cursor < 0) throw new QueryError(400, 'cursor: invalid');
    const key = workspaceKeys(deps.redisPrefix, ws).segmentMembers(def.id);
    const [members, total] = await Promise.all([
      deps.redis.zrange(key, cursor, cursor + limit - 1),
      deps.redis.zcard(key),
    ]);
    const next = cursor + members.length < total ? String(cursor + members.length) : null;
    return c.json({ segmentId: def.id, count: total, members, nextCursor: next });
  });

  return app;
}
