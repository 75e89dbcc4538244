// Segment rules: JSON Logic over { traits, profile, event, segments, computed, scores }. A rule is validated
// and compiled once: custom operators are rewritten into plain JSON Logic over a context
// the evaluator prepares, and the compiled rule records what it reads, so the processor
// evaluates only the rules an event can change.
import { createHash } from 'node:crypto';
import jsonLogic from 'json-logic-js';

const BUILTIN_OPS = new Set([
  'var',
  'missing',
  'missing_some',
  'if',
  '?:',
  '==',
  '===',
  '!=',
  '!==',
  '!',
  '!!',
  'or',
  'and',
  '>',
  '>=',
  '<',
  '<=',
  'max',
  'min',
  '+',
  '-',
  '*',
  '/',
  '%',
  'in',
  'cat',
  'substr',
  'merge',
  'all',
  'none',
  'some',
  'map',
  'reduce',
  'filter',
]);

const WINDOW_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
export const MAX_WINDOW_MS = 400 * 86_400_000;

/** `"7d"` → milliseconds; undefined for anything else. */
export function parseWindow(w: unknown): number | undefined {
  if (typeof w !== 'string') return undefined;
  const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(w);
  if (!m) return undefined;
  const ms = Number(m[1]) * WINDOW_UNITS[m[2]!]!;
  return ms <= MAX_WINDOW_MS ? ms : undefined;
}

/**
 * One counted condition: events named `event` whose properties pass `filter`. Its id names
 * the per-profile sorted set of matching event times; windows are applied when counting.
 */
export interface EventCondition {
  id: string;
  event: string;
  filter: unknown;
  matches(properties: Record<string, unknown>): boolean;
}

/** A windowed count a rule reads: condition × window. */
export interface WindowedCount {
  /** Key under `counts` in the rule context. */
  key: string;
  condition: EventCondition;
  windowMs: number;
}

export class RuleError extends Error {
  constructor(
    public readonly path: string,
    /** What is wrong, without the place (for callers that name the place their own way). */
    public readonly detail: string,
  ) {
    super(`rule${path}: ${detail}`);
    this.name = 'RuleError';
  }
}

export interface RuleContext {
  traits: Record<string, unknown>;
  profile: { id: string; firstSeenAt: string | null; lastSeenAt: string | null };
  event: Record<string, unknown> | null;
  /** Ids of the segments the profile is currently in. */
  segments: string[];
  /** Windowed event counts, by WindowedCount.key. */
  counts: Record<string, number>;
  /** Computed trait values by name (`computed.<name>`); only those the rules read need be present. */
  computed?: Record<string, unknown>;
  /** Lead scores by name (`scores.<name>`). */
  scores?: Record<string, number>;
}

export interface CompiledRule {
  /** Trait keys the rule reads (first path segment under `traits`). */
  traits: Set<string>;
  /** Segment ids the rule reads through `in_segment`. */
  segments: Set<string>;
  readsEvent: boolean;
  readsProfile: boolean;
  /** Windowed counts the rule reads (`event_count`). */
  counts: WindowedCount[];
  /** Computed trait names the rule reads (`computed.<name>`; `*` for the whole object). */
  computed: Set<string>;
  /** Lead score names the rule reads (`scores.<name>`; `*` for the whole object). */
  scores: Set<string>;
  evaluate(ctx: RuleContext): boolean;
}

const MAX_DEPTH = 32;
const MAX_NODES = 2000;

