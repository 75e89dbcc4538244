// Request body validation for the query API's routes: `validate(schema)` is Hono middleware that
// reads the JSON body (query/context.ts readJson: content type, malformed JSON, nesting depth),
// checks it against a TypeBox schema (the schemas live in schemas/ or next to their route) and
// answers the first problem as a 400 `{error: "<field>: <message>"}`, the shape every query API
// error has (query/query-error.ts). The handler then reads the typed body with
// `c.req.valid('json')`.

import type { Static, TSchema } from '@sinclair/typebox';
import { type TypeCheck, TypeCompiler } from '@sinclair/typebox/compiler';
import type { MiddlewareHandler } from 'hono';
import { fieldPath, firstSchemaError } from '../schemas/schema-error.ts';
import { type QueryEnv, readJson } from './context.ts';
import { QueryError } from './query-error.ts';

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

function compile<T extends TSchema>(schema: T | TypeCheck<T>): TypeCheck<T> {
  if ('Check' in schema && typeof schema.Check === 'function') return schema as TypeCheck<T>;
  let check = compiled.get(schema as T);
  if (!check) {
    check = TypeCompiler.Compile(schema as T);
    compiled.set(schema as T, check);
  }
  return check as TypeCheck<T>;
}

/** A JSON pointer (`/consents/0/channel`) as the field name errors use (`consents.0.channel`; `body` for the whole). */
export function fieldName(pointer: string): string {
  return fieldPath(pointer) || 'body';
}

export type { ErrorMessageOption } from '../schemas/schema-error.ts';

export interface ValidateOptions {
  /** Appended to the message in parentheses: what a right body looks like. */
  hint?: string;
}

/** The 400 for a body `check` refuses: its first problem, naming the field. */
export function invalidBody<T extends TSchema>(
  schema: T | TypeCheck<T>,
  body: unknown,
  opts: ValidateOptions = {},
): QueryError {
  const e = firstSchemaError(compile(schema), body);
  const message = `${e?.path || 'body'}: ${e?.message ?? 'invalid'}`;
  return new QueryError(400, opts.hint ? `${message} (${opts.hint})` : message);
}

/** Checks an already-read body; returns it typed or throws the 400. */
export function checkBody<T extends TSchema>(
  schema: T | TypeCheck<T>,
  body: unknown,
  opts: ValidateOptions = {},
): Static<T> {
  const check = compile(schema);
  if (check.Check(body)) return body as Static<T>;
  throw invalidBody(check, body, opts);
}

/**
 * Middleware: the request's JSON body checked against `schema` (a TypeBox schema or its compiled
 * check); on success `c.req.valid('json')` is the typed body, otherwise the request ends in a 400
 * naming the first wrong field.
 */
export function validate<T extends TSchema>(
  schema: T | TypeCheck<T>,
  opts: ValidateOptions = {},
): MiddlewareHandler<QueryEnv, string, { in: { json: Static<T> }; out: { json: Static<T> } }> {
  const check = compile(schema);
  return async (c, next) => {
    const body = checkBody(check, await readJson(c.req.raw), opts);
    c.req.addValidatedData('json', body as object);
    await next();
  };
}
