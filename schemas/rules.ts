// Segment rules: JSON Logic over { traits, profile, event, segments }. A rule is validated
// and compiled once: custom operators are rewritten into plain JSON Logic over a context
// the evaluator prepares, and the compiled rule records what it reads, so the processor
// evaluates only the rules an event can change.
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

/** Operators of DESIGN.md that this engine does not evaluate yet are refused, not ignored. */
const PLANNED_OPS = new Set(['event_count']);

export class RuleError extends Error {
  constructor(
    public readonly path: string,
    message: string,
  ) {
    super(`rule${path}: ${message}`);
    this.name = 'RuleError';
  }
}

export interface RuleContext {
  traits: Record<string, unknown>;
  profile: { id: string; firstSeenAt: string | null; lastSeenAt: string | null };
  event: Record<string, unknown> | null;
  /** Ids of the segments the profile is currently in. */
  segments: string[];
}

export interface CompiledRule {
  /** Trait keys the rule reads (first path segment under `traits`). */
  traits: Set<string>;
  /** Segment ids the rule reads through `in_segment`. */
  segments: Set<string>;
  readsEvent: boolean;
  readsProfile: boolean;
  evaluate(ctx: RuleContext): boolean;
}

const MAX_DEPTH = 32;
const MAX_NODES = 2000;

export function compileRule(rule: unknown): CompiledRule {
  const reads = {
    traits: new Set<string>(),
    segments: new Set<string>(),
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
    if (PLANNED_OPS.has(op)) throw new RuleError(here, `operator ${op} is not supported by this version yet`);
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
      else if (root !== 'segments' && name !== '')
        throw new RuleError(here, `unknown field "${name}": use traits.*, profile.* or event.*`);
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
    evaluate: (ctx) => truthy(jsonLogic.apply(compiled, ctx)),
  };
}

function truthy(v: unknown): boolean {
  // JSON Logic truthiness: empty arrays are false.
  if (Array.isArray(v)) return v.length > 0;
  return Boolean(v);
}
