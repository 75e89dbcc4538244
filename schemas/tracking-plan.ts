// Tracking plans (Segment Protocols, RudderStack tracking plans): per workspace, the events
// it expects by name, each with an optional JSON Schema (draft 2020-12) for its
// `properties` and for its `context.traits`, and schemas for identify and group traits.
// The query service checks and stores a plan (query/routes/tracking-plan.ts, each save a new
// version); ingest compiles it once per version (ajv, to JavaScript) and checks every
// normalised event against it (ingest/tracking-plan.ts). What a violation does is the plan's
// mode: `allow` passes the event and counts the violation, `flag` also attaches the
// violations to the event (`context.violations`), `quarantine` keeps the event out of the
// pipeline (cdp.quarantine → ClickHouse quarantined_events) until a replay after the plan
// was fixed lets it through.
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { checkShape, DefinitionInputError } from './definition-input.ts';
import type { NormalizedEvent } from './event.ts';
import { hasNestedQuantifier, linearRegExp, patternError } from './safe-regex.ts';

export const PLAN_MODES = ['allow', 'flag', 'quarantine'] as const;
export type PlanMode = (typeof PLAN_MODES)[number];

/** One plan per workspace, stored under this id (the definition store keys by workspace and id). */
export const PLAN_ID = 'tracking-plan';

/** Largest JSON text of one schema, and of a whole plan. */
export const MAX_SCHEMA_BYTES = 64 * 1024;
export const MAX_PLAN_BYTES = 512 * 1024;
/** Events a plan may name, and how deep a schema may nest. */
export const MAX_PLAN_EVENTS = 2000;
export const MAX_SCHEMA_DEPTH = 32;
/** Violations kept per event (attached, counted, stored): the first ones ajv reports. */
export const MAX_VIOLATIONS = 10;
const MAX_PATH = 200;
const MAX_MESSAGE = 200;

const JsonSchema = Type.Union([Type.Boolean(), Type.Record(Type.String(), Type.Unknown())]);
const TraitsOnly = Type.Object({ traits: Type.Optional(JsonSchema) }, { additionalProperties: false });

export const TrackingPlanInput = Type.Object(
  {
    mode: Type.Union(PLAN_MODES.map((m) => Type.Literal(m))),
    /**
     * A track event whose name the plan does not list: `allow` lets it through untouched
     * (the default, as Segment's "unplanned events: allow"), `violation` treats it as a
     * violation handled by the mode (flagged, or quarantined).
     */
    unplannedEvents: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('violation')])),
    /** Track events by name: a schema for `properties`, one for `context.traits`. */
    events: Type.Record(
      Type.String({ minLength: 1, maxLength: 512 }),
      Type.Object(
        {
          description: Type.Optional(Type.String({ maxLength: 2000 })),
          properties: Type.Optional(JsonSchema),
          traits: Type.Optional(JsonSchema),
        },
        { additionalProperties: false },
      ),
    ),
    /** The traits of identify calls. */
    identify: Type.Optional(TraitsOnly),
    /** The traits of group calls. */
    group: Type.Optional(TraitsOnly),
  },
  { additionalProperties: false },
);
export type TrackingPlanInput = Static<typeof TrackingPlanInput>;
const inputCheck = TypeCompiler.Compile(TrackingPlanInput);

