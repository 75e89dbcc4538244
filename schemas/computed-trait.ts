// Computed traits: an aggregate (count, sum, min, max, last) of one event's property over a
// trailing window, kept per profile in Redis by the processor (apply-event.lua) and read by
// the query service. What both sides share lives here: the input schema, how a definition
// maps to its Redis storage, the bucket width, and how a value is read from the buckets.
import { createHash } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { checkShape, DefinitionInputError, NAME_PATTERN, parsePath, valueAt } from './definition-input.ts';
import { compileCondition, type EventCondition, parseWindow, RuleError } from './rules.ts';

export const COMPUTED_KINDS = ['count', 'sum', 'min', 'max', 'last'] as const;
export type ComputedKind = (typeof COMPUTED_KINDS)[number];

/** Computed traits per workspace. */
export const MAX_COMPUTED_TRAITS = 100;
/** A `last` value longer than this (as JSON) is not kept: a trait is a small value. */
export const MAX_LAST_VALUE_BYTES = 4096;
/** Numbers beyond this are not aggregated (a sum must never overflow inside the Lua script). */
export const MAX_ABS_VALUE = 1e15;

export const ComputedTraitInput = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN }),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    kind: Type.Union(COMPUTED_KINDS.map((k) => Type.Literal(k))),
    /** Track event name. */
    event: Type.String({ minLength: 1, maxLength: 512 }),
    /** Dotted path into the event's properties; required unless kind is count. */
    property: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    /** JSON Logic filter on the event's properties (as event_count's third argument). */
    where: Type.Optional(Type.Unknown()),
    /** Trailing window such as `30d` (s, m, h, d; at most 400d); all time when absent. */
    window: Type.Optional(Type.String({ maxLength: 16 })),
  },
  { additionalProperties: false },
);
export type ComputedTraitInput = Static<typeof ComputedTraitInput>;
const inputCheck = TypeCompiler.Compile(ComputedTraitInput);

export interface ComputedTraitDefinition extends ComputedTraitInput {
  id: string;
  workspaceId: string;
  version: number;
  createdAt: string;
  updatedAt: string;
}

/** Validates an API body; throws DefinitionInputError naming the field. */
export function checkComputedTraitInput(body: unknown): ComputedTraitInput {
  checkShape(inputCheck, body, {
    name: 'letters, digits and _, starting with a letter or _, at most 64 (it is read as computed.<name>)',
    kind: `one of ${COMPUTED_KINDS.join(', ')}`,
  });
  const input = body as ComputedTraitInput;
  if (input.window !== undefined && parseWindow(input.window) === undefined)
    throw new DefinitionInputError(
      `window: bad window ${JSON.stringify(input.window)}: use a number with s, m, h or d, at most 400d`,
    );
  if (input.kind !== 'count' && input.property === undefined)
    throw new DefinitionInputError(`property: required for kind ${input.kind}`);
  if (input.property !== undefined && parsePath(input.property) === undefined)
    throw new DefinitionInputError('property: a dotted path such as "revenue" or "cart.total"');
  try {
    compileCondition(input.event, input.where ?? null, '');
  } catch (err) {
    if (err instanceof RuleError) throw new DefinitionInputError(`where${err.path}: ${err.detail}`);
    throw err;
  }
  return input;
}

/** Bucket width for a window: exact enough for it, few enough to keep. 0 = one all-time bucket. */
export function bucketMsOf(windowMs: number): number {
  if (windowMs === 0) return 0;
  if (windowMs <= 3_600_000) return 1000;
  if (windowMs <= 2 * 86_400_000) return 60_000;
  return 3_600_000;
}

/** A definition compiled for the processor and the reader. */
export interface CompiledComputedTrait {
  def: ComputedTraitDefinition;
  /**
   * Names the per-profile storage: a hash of what the value means (kind, event, property,
   * filter, window), so a rename keeps the data and a change of meaning starts afresh.
   */
  storageId: string;
  kind: ComputedKind;
  windowMs: number;
  bucketMs: number;
  condition: EventCondition;
  /** The value an event contributes (as passed to Lua), or undefined when it contributes none. */
  contribution(properties: Record<string, unknown>): string | undefined;
}

