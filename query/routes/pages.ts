// Landing pages: create, edit (each edit a new version, kept), publish / unpublish /
// archive, delete, and their reporting. Definitions and every version live in the
// definition store, which the ingest host reloads when its revision moves (it serves
// published pages at /p/{workspace}/{slug}); every change is audited (entity_type `page`).
//
// A slug is unique in its workspace: a claim in a Redis hash (`${ws}/${slug}` →
// `<page id> <epoch ms>`), taken with HSETNX before the page is stored, so two saves racing
// for one slug cannot both win. A claim left by a save that failed before storing its page
// (its page does not exist a while after the claim) is taken over.
import { randomBytes } from 'node:crypto';
import { type Context, Hono } from 'hono';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { DefinitionStore } from '../../runtime/definitions.ts';
import type { Logger } from '../../runtime/log.ts';
import type { Redis } from '../../runtime/redis.ts';
import { DefinitionInputError } from '../../schemas/definition-input.ts';
import {
  checkPageInput,
  MAX_PAGE_BYTES,
  PAGE_TRANSITIONS,
  type PageDefinition,
  type PageInput,
  pageVariants,
} from '../../schemas/page.ts';
import { globalKeys } from '../../schemas/redis-keys.ts';
import type { AnalyticsLimits } from '../analytics/run-query.ts';
import { InputError } from '../analytics/sql-params.ts';
import { actorOf, recordAudit } from '../audit.ts';
import { type QueryEnv, readJson } from '../context.ts';
import { parseRange } from '../keyset-page.ts';
import { formStats, pageStats } from '../landing-stats.ts';
import { QueryError } from '../query-error.ts';

export interface PageRouteDeps {
  clickhouse: ClickHouseClient;
  defs: DefinitionStore;
  redis: Redis;
  redisPrefix: string;
  analytics: AnalyticsLimits;
  log: Logger;
  now: () => Date;
}

// compare-and-set of a slug claim; delete of a page's own claim (`<id> …`)
const TAKE_OVER = `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1 end return 0`;
const RELEASE = `local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, #ARGV[2] + 1) == ARGV[2] .. ' ' then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`;
/** A claim whose page does not exist this long after it was taken was left by a failed save. */
const STALE_CLAIM_MS = 60_000;

const ID = /^[A-Za-z0-9_-]{1,64}$/;

