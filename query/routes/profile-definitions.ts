// CRUD of the definitions that add values to profiles: computed traits (/v1/computed-traits)
// and lead scores (/v1/scores). Versioned and audited like segments; the processors
// reload them when the definitions revision moves.
import { randomBytes } from 'node:crypto';
import { Hono } from 'hono';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { DefinitionStore, DefOf } from '../../runtime/definitions.ts';
import {
  type ComputedTraitInput,
  checkComputedTraitInput,
  MAX_COMPUTED_TRAITS,
} from '../../schemas/computed-trait.ts';
import { DefinitionInputError } from '../../schemas/definition-input.ts';
import { checkLeadScoreInput, type LeadScoreInput, MAX_SCORES } from '../../schemas/lead-score.ts';
import { compileRule } from '../../schemas/rules.ts';
import { type QueryEnv, readJson } from '../context.ts';
import { QueryError } from '../query-error.ts';
import { saveDefinition } from '../save-definition.ts';

interface Deps {
  defs: DefinitionStore;
  clickhouse: ClickHouseClient;
  now: () => Date;
}

/** Segments whose rule reads `computed.<name>` (or `scores.<name>`): they would break on a delete or rename. */
async function segmentsReading(
  defs: DefinitionStore,
  ws: string,
  kind: 'computedTraits' | 'scores',
  name: string,
): Promise<string[]> {
  const out: string[] = [];
  for (const s of await defs.list('segments', ws)) {
    try {
      const rule = compileRule(s.rule);
      if ((kind === 'computedTraits' ? rule.computed : rule.scores).has(name)) out.push(s.id);
    } catch {
      // a stored rule that no longer compiles reads nothing
    }
  }
  return out;
}

interface Spec<K extends 'computedTraits' | 'scores', I extends { name: string }> {
  kind: K;
  /** What one is called in messages. */
  noun: string;
  idPrefix: string;
  max: number;
  check(body: unknown): I;
}

function definitionRoutes<K extends 'computedTraits' | 'scores', I extends { name: string }>(
  deps: Deps,
  spec: Spec<K, I>,
) {
  const app = new Hono<QueryEnv>();
  type Def = DefOf<K>;

  const validate = async (ws: string, raw: unknown, self?: Def): Promise<I> => {
    let input: I;
    try {
      input = spec.check(raw);
    } catch (err) {
      if (err instanceof DefinitionInputError) throw new QueryError(400, err.message);
      throw err;
    }
    const all = (await deps.defs.list(spec.kind, ws)) as Def[];
    const clash = all.find((d) => d.name === input.name && d.id !== self?.id);
    if (clash) throw new QueryError(409, `name: ${spec.noun} ${clash.id} is already called ${input.name}`);
    if (!self && all.length >= spec.max)
      throw new QueryError(400, `too many ${spec.noun}s: at most ${spec.max} per workspace`);
    if (self && self.name !== input.name) await refuseInUse(ws, self, 'rename');
    return input;
  };

  const refuseInUse = async (ws: string, def: Def, what: string) => {
    const users = await segmentsReading(deps.defs, ws, spec.kind, def.name);
    if (users.length > 0)
      throw new QueryError(
        409,
        `${spec.noun} is read by segments ${users.join(', ')}: change those before you ${what} it`,
      );
  };

  const load = async (ws: string, id: string): Promise<Def> => {
    const def = (await deps.defs.get(spec.kind, ws, id)) as Def | undefined;
    if (!def) throw new QueryError(404, `no ${spec.noun} ${id}`);
    return def;
  };

  app.post('/', async (c) => {
    const ws = c.get('workspaceId');
    const input = await validate(ws, await readJson(c.req.raw));
    const at = deps.now().toISOString();
    const def = {
      ...input,
      id: `${spec.idPrefix}${randomBytes(9).toString('base64url')}`,
      workspaceId: ws,
      version: 1,
      createdAt: at,
      updatedAt: at,
    } as unknown as Def;
    await saveDefinition(deps, c, spec.kind, null, def);
    return c.json(def, 201);
  });

  app.get('/', async (c) => c.json({ [spec.kind]: await deps.defs.list(spec.kind, c.get('workspaceId')) }));

  app.get('/:id', async (c) => c.json(await load(c.get('workspaceId'), c.req.param('id'))));

  app.put('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    const input = await validate(ws, await readJson(c.req.raw), before);
    // a new version is the input as given: fields left out are gone (a PUT, not a PATCH)
    const after = {
      ...input,
      id: before.id,
      workspaceId: ws,
      version: before.version + 1,
      createdAt: before.createdAt,
      updatedAt: deps.now().toISOString(),
    } as unknown as Def;
    await saveDefinition(deps, c, spec.kind, before, after);
    return c.json(after);
  });

  app.delete('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    await refuseInUse(ws, before, 'delete');
    await saveDefinition(deps, c, spec.kind, before, null);
    return c.body(null, 204);
  });
  return app;
}

export function computedTraitRoutes(deps: Deps) {
  return definitionRoutes<'computedTraits', ComputedTraitInput>(deps, {
    kind: 'computedTraits',
    noun: 'computed trait',
    idPrefix: 'ct_',
    max: MAX_COMPUTED_TRAITS,
    check: checkComputedTraitInput,
  });
}

export function scoreRoutes(deps: Deps) {
  return definitionRoutes<'scores', LeadScoreInput>(deps, {
    kind: 'scores',
    noun: 'score',
    idPrefix: 'sc_',
    max: MAX_SCORES,
    check: checkLeadScoreInput,
  });
}
