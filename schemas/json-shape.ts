// Structural bounds of a parsed JSON value (pure, no I/O), shared by the ingest edge
// (ingest/normalize-event.ts) and bulk imports (query/imports/rows.ts): nesting depth, key
// count, and keys that could reach an object's prototype in a later merge.

/** Deepest nesting taken (the root is depth 0). */
export const MAX_JSON_DEPTH = 24;
/** Object keys plus array items, counted over the whole tree. */
export const MAX_JSON_KEYS = 2000;
/** Keys that could reach an object's prototype (or its constructor) when merged. */
export const UNSAFE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export interface ShapeOptions {
  /**
   * Keys refused wherever they are (the tree is then not changed). Without it, `__proto__`
   * keys are deleted in place (the ingest edge's behaviour) and nothing is refused by name.
   */
  refuseKeys?: ReadonlySet<string>;
}

/** Where the tree is out of bounds (`path`: dotted, '' for the root) and how. */
export interface ShapeProblem {
  path: string;
  message: string;
}

/**
 * Bounds nesting depth and key count; drops `__proto__` keys (or, with `refuseKeys`, refuses
 * those keys). Returns the problem, or undefined. A fast walk without paths answers for valid
 * input; only a failing one is walked again to name where the problem is.
 */
export function shapeProblem(root: object, opts: ShapeOptions = {}): ShapeProblem | undefined {
  const budget = { keys: 0 };
  if (walk(root, 0, budget, opts.refuseKeys)) return undefined;
  return describeShapeProblem(root, opts.refuseKeys);
}

/** True when the tree is within bounds (counting keys into `budget`). */
function walk(
  node: unknown,
  depth: number,
  budget: { keys: number },
  refuse: ReadonlySet<string> | undefined,
): boolean {
  if (node === null || typeof node !== 'object') return true;
  if (depth > MAX_JSON_DEPTH) return false;
  if (Array.isArray(node)) {
    budget.keys += node.length;
    if (budget.keys > MAX_JSON_KEYS) return false;
    for (let i = 0; i < node.length; i++) if (!walk(node[i], depth + 1, budget, refuse)) return false;
    return true;
  }
  const obj = node as Record<string, unknown>;
  for (const k in obj) {
    if (refuse?.has(k)) return false;
    if (k === '__proto__' && !refuse) {
      delete obj[k];
      continue;
    }
    if (++budget.keys > MAX_JSON_KEYS) return false;
    const v = obj[k];
    if (v !== null && typeof v === 'object' && !walk(v, depth + 1, budget, refuse)) return false;
  }
  return true;
}

/** The slow walk, with paths, for a tree the fast walk refused. */
function describeShapeProblem(
  root: object,
  refuse: ReadonlySet<string> | undefined,
): ShapeProblem | undefined {
  let keys = 0;
  const stack: Array<[unknown, number, string]> = [[root, 0, '']];
  while (stack.length > 0) {
    const [node, depth, path] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth > MAX_JSON_DEPTH) return { path, message: `nested deeper than ${MAX_JSON_DEPTH} levels` };
    if (Array.isArray(node)) {
      keys += node.length;
      for (let i = 0; i < node.length; i++) stack.push([node[i], depth + 1, `${path}[${i}]`]);
    } else {
      for (const k of Object.keys(node)) {
        if (refuse?.has(k)) return { path, message: `key ${JSON.stringify(k)} is not allowed` };
        keys++;
        stack.push([(node as Record<string, unknown>)[k], depth + 1, path ? `${path}.${k}` : k]);
      }
    }
    if (keys > MAX_JSON_KEYS) return { path, message: `more than ${MAX_JSON_KEYS} properties` };
  }
  return undefined;
}