export function pageRoutes(deps: PageRouteDeps) {
  const app = new Hono<QueryEnv>();
  const slugs = globalKeys(deps.redisPrefix).pageSlugs;

  const validate = async (c: Context<QueryEnv>): Promise<PageInput> => {
    const body = await readJson(c.req.raw);
    // the whole definition is bounded (each text is too): a page is served from memory
    if (JSON.stringify(body).length > MAX_PAGE_BYTES)
      throw new QueryError(413, `body: a page definition is at most ${MAX_PAGE_BYTES / 1024} KB`);
    const ws = c.get('workspaceId');
    try {
      return await checkPageInput(body, async (id) => (await deps.defs.get('forms', ws, id)) !== undefined);
    } catch (err) {
      if (err instanceof DefinitionInputError) throw new QueryError(400, err.message);
      throw err;
    }
  };

  const load = async (ws: string, id: string) => {
    const def = ID.test(id) ? await deps.defs.get('pages', ws, id) : undefined;
    if (!def) throw new QueryError(404, `no page ${id.slice(0, 64)}`);
    return def;
  };

  /** Takes the slug for the page, or a 409 naming the page that has it. */
  const claim = async (ws: string, slug: string, id: string) => {
    const field = `${ws}/${slug}`;
    const mine = `${id} ${deps.now().getTime()}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await deps.redis.hsetnx(slugs, field, mine)) return;
      const claimed = await deps.redis.hget(slugs, field);
      if (claimed === null) continue; // released meanwhile: try again
      const [owner = '', at = '0'] = claimed.split(' ');
      if (owner === id) return;
      if (await deps.defs.get('pages', ws, owner))
        throw new QueryError(409, `slug: "${slug}" is already used by page ${owner}`);
      // another save is storing its page right now
      if (deps.now().getTime() - Number(at) < STALE_CLAIM_MS) break;
      // a save that failed after its claim: its page never existed
      if (Number(await deps.redis.eval(TAKE_OVER, 1, slugs, field, claimed, mine)) === 1) return;
    }
    throw new QueryError(409, `slug: "${slug}" is being taken by another save; try again`);
  };
  const release = (ws: string, slug: string, id: string) =>
    deps.redis.eval(RELEASE, 1, slugs, `${ws}/${slug}`, id);

  const audit = (c: Context<QueryEnv>, id: string, before: unknown, after: unknown) =>
    recordAudit(
      deps.clickhouse,
      {
        workspaceId: c.get('workspaceId'),
        actor: actorOf(c.get('apiKey')),
        action: before === null ? 'create' : after === null ? 'delete' : 'update',
        entityType: 'page',
        entityId: id,
        before,
        after,
      },
      deps.now(),
    );

  /** Claims the slug, stores the page (and its version, when new) in one step, frees an old slug, audits. */
  const save = async (c: Context<QueryEnv>, before: PageDefinition | null, after: PageDefinition) => {
    await claim(after.workspaceId, after.slug, after.id);
    const entries: Array<{ kind: 'pages' | 'pageVersions'; def: PageDefinition; field?: string }> = [
      { kind: 'pages', def: after },
    ];
    if (!before || before.version !== after.version)
      entries.push({ kind: 'pageVersions', def: after, field: `${after.id}@${after.version}` });
    await deps.defs.putMany(entries);
    if (before && before.slug !== after.slug) await release(before.workspaceId, before.slug, before.id);
    await audit(c, after.id, before, after);
    return after;
  };

  app.post('/', async (c) => {
    const ws = c.get('workspaceId');
    const input = await validate(c);
    const at = deps.now().toISOString();
    const def: PageDefinition = {
      ...input,
      id: `pg_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`,
      workspaceId: ws,
      version: 1,
      status: input.status ?? 'draft',
      createdAt: at,
      updatedAt: at,
    };
    return c.json(await save(c, null, def), 201);
  });

  app.get('/', async (c) => {
    const status = c.req.query('status');
    if (status !== undefined && !['draft', 'published', 'archived'].includes(status))
      throw new QueryError(400, 'status: draft, published or archived');
    const pages = await deps.defs.list('pages', c.get('workspaceId'));
    return c.json({ pages: status ? pages.filter((p) => p.status === status) : pages });
  });
  app.get('/:id', async (c) => c.json(await load(c.get('workspaceId'), c.req.param('id'))));
  app.get('/:id/versions/:version', async (c) => {
    const ws = c.get('workspaceId');
    const id = c.req.param('id');
    const v = c.req.param('version');
    const def =
      ID.test(id) && /^\d{1,9}$/.test(v) ? await deps.defs.get('pageVersions', ws, `${id}@${v}`) : undefined;
    if (!def) throw new QueryError(404, `no version ${v.slice(0, 12)} of page ${id.slice(0, 64)}`);
    return c.json(def);
  });

  app.put('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    const input = await validate(c);
    const after: PageDefinition = {
      ...input,
      id: before.id,
      workspaceId: ws,
      status: input.status ?? before.status,
      version: before.version + 1,
      createdAt: before.createdAt,
      updatedAt: deps.now().toISOString(),
    };
    return c.json(await save(c, before, after));
  });

  for (const action of Object.keys(PAGE_TRANSITIONS) as Array<keyof typeof PAGE_TRANSITIONS>) {
    app.post(`/:id/${action}`, async (c) => {
      const before = await load(c.get('workspaceId'), c.req.param('id'));
      const to = PAGE_TRANSITIONS[action];
      if (before.status === to) return c.json(before);
      // the status is not part of the content: no new version
      const after: PageDefinition = { ...before, status: to, updatedAt: deps.now().toISOString() };
      return c.json(await save(c, before, after));
    });
  }

  // the versions stay (views and submissions name the version shown); the slug is freed
  app.delete('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    await deps.defs.remove('pages', ws, before.id);
    await release(ws, before.slug, before.id);
    await audit(c, before.id, before, null);
    return c.body(null, 204);
  });

  app.get('/:id/stats', async (c) => {
    const ws = c.get('workspaceId');
    const page = await load(ws, c.req.param('id'));
    const range = statsRange(c, deps);
    const variants = pageVariants(page).map(({ id, weight }) => ({ id, weight }));
    return c.json(await pageStats(statsContext(c, deps), page.id, variants, range));
  });

  return app;
}

/** `GET /v1/forms/{id}/stats`: mounted beside the form routes. */
export function formStatsRoutes(deps: PageRouteDeps) {
  const app = new Hono<QueryEnv>();
  app.get('/:id/stats', async (c) => {
    const ws = c.get('workspaceId');
    const id = c.req.param('id');
    const form = ID.test(id) ? await deps.defs.get('forms', ws, id) : undefined;
    if (!form) throw new QueryError(404, `no form ${id.slice(0, 64)}`);
    return c.json(await formStats(statsContext(c, deps), form.id, statsRange(c, deps)));
  });
  return app;
}

function statsContext(c: Context<QueryEnv>, deps: PageRouteDeps) {
  return {
    clickhouse: deps.clickhouse,
    limits: deps.analytics,
    log: deps.log,
    workspaceId: c.get('workspaceId'),
  };
}

/** `from` / `to` (ISO 8601), default the last 30 days. */
function statsRange(c: Context<QueryEnv>, deps: PageRouteDeps) {
  try {
    return parseRange(c.req.query('from'), c.req.query('to'), deps.analytics.maxRangeDays, deps.now());
  } catch (err) {
    if (err instanceof InputError) throw new QueryError(400, err.message);
    throw err;
  }
}
