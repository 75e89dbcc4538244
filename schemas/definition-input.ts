// Shared by the computed-trait and lead-score schemas: input errors that name the field,
// and the name rule that lets a definition be read as `computed.<name>` / `scores.<name>`.
import type { TSchema } from '@sinclair/typebox';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import { firstSchemaError } from './schema-error.ts';

/** Bad definition input; `message` starts with the field it is about. */
export class DefinitionInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DefinitionInputError';
  }
}

/** A name usable in a rule path (`computed.<name>`): a letter or `_`, then letters, digits, `_`. */
export const NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,63}$';

/** Throws the first schema error as `field.path: message`, with clearer words for known fields. */
export function checkShape<T extends TSchema>(
  check: TypeCheck<T>,
  body: unknown,
  hints: Record<string, string> = {},
  prefix = '',
): void {
  const e = firstSchemaError(check, body);
  if (!e) return;
  const path = `${prefix}${e.path}`;
  const field = path || prefix.replace(/\.$/, '') || 'body';
  if (e.unknownField) throw new DefinitionInputError(`${field}: unknown field`);
  throw new DefinitionInputError(`${field}: ${hints[path] ?? e.message}`);
}

const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'prototype', 'constructor']);

/** `"a.b.c"` → `["a","b","c"]`, or undefined when a segment is empty or names a prototype. */
export function parsePath(path: string): string[] | undefined {
  const parts = path.split('.');
  if (parts.some((p) => p.length === 0 || FORBIDDEN_SEGMENTS.has(p))) return undefined;
  return parts;
}

/** The value at a parsed path in a plain object (own properties only). */
export function valueAt(obj: unknown, path: readonly string[]): unknown {
  let v: unknown = obj;
  for (const p of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, p)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

/**
 * Whether a regular expression repeats a group that itself holds a quantifier (`(a+)+`,
 * `((a*)b)+`, `(x{2,})*`): such a pattern can take exponential time on a hostile input, so
 * patterns from definitions (forms, tracking plans) are refused when it does. Escapes and
 * character classes are skipped; nested groups count for the group around them.
 */
export function hasNestedQuantifier(pattern: string): boolean {
  const groups: boolean[] = []; // per open group: whether something inside repeats
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '\\') {
      i++;
      continue;
    }
    if (inClass) {
      if (ch === ']') inClass = false;
      continue;
    }
    if (ch === '[') inClass = true;
    else if (ch === '(') groups.push(false);
    else if (ch === ')') {
      const inner = groups.pop() ?? false;
      const next = pattern[i + 1];
      const repeated = next === '+' || next === '*' || next === '{';
      if (inner && repeated) return true;
      if ((inner || repeated) && groups.length > 0) groups[groups.length - 1] = true;
    } else if ((ch === '+' || ch === '*' || ch === '{') && groups.length > 0)
      groups[groups.length - 1] = true;
  }
  return false;
}
