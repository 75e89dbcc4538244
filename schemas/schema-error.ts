// The first problem TypeBox finds in a value, as every refusal of ours words it: the field
// it is about (a dotted path: `consents.0.channel`; or with brackets: `steps[1].event`) and
// what is wrong. One reading of TypeBox's errors for the query API's 400s (query/validate.ts),
// ingest's event errors, definition inputs, analytics bodies and channel credentials, which
// each add only their own wording around it.
import type { TSchema } from '@sinclair/typebox';
import type { TypeCheck } from '@sinclair/typebox/compiler';

/**
 * A schema option: what a refusal says instead of TypeBox's wording when this schema (a
 * field) is the first that fails, e.g. `Type.Integer({minimum: 1, errorMessage: 'an integer
 * from 1'})`. A missing required field fails its own schema too.
 */
export interface ErrorMessageOption {
  errorMessage?: string;
}

export interface SchemaError {
  /** The field as a path (`a.b.0.c`, or `a.b[0].c` with brackets); '' for the value itself. */
  path: string;
  /** The schema's own errorMessage, else TypeBox's message. */
  message: string;
  /** An object with additionalProperties false met a property it does not know. */
  unknownField: boolean;
  /** The schema that failed (for wording of a caller's own, e.g. a pattern). */
  schema: TSchema | undefined;
}

/** A JSON pointer (`/consents/0/channel`) as a field path (`consents.0.channel` or `consents[0].channel`). */
export function fieldPath(pointer: string, opts: { brackets?: boolean } = {}): string {
  const parts = pointer
    .split('/')
    .filter(Boolean)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (!opts.brackets) return parts.join('.');
  return parts.map((s, i) => (/^\d+$/.test(s) ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/** The first error, or undefined when the value passes. */
export function firstSchemaError<T extends TSchema>(
  check: TypeCheck<T>,
  value: unknown,
  opts: { brackets?: boolean } = {},
): SchemaError | undefined {
  if (check.Check(value)) return undefined;
  const e = check.Errors(value).First();
  const own = (e?.schema as ErrorMessageOption | undefined)?.errorMessage;
  return {
    path: fieldPath(e?.path ?? '', opts),
    message: own ?? e?.message ?? 'invalid',
    unknownField: e?.message.startsWith('Unexpected property') ?? false,
    schema: e?.schema,
  };
}