export function compileComputedTrait(def: ComputedTraitDefinition): CompiledComputedTrait {
  const windowMs = def.window === undefined ? 0 : (parseWindow(def.window) ?? 0);
  const path = def.property === undefined ? undefined : parsePath(def.property);
  const storageId = createHash('sha256')
    .update(JSON.stringify([def.kind, def.event, def.property ?? null, def.where ?? null, windowMs]))
    .digest('base64url')
    .slice(0, 16)
    .replace(/[-_]/g, 'x');
  const contribution = (properties: Record<string, unknown>): string | undefined => {
    const v = path ? valueAt(properties, path) : undefined;
    switch (def.kind) {
      case 'count':
        // with a property, only events that carry it count
        return path && (v === undefined || v === null) ? undefined : '1';
      case 'sum':
      case 'min':
      case 'max': {
        const n = toNumber(v);
        return n === undefined ? undefined : String(n);
      }
      case 'last': {
        if (v === undefined || v === null) return undefined;
        const json = JSON.stringify(v);
        return json.length > MAX_LAST_VALUE_BYTES ? undefined : json;
      }
      default: {
        const never: never = def.kind;
        throw new Error(`unknown computed trait kind ${String(never)}`);
      }
    }
  };
  return {
    def,
    storageId,
    kind: def.kind,
    windowMs,
    bucketMs: bucketMsOf(windowMs),
    condition: compileCondition(def.event, def.where ?? null, ''),
    contribution,
  };
}

/** A finite number, or a string holding one (SDKs often send amounts as strings). */
function toNumber(v: unknown): number | undefined {
  let n: number | undefined;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^\s*-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(v)) n = Number(v);
  return n !== undefined && Number.isFinite(n) && Math.abs(n) <= MAX_ABS_VALUE ? n : undefined;
}

/**
 * The value now, from the profile's storage hash (apply-event.lua): bucket start → count,
 * sum, min or max; for `last`, `v` (JSON) and `t` (event time). A bucket counts while its
 * end is after `now − window`, so a value leaves at most one bucket width late. A count
 * with nothing in the window is 0; the other kinds are null.
 */
export function computedValue(
  c: Pick<CompiledComputedTrait, 'kind' | 'windowMs' | 'bucketMs'>,
  fields: Record<string, string>,
  nowMs: number,
): unknown {
  const from = nowMs - c.windowMs;
  if (c.kind === 'last') {
    if (fields.t === undefined || fields.v === undefined) return null;
    if (c.windowMs > 0 && Number(fields.t) <= from) return null;
    try {
      return JSON.parse(fields.v);
    } catch {
      return null;
    }
  }
  let acc: number | null = null;
  for (const [k, raw] of Object.entries(fields)) {
    if (k.startsWith('_')) continue;
    if (c.windowMs > 0 && Number(k) + c.bucketMs <= from) continue;
    const v = Number(raw);
    if (!Number.isFinite(v)) continue;
    if (acc === null) acc = v;
    else if (c.kind === 'count' || c.kind === 'sum') acc += v;
    else if (c.kind === 'min') acc = Math.min(acc, v);
    else acc = Math.max(acc, v);
  }
  return c.kind === 'count' ? (acc ?? 0) : acc;
}

/**
 * When time alone next changes the value (the oldest bucket, or the last value, leaving the
 * window), or null for an all-time value or one with nothing in the window.
 */
export function computedDeadline(
  c: Pick<CompiledComputedTrait, 'kind' | 'windowMs' | 'bucketMs'>,
  fields: Record<string, string>,
  nowMs: number,
): number | null {
  if (c.windowMs === 0) return null;
  if (c.kind === 'last') {
    const leaves = Number(fields.t) + c.windowMs;
    return fields.t !== undefined && leaves > nowMs ? leaves : null;
  }
  let next: number | null = null;
  for (const k of Object.keys(fields)) {
    if (k.startsWith('_')) continue;
    const leaves = Number(k) + c.bucketMs + c.windowMs;
    if (leaves > nowMs && (next === null || leaves < next)) next = leaves;
  }
  return next;
}
