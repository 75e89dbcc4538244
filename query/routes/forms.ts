// Forms: create, edit (each edit is a new version; consent records name the version whose
// text was shown), pause / activate, delete. Definitions and every version live in the
// definition store, which the ingest host reloads when its revision moves; every change is
// audited.
import { randomBytes } from 'node:crypto';
import { type Context, Hono } from 'hono';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { DefinitionStore } from '../../runtime/definitions.ts';
import { DefinitionInputError } from '../../schemas/definition-input.ts';
import { checkFormInput, FORM_TRANSITIONS, type FormDefinition, type FormInput } from '../../schemas/form.ts';
import { actorOf, recordAudit } from '../audit.ts';
import { type QueryEnv, readJson } from '../context.ts';
import { QueryError } from '../query-error.ts';

export function formRoutes(deps: { clickhouse: ClickHouseClient; defs: DefinitionStore; now: () => Date }) {
  const app = new Hono<QueryEnv>();

  const validate = (body: unknown): FormInput => {
    try {
      return checkFormInput(body);
    } catch (err) {
      if (err instanceof DefinitionInputError) throw new QueryError(400, err.message);
      throw err;
    }
  };

  const load = async (ws: string, id: string) => {
    const def = await deps.defs.get('forms', ws, id);
    if (!def) throw new QueryError(404, `no form ${id}`);
    return def;
  };

  const audit = (c: Context<QueryEnv>, id: string, before: unknown, after: unknown) =>
    recordAudit(
      deps.clickhouse,
      {
        workspaceId: c.get('workspaceId'),
        actor: actorOf(c.get('apiKey')),
        action: before === null ? 'create' : after === null ? 'delete' : 'update',
        entityType: 'form',
        entityId: id,
        before,
        after,
      },
      deps.now(),
    );

  /** Stores the form (and its version, when new) in one step, then audits. */
  const save = async (c: Context<QueryEnv>, before: FormDefinition | null, after: FormDefinition) => {
    const entries: Array<{ kind: 'forms' | 'formVersions'; def: FormDefinition; field?: string }> = [
      { kind: 'forms', def: after },
    ];
    if (!before || before.version !== after.version)
      entries.push({ kind: 'formVersions', def: after, field: `${after.id}@${after.version}` });
    await deps.defs.putMany(entries);
    await audit(c, after.id, before, after);
    return after;
  };

  app.post('/', async (c) => {
    const ws = c.get('workspaceId');
    const input = validate(await readJson(c.req.raw));
    const at = deps.now().toISOString();
    const def: FormDefinition = {
      ...input,
      id: `frm_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`,
      workspaceId: ws,
      version: 1,
      status: input.status ?? 'active',
      createdAt: at,
      updatedAt: at,
    };
    return c.json(await save(c, null, def), 201);
  });

  app.get('/', async (c) => c.json({ forms: await deps.defs.list('forms', c.get('workspaceId')) }));
  app.get('/:id', async (c) => c.json(await load(c.get('workspaceId'), c.req.param('id'))));
  app.get('/:id/versions/:version', async (c) => {
    const ws = c.get('workspaceId');
    const def = await deps.defs.get('formVersions', ws, `${c.req.param('id')}@${c.req.param('version')}`);
    if (!def) throw new QueryError(404, `no version ${c.req.param('version')} of form ${c.req.param('id')}`);
    return c.json(def);
  });

  app.put('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    const input = validate(await readJson(c.req.raw));
    const after: FormDefinition = {
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

  for (const action of Object.keys(FORM_TRANSITIONS) as Array<keyof typeof FORM_TRANSITIONS>) {
    app.post(`/:id/${action}`, async (c) => {
      const before = await load(c.get('workspaceId'), c.req.param('id'));
      const to = FORM_TRANSITIONS[action];
      if (before.status === to) return c.json(before);
      // the status is not part of the text shown: no new version
      const after: FormDefinition = { ...before, status: to, updatedAt: deps.now().toISOString() };
      return c.json(await save(c, before, after));
    });
  }

  // the versions stay: consent records name the version whose text was shown
  app.delete('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    await deps.defs.remove('forms', ws, before.id);
    await audit(c, before.id, before, null);
    return c.body(null, 204);
  });

  return app;
}
