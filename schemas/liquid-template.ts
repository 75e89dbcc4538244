// Shared by the query API (syntax check at create time) and activation (rendering).
// Liquid templates (liquidjs) in a sandbox: no file system (includes and layouts find
// nothing), own properties only, unknown filters are errors, and bounded parse size,
// render time and memory, so a template cannot stall or bloat a worker.
import { Liquid, type Template } from 'liquidjs';

const engine = new Liquid({
  templates: {},
  relativeReference: false,
  dynamicPartials: false,
  ownPropertyOnly: true,
  strictFilters: true,
  strictVariables: false,
  cache: 1000,
  parseLimit: 200_000,
  renderLimit: 200,
  memoryLimit: 10_000_000,
});

const parsed = new Map<string, Template[]>();

/** Parses a template; throws with liquidjs's message (line and column) when it is invalid. */
export function parseTemplate(source: string): Template[] {
  let t = parsed.get(source);
  if (!t) {
    t = engine.parse(source);
    if (parsed.size > 5000) parsed.clear();
    parsed.set(source, t);
  }
  return t;
}

/** The first syntax error of a template, or undefined. */
export function templateError(source: string): string | undefined {
  try {
    parseTemplate(source);
    return undefined;
  } catch (err) {
    return (err as Error).message.split('\n')[0];
  }
}

export const MAX_RENDERED_BYTES = 256 * 1024;

export async function renderTemplate(source: string, scope: Record<string, unknown>): Promise<string> {
  const out = String(await engine.render(parseTemplate(source), scope));
  if (Buffer.byteLength(out) > MAX_RENDERED_BYTES)
    throw new Error(`rendered template over ${MAX_RENDERED_BYTES} bytes`);
  return out;
}