export interface TrackingPlan extends TrackingPlanInput {
  id: typeof PLAN_ID;
  workspaceId: string;
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface Violation {
  /** Where in the event: `properties.price`, `context.traits.plan`, `traits.email`, `event`. */
  path: string;
  /** The JSON Schema keyword that failed (`type`, `required`, …), or `unplanned`. */
  keyword: string;
  message: string;
}

const bad = (msg: string) => new DefinitionInputError(msg);

/** Checks a plan as PUT: its shape, then each schema (size, remote refs, patterns, compiles). */
export function checkTrackingPlanInput(body: unknown): TrackingPlanInput {
  const size = JSON.stringify(body ?? null).length;
  if (size > MAX_PLAN_BYTES) throw bad(`body: ${size} bytes, over the ${MAX_PLAN_BYTES}-byte plan limit`);
  checkShape(inputCheck, body);
  const plan = body as TrackingPlanInput;
  const names = Object.keys(plan.events);
  if (names.length > MAX_PLAN_EVENTS) throw bad(`events: ${names.length} events, at most ${MAX_PLAN_EVENTS}`);
  const ajv = newAjv();
  const check = (schema: unknown, at: string) => {
    if (schema === undefined) return;
    checkSchemaSafety(schema, at);
    try {
      ajv.compile(schema as object);
    } catch (err) {
      throw bad(`${at}: does not compile: ${(err as Error).message.slice(0, 300)}`);
    }
  };
  for (const name of names) {
    const e = plan.events[name]!;
    check(e.properties, `events.${JSON.stringify(name)}.properties`);
    check(e.traits, `events.${JSON.stringify(name)}.traits`);
  }
  check(plan.identify?.traits, 'identify.traits');
  check(plan.group?.traits, 'group.traits');
  return plan;
}

/**
 * What a schema may not hold, named by its path: over the size or depth limits, a `$ref`
 * (or `$dynamicRef`) that leaves the schema (no fetching at validation time, no SSRF), an
 * `$id` (it could shadow another schema's refs), or a `pattern` / `patternProperties` key
 * that repeats a quantified group (exponential matching on hostile input).
 */
export function checkSchemaSafety(schema: unknown, at: string): void {
  const size = JSON.stringify(schema).length;
  if (size > MAX_SCHEMA_BYTES)
    throw bad(`${at}: ${size} bytes, over the ${MAX_SCHEMA_BYTES}-byte schema limit`);
  const walk = (node: unknown, path: string, depth: number, keywordsHere: boolean) => {
    if (depth > MAX_SCHEMA_DEPTH) throw bad(`${path}: nested deeper than ${MAX_SCHEMA_DEPTH} levels`);
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) walk(node[i], `${path}[${i}]`, depth + 1, keywordsHere);
      return;
    }
    if (node === null || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      const p = `${path}.${k}`;
      if (keywordsHere) {
        if ((k === '$ref' || k === '$dynamicRef') && (typeof v !== 'string' || !v.startsWith('#')))
          throw bad(`${p}: only references inside the schema ("#…") are allowed`);
        if (k === '$id' || k === '$anchor' || k === '$dynamicAnchor')
          throw bad(`${p}: not allowed in a tracking plan schema`);
        if (k === 'pattern' && typeof v === 'string') checkPattern(v, p);
        if (k === 'patternProperties' && v && typeof v === 'object')
          for (const key of Object.keys(v)) checkPattern(key, `${p}.${JSON.stringify(key)}`);
        // values of these are data, not schemas: no keywords inside
        if (k === 'const' || k === 'enum' || k === 'default' || k === 'examples') continue;
        // names of properties: each value is a schema, the names are not keywords
        if (k === 'properties' || k === 'patternProperties' || k === '$defs' || k === 'dependentSchemas') {
          if (v && typeof v === 'object' && !Array.isArray(v))
            for (const [name, sub] of Object.entries(v)) walk(sub, `${p}.${name}`, depth + 2, true);
          continue;
        }
      }
      walk(v, p, depth + 1, true);
    }
  };
  walk(schema, at, 0, true);
}

function checkPattern(pattern: string, at: string): void {
  if (pattern.length > 1000) throw bad(`${at}: a pattern of at most 1000 characters`);
  if (hasNestedQuantifier(pattern))
    throw bad(`${at}: a repeated group with a quantifier inside is not allowed`);
  const why = patternError(pattern);
  if (why) throw bad(`${at}: ${why}`);
}

// ajv-formats is CommonJS: its plugin is the default export's default under Node's ESM
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
  ajv: Ajv2020,
) => Ajv2020;

/**
 * An ajv for plan schemas: draft 2020-12, every error (the counts are per property), formats
 * checked (date-time, email, uri, …), unknown keywords tolerated (plans exported from other
 * tools carry their own annotations), nothing ever loaded from elsewhere.
 */
