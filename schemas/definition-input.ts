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