export function compileRule(rule: unknown): CompiledRule {
  const counts = new Map<string, WindowedCount>();
  const reads = {
    traits: new Set<string>(),
    segments: new Set<string>(),
    computed: new Set<string>(),
    scores: new Set<string>(),
    readsEvent: false,
    readsProfile: false,
  };
  let nodes = 0;

  const walk = (node: unknown, path: string, depth: number): unknown => {
    if (++nodes > MAX_NODES) throw new RuleError(path, `too large (more than ${MAX_NODES} nodes)`);
    if (depth > MAX_DEPTH) throw new RuleError(path, `nested deeper than ${MAX_DEPTH}`);
    if (Array.isArray(node)) return node.map((n, i) => walk(n, `${path}[${i}]`, depth + 1));
    if (node === null || typeof node !== 'object') return node;
    const keys = Object.keys(node);
    if (keys.length !== 1)
      throw new RuleError(path, 'an operation is an object with exactly one operator key');
    const op = keys[0]!;
    const raw = (node as Record<string, unknown>)[op];
    const args = Array.isArray(raw) ? raw : [raw];
    const here = `${path}.${op}`;
    if (op === 'in_segment') {
      const id = args[0];
      if (args.length !== 1 || typeof id !== 'string' || id.length === 0)
        throw new RuleError(here, 'in_segment takes one segment id');
      reads.segments.add(id);
      return { in: [id, { var: 'segments' }] };
    }
    if (op === 'event_count') {
      const [event, window, filter] = args;
      if (typeof event !== 'string' || event.length === 0 || event.length > 512)
        throw new RuleError(here, 'event_count takes an event name first');
      const windowMs = parseWindow(window);
      if (windowMs === undefined)
        throw new RuleError(
          here,
          `bad window ${JSON.stringify(window)}: use a number with s, m, h or d, at most 400d`,
        );
      if (args.length > 3)
        throw new RuleError(here, 'event_count takes an event name, a window and an optional filter');
      const condition = compileCondition(event, filter ?? null, `${here}[2]`);
      const key = `${condition.id}_${windowMs}`;
      counts.set(key, { key, condition, windowMs });
      return { var: `counts.${key}` };
    }
    if (!BUILTIN_OPS.has(op)) throw new RuleError(here, `unknown operator "${op}"`);
    if (op === 'var') {
      const name = args[0];
      if (typeof name !== 'string') throw new RuleError(here, 'var takes a field path such as "traits.plan"');
      const [root, first] = name.split('.');
      if (root === 'traits') {
        if (first) reads.traits.add(first);
        else reads.traits.add('*');
      } else if (root === 'event') reads.readsEvent = true;
      else if (root === 'profile') reads.readsProfile = true;
      else if (root === 'computed') reads.computed.add(first || '*');
      else if (root === 'scores') reads.scores.add(first || '*');
      else if (root !== 'segments' && name !== '')
        throw new RuleError(
          here,
          `unknown field "${name}": use traits.*, profile.*, event.*, computed.* or scores.*`,
        );
    }
    return {
      [op]: Array.isArray(raw)
        ? args.map((a, i) => walk(a, `${here}[${i}]`, depth + 1))
        : walk(raw, here, depth + 1),
    };
  };

  if (rule === null || typeof rule !== 'object' || Array.isArray(rule))
    throw new RuleError('', 'must be a JSON Logic operation object');
  const compiled = walk(rule, '', 0) as jsonLogic.RulesLogic;
  return {
    ...reads,
    counts: [...counts.values()],
    evaluate: (ctx) => truthy(jsonLogic.apply(compiled, ctx)),
  };
}

/**
 * Validates a property filter (plain JSON Logic over the event's properties) and compiles it.
 * Also used by computed traits and lead scores (`where`), which count the same conditions.
 */
export function compileCondition(event: string, filter: unknown, path: string): EventCondition {
  if (filter !== null) {
    if (typeof filter !== 'object' || Array.isArray(filter))
      throw new RuleError(path, 'the filter must be a JSON Logic operation on the event properties');
    let nodes = 0;
    const check = (node: unknown, p: string, depth: number) => {
      if (++nodes > MAX_NODES || depth > MAX_DEPTH) throw new RuleError(p, 'filter too large or too deep');
      if (Array.isArray(node)) {
        for (let i = 0; i < node.length; i++) check(node[i], `${p}[${i}]`, depth + 1);
      } else if (node && typeof node === 'object') {
        const keys = Object.keys(node);
        if (keys.length !== 1 || !BUILTIN_OPS.has(keys[0]!))
          throw new RuleError(p, `unknown operator "${keys.join(',')}" in filter`);
        check((node as Record<string, unknown>)[keys[0]!], `${p}.${keys[0]}`, depth + 1);
      }
    };
    check(filter, path, 0);
  }
  const id = createHash('sha256')
    .update(JSON.stringify([event, filter]))
    .digest('base64url')
    .slice(0, 16)
    .replace(/[-_]/g, 'x');
  const logic = filter as jsonLogic.RulesLogic;
  return {
    id,
    event,
    filter,
    matches: (properties) => filter === null || truthy(jsonLogic.apply(logic, properties)),
  };
}

function truthy(v: unknown): boolean {
  // JSON Logic truthiness: empty arrays are false.
  if (Array.isArray(v)) return v.length > 0;
  return Boolean(v);
}