function newAjv(): Ajv2020 {
  const ajv = new Ajv2020({
    allErrors: true,
    strict: false,
    validateFormats: true,
    logger: false,
    // the compiled code is kept per plan version; source is not needed afterwards
    // `pattern` and `patternProperties` run on RE2 (linear time), not V8's backtracking engine
    code: { source: false, optimize: true, regExp: linearRegExp },
  });
  addFormats(ajv);
  return ajv;
}

/** A plan compiled for checking events: one per plan version. */
export interface CompiledPlan {
  readonly version: number;
  readonly mode: PlanMode;
  /** The event's violations (at most MAX_VIOLATIONS), or undefined when it conforms or is not covered. */
  check(e: NormalizedEvent): Violation[] | undefined;
}

interface EntryValidators {
  properties?: ValidateFunction;
  traits?: ValidateFunction;
}

/** Compiles a stored plan (already checked when it was saved). */
export function compilePlan(plan: TrackingPlan): CompiledPlan {
  const ajv = newAjv();
  const compile = (s: unknown) => (s === undefined ? undefined : ajv.compile(s as object));
  // a Map: an event named `__proto__` or `constructor` must find only its own entry
  const events = new Map<string, EntryValidators>();
  for (const [name, e] of Object.entries(plan.events))
    events.set(name, { properties: compile(e.properties), traits: compile(e.traits) });
  const identify = compile(plan.identify?.traits);
  const group = compile(plan.group?.traits);
  const unplanned = plan.unplannedEvents === 'violation';

  return {
    version: plan.version,
    mode: plan.mode,
    check(e) {
      let out: Violation[] | undefined;
      const run = (validate: ValidateFunction | undefined, data: unknown, base: string) => {
        if (!validate || validate(data)) return;
        out ??= [];
        for (const err of validate.errors ?? []) {
          if (out.length >= MAX_VIOLATIONS) break;
          out.push(toViolation(err, base));
        }
      };
      if (e.type === 'track') {
        const entry = e.event === undefined ? undefined : events.get(e.event);
        if (!entry) {
          if (!unplanned) return undefined;
          return [
            {
              path: 'event',
              keyword: 'unplanned',
              message: clip(
                `event ${JSON.stringify(e.event ?? '')} is not in the tracking plan`,
                MAX_MESSAGE,
              ),
            },
          ];
        }
        run(entry.properties, e.properties, 'properties');
        run(entry.traits, e.context.traits ?? {}, 'context.traits');
      } else if (e.type === 'identify') run(identify, e.traits, 'traits');
      else if (e.type === 'group') run(group, e.traits, 'traits');
      return out;
    },
  };
}

/** `/price` + required `sku` → `properties.sku`; a JSON Pointer's segments as dotted names. */
function toViolation(err: ErrorObject, base: string): Violation {
  let path = base;
  if (err.instancePath)
    path += err.instancePath
      .split('/')
      .slice(1)
      .map((s) => `.${s.replace(/~1/g, '/').replace(/~0/g, '~')}`)
      .join('');
  const p = err.params as Record<string, unknown>;
  if (err.keyword === 'required' && typeof p.missingProperty === 'string') path += `.${p.missingProperty}`;
  else if (err.keyword === 'additionalProperties' && typeof p.additionalProperty === 'string')
    path += `.${p.additionalProperty}`;
  else if (err.keyword === 'dependentRequired' && typeof p.missingProperty === 'string')
    path += `.${p.missingProperty}`;
  return {
    path: clip(path, MAX_PATH),
    keyword: err.keyword,
    message: clip(err.message ?? 'invalid', MAX_MESSAGE),
  };
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** A short text for listings: `properties.price: must be number (+2 more)`. */
export function violationReason(v: readonly Violation[]): string {
  if (v.length === 0) return '';
  const first = `${v[0]!.path}: ${v[0]!.message}`;
  return v.length > 1 ? `${first} (+${v.length - 1} more)` : first;
}

/** Kafka headers on events a plan found violations in (read by the history sink). */
export const PLAN_HEADERS = {
  /** JSON: Violation[] */
  violations: 'cdp-plan-violations',
  /** The plan's mode when the event was checked. */
  mode: 'cdp-plan-mode',
  /** The plan's version when the event was checked. */
  version: 'cdp-plan-version',
} as const;
