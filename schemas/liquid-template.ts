// Shared by the query API (syntax check at create time) and activation (rendering).
// Liquid templates (liquidjs) in a sandbox: no file system (includes and layouts find
// nothing), own properties only, unknown filters are errors, and bounded parse size,
// render time and memory, so a template cannot stall or bloat a worker.
// HTML templates escape every output (`{{ traits.name }}` with `<script>` in it comes out as
// `&lt;script&gt;`); `| raw` as the last filter outputs a value as it is, deliberately.
import { Liquid, type LiquidOptions, type Template } from 'liquidjs';

/** The longest one render may take (ms); a caller may give a render less (a mapping's budget). */
export const RENDER_LIMIT_MS = 200;
/**
 * The Liquid render time (ms) of one message, all its template fields together (an email's
 * subject, text and html; an SMS body; a push title and body), each also at most RENDER_LIMIT_MS.
 */
export const MESSAGE_RENDER_BUDGET_MS = 250;

const options: LiquidOptions = {
  templates: {},
  relativeReference: false,
  dynamicPartials: false,
  ownPropertyOnly: true,
  strictFilters: true,
  strictVariables: false,
  cache: 1000,
  parseLimit: 200_000,
  renderLimit: RENDER_LIMIT_MS,
  memoryLimit: 10_000_000,
};
/** Where the output is: plain text (subjects, text parts, SMS, push) or HTML. */
export type TemplateFormat = 'text' | 'html';

/** The format of a channel's template field: only an email's `html` part is HTML. */
export function templateFormat(channel: string, field: string): TemplateFormat {
  return channel === 'email' && field === 'html' ? 'html' : 'text';
}

const engines: Record<TemplateFormat, Liquid> = {
  text: new Liquid(options),
  html: htmlEngine(),
};

/** Escapes every output unless its last filter is `raw`; `escape` itself is not escaped twice. */
function htmlEngine(): Liquid {
  const engine = new Liquid({ ...options, outputEscape: 'escape' });
  for (const name of ['escape', 'escape_once']) {
    const escapeFilter = engine.filters[name];
    if (!escapeFilter) throw new Error(`liquidjs has no ${name} filter`);
    const handler = typeof escapeFilter === 'function' ? escapeFilter : escapeFilter.handler;
    engine.registerFilter(name, { handler, raw: true });
  }
  return engine;
}

const parsed: Record<TemplateFormat, Map<string, Template[]>> = { text: new Map(), html: new Map() };

/** Parses a template; throws with liquidjs's message (line and column) when it is invalid. */
export function parseTemplate(source: string, format: TemplateFormat = 'text'): Template[] {
  const cache = parsed[format];
  let t = cache.get(source);
  if (!t) {
    t = engines[format].parse(source);
    if (cache.size > 5000) cache.clear();
    cache.set(source, t);
  }
  return t;
}

/** The first syntax error of a template, or undefined. */
export function templateError(source: string, format: TemplateFormat = 'text'): string | undefined {
  try {
    parseTemplate(source, format);
    return undefined;
  } catch (err) {
    return (err as Error).message.split('\n')[0];
  }
}

export const MAX_RENDERED_BYTES = 256 * 1024;

/**
 * Renders a template. `renderLimitMs` shortens this render's time limit (never past
 * RENDER_LIMIT_MS): a destination mapping passes what is left of its per-event budget.
 */
export async function renderTemplate(
  source: string,
  scope: Record<string, unknown>,
  format: TemplateFormat = 'text',
  limits: { renderLimitMs?: number } = {},
): Promise<string> {
  const renderLimit = Math.min(limits.renderLimitMs ?? RENDER_LIMIT_MS, RENDER_LIMIT_MS);
  const out = String(await engines[format].render(parseTemplate(source, format), scope, { renderLimit }));
  if (Buffer.byteLength(out) > MAX_RENDERED_BYTES)
    throw new Error(`rendered template over ${MAX_RENDERED_BYTES} bytes`);
  return out;
}

/** A render that ran out of its budget (its own time limit, or what the fields before it left). */
export class RenderBudgetError extends Error {
  constructor(
    readonly field: string,
    readonly budgetMs: number,
    unit = 'message',
  ) {
    super(
      `${field}: over the Liquid render time limit (${Math.min(budgetMs, RENDER_LIMIT_MS)} ms a field, ${budgetMs} ms for all the fields of one ${unit})`,
    );
    this.name = 'RenderBudgetError';
  }
}

/**
 * One render budget shared by several templates (the fields of one message): each field renders
 * with what the fields before it left (at most RENDER_LIMIT_MS); a field that runs out, or finds
 * nothing left, throws RenderBudgetError naming it. The time counted is the time spent in the
 * renders (`now`, injectable for tests), not the time between them. Other render errors
 * (syntax, unknown filter, output too large) are thrown as renderTemplate throws them.
 */
export function renderBudget(
  budgetMs: number = MESSAGE_RENDER_BUDGET_MS,
  opts: { now?: () => number; unit?: string } = {},
) {
  const now = opts.now ?? (() => performance.now());
  let spent = 0;
  return {
    budgetMs,
    get spentMs() {
      return spent;
    },
    async render(
      field: string,
      source: string,
      scope: Record<string, unknown>,
      format: TemplateFormat = 'text',
    ): Promise<string> {
      const left = budgetMs - spent;
      if (left <= 0) throw new RenderBudgetError(field, budgetMs, opts.unit);
      const started = now();
      try {
        return await renderTemplate(source, scope, format, { renderLimitMs: left });
      } catch (err) {
        if ((err as Error).message.includes('template render limit exceeded'))
          throw new RenderBudgetError(field, budgetMs, opts.unit);
        throw err;
      } finally {
        spent += now() - started;
      }
    },
  };
}
