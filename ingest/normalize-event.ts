// Pure core of the ingest edge: one SDK payload in, one normalised envelope out, or an
// IngestError naming the field that is wrong. No I/O.

import { randomUUID } from 'node:crypto';
import {
  EVENT_TYPES,
  type EventType,
  incomingEventCheck,
  isJunkId,
  type NormalizedEvent,
} from '../schemas/event.ts';
import { shapeProblem } from '../schemas/json-shape.ts';
import { firstSchemaError } from '../schemas/schema-error.ts';
import { traitOpsError } from '../schemas/trait-ops.ts';
import { IngestError } from './ingest-error.ts';

export const MAX_EVENT_BYTES = 32 * 1024;
/** Event times accepted by default: about five years back, one day ahead (CDP_INGEST_MAX_*). */
export const DEFAULT_TIME_BOUNDS: TimeBounds = { maxPastMs: 1826 * 86_400_000, maxFutureMs: 86_400_000 };
/** Years ClickHouse stores (the history's own check); any client date outside is refused here. */
const STORABLE_YEARS = [1900, 2299] as const;
/** Batch-level objects already shape-checked (they are shared by every event of a batch). */
const shapeChecked = new WeakSet<object>();

/** How far an event's time may lie from the server's clock, before and after. */
export interface TimeBounds {
  maxPastMs: number;
  maxFutureMs: number;
}

export interface NormalizeContext {
  workspaceId: string;
  /** Type implied by the route (`/v1/track`); `batch` items carry their own. */
  routeType?: EventType;
  receivedAt: Date;
  ip?: string;
  /** Batch-level context and integrations, merged under each event's own. */
  batchContext?: Record<string, unknown>;
  batchIntegrations?: Record<string, unknown>;
  /** Default DEFAULT_TIME_BOUNDS. */
  timeBounds?: TimeBounds;
  /** Prefix for error messages, e.g. `batch[3]`. */
  label?: string;
  /** The kind of the write key that sent it (stamped on the envelope; default server). */
  keyKind?: 'server' | 'client';
  /** Per-profile trait bounds: an event that alone sets more is refused. */
  traitLimits?: TraitLimits;
}

export interface TraitLimits {
  maxTraits: number;
  /** Bytes of trait names plus their JSON values (UTF-8), as the processor counts them. */
  maxTraitBytes: number;
}

function fail(msg: string): never {
  throw new IngestError(400, msg);
}

export function normalizeEvent(raw: unknown, ctx: NormalizeContext): NormalizedEvent {
  const at = ctx.label ? `${ctx.label}.` : '';
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    fail(`${ctx.label ?? 'event'}: must be a JSON object`);
  const shape = checkShape(raw as object);
  if (shape) fail(`${at}${shape}`);
  // The batch-level context and integrations are merged into every event of a batch, so
  // they get the same bounds (and `__proto__` removal) as the event itself; without this a
  // deeply nested batch context overflowed the stack in JSON.stringify (a 500).
  checkBatchObject('context', ctx.batchContext);
  checkBatchObject('integrations', ctx.batchIntegrations);
  const invalid = firstSchemaError(incomingEventCheck, raw);
  if (invalid) fail(`${at}${invalid.path || 'event'}: ${invalid.message}`);
  const ev = raw as Record<string, unknown> & import('../schemas/event.ts').IncomingEvent;

  const type = (ctx.routeType ?? ev.type) as EventType | undefined;
  if (!type || !(EVENT_TYPES as readonly string[]).includes(type))
    fail(`${at}type: must be one of ${EVENT_TYPES.join(', ')}`);
  if (ctx.routeType && ev.type && ev.type !== ctx.routeType)
    // quoted and cut short: the error must not echo an arbitrarily large client string
    fail(`${at}type: ${JSON.stringify(ev.type.slice(0, 64))} sent to the ${ctx.routeType} endpoint`);

  const userId = cleanId(ev.userId);
  const anonymousId = cleanId(ev.anonymousId);
  if (type === 'alias') {
    if (!userId) fail(`${at}userId: required for alias`);
    if (!cleanId(ev.previousId)) fail(`${at}previousId: required for alias`);
  } else if (!userId && !anonymousId) fail(`${at}userId or anonymousId: one is required`);
  if (type === 'track' && !ev.event) fail(`${at}event: required for track`);
  if (type === 'group' && !cleanId(ev.groupId)) fail(`${at}groupId: required for group`);

  const receivedAt = ctx.receivedAt;
  const timestamp = parseTime(ev.timestamp, at, 'timestamp');
  const sentAt = parseTime(ev.sentAt, at, 'sentAt');
  const original = parseTime(ev.originalTimestamp, at, 'originalTimestamp');
  // Correct the client's clock skew the way Segment does when no explicit timestamp is
  // given: the event happened (sentAt - originalTimestamp) before we received it.
  const when =
    timestamp ??
    (sentAt && original
      ? new Date(receivedAt.getTime() - (sentAt.getTime() - original.getTime()))
      : (original ?? receivedAt));
  // Far-apart sentAt and originalTimestamp (each a valid date) can push the corrected time
  // outside the Date range; toISOString() would then throw a RangeError (a 500).
  if (Number.isNaN(when.getTime())) fail(`${at}sentAt: too far from originalTimestamp`);
  // Time windows, merges (last write wins by event time) and the history must never see
  // year 2999 or 1970: the event's time, as corrected, must lie near the server's clock.
  if (when !== receivedAt)
    checkTimeBounds(
      when,
      receivedAt,
      ctx.timeBounds ?? DEFAULT_TIME_BOUNDS,
      `${at}${timestamp ? 'timestamp' : 'originalTimestamp'}`,
      !timestamp && !!sentAt,
    );

  const context: Record<string, unknown> = ctx.batchContext
    ? { ...ctx.batchContext, ...(ev.context ?? {}) }
    : { ...(ev.context ?? {}) };
  if (context.ip === undefined && ctx.ip) context.ip = ctx.ip;
  // set only by a tracking plan in flag mode (ingest/tracking-plan.ts), never by a client
  delete context.violations;

  const out: NormalizedEvent = {
    workspaceId: ctx.workspaceId,
    type: type as EventType,
    messageId: ev.messageId ?? randomUUID(),
    userId: userId ?? null,
    anonymousId: anonymousId ?? null,
    properties: ev.properties ?? {},
    traits: ev.traits ?? {},
    context,
    integrations: ctx.batchIntegrations
      ? { ...ctx.batchIntegrations, ...(ev.integrations ?? {}) }
      : { ...(ev.integrations ?? {}) },
    timestamp: when === receivedAt ? isoOf(receivedAt) : when.toISOString(),
    receivedAt: isoOf(receivedAt),
    // from the key, after everything taken from the body: a body cannot choose it
    keyKind: ctx.keyKind ?? 'server',
  };
  if (ev.event) out.event = ev.event;
  if (typeof ev.name === 'string') out.name = ev.name;
  // page/screen `category` is a top-level field some SDKs (RudderStack) send only there;
  // like Segment, keep it in properties so it is not lost
  if (
    (type === 'page' || type === 'screen') &&
    typeof ev.category === 'string' &&
    out.properties.category === undefined
  )
    out.properties = { ...out.properties, category: ev.category };
  const previousId = cleanId(ev.previousId);
  if (previousId) out.previousId = previousId;
  const groupId = cleanId(ev.groupId);
  if (groupId) out.groupId = groupId;
  if (original) out.originalTimestamp = original.toISOString();
  if (sentAt) out.sentAt = sentAt.toISOString();
  if (ctx.traitLimits) {
    const over = traitsOverLimit(out, ctx.traitLimits);
    if (over) fail(`${at}traits: ${over}`);
  }
  if (out.context.traitOps !== undefined) {
    const why = traitOpsError(out.context.traitOps, out.type, out.keyKind);
    if (why) fail(`${at}context.traitOps${why}`);
  }
  return out;
}

/**
 * Why the profile traits an event sets (`context.traits`, and an identify's traits, as the
 * processor applies them) exceed the per-profile bounds on their own; undefined if not.
 */
export function traitsOverLimit(e: NormalizedEvent, limits: TraitLimits): string | undefined {
  const ctxTraits = e.context.traits;
  const fromContext =
    ctxTraits && typeof ctxTraits === 'object' && !Array.isArray(ctxTraits)
      ? (ctxTraits as Record<string, unknown>)
      : {};
  const names = new Set(Object.keys(fromContext));
  if (e.type === 'identify') for (const k of Object.keys(e.traits)) names.add(k);
  if (names.size > limits.maxTraits)
    return `${names.size} traits, over the per-profile limit of ${limits.maxTraits}`;
  // an event is at most 32 KB: count bytes only when the bound is that low
  if (limits.maxTraitBytes >= MAX_EVENT_BYTES) return undefined;
  let bytes = 0;
  for (const k of names) {
    const v = e.type === 'identify' && k in e.traits ? e.traits[k] : fromContext[k];
    if (v === undefined) continue;
    bytes += Buffer.byteLength(k) + Buffer.byteLength(JSON.stringify(v));
  }
  return bytes > limits.maxTraitBytes
    ? `${bytes} bytes of traits, over the per-profile limit of ${limits.maxTraitBytes}`
    : undefined;
}

function cleanId(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  const s = String(v).trim();
  return isJunkId(s) ? undefined : s;
}

function parseTime(v: unknown, at: string, field: string): Date | undefined {
  if (v === null || v === undefined || v === '') return undefined;
  const d = new Date(String(v));
  if (Number.isNaN(d.getTime())) fail(`${at}${field}: not an ISO 8601 date`);
  const year = d.getUTCFullYear();
  if (year < STORABLE_YEARS[0] || year > STORABLE_YEARS[1])
    fail(`${at}${field}: ${d.toISOString()} is outside the years ${STORABLE_YEARS[0]}–${STORABLE_YEARS[1]}`);
  return d;
}

function checkTimeBounds(
  when: Date,
  receivedAt: Date,
  bounds: TimeBounds,
  label: string,
  corrected: boolean,
): void {
  const ahead = when.getTime() - receivedAt.getTime();
  const how = corrected ? ' (corrected for clock skew by sentAt)' : '';
  if (ahead > bounds.maxFutureMs)
    fail(
      `${label}: ${when.toISOString()}${how} is more than ${duration(bounds.maxFutureMs)} ahead of the server's clock`,
    );
  if (-ahead > bounds.maxPastMs)
    fail(`${label}: ${when.toISOString()}${how} is more than ${duration(bounds.maxPastMs)} in the past`);
}

function duration(ms: number): string {
  const [n, unit] =
    ms % 86_400_000 === 0 && ms > 0
      ? [ms / 86_400_000, 'day']
      : ms % 3_600_000 === 0
        ? [ms / 3_600_000, 'hour']
        : [ms, 'm'];
  return unit === 'm' ? `${n} ms` : `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** Every event of a request shares one receivedAt: format it once, not once per event. */
let lastIso: { date: Date; iso: string } | undefined;
function isoOf(d: Date): string {
  if (lastIso?.date !== d) lastIso = { date: d, iso: d.toISOString() };
  return lastIso.iso;
}

function checkBatchObject(name: string, obj: Record<string, unknown> | undefined): void {
  if (!obj || shapeChecked.has(obj)) return;
  const problem = checkShape(obj);
  if (problem) fail(`${name}: ${problem.replace(/^event: /, '')}`);
  shapeChecked.add(obj); // checked once per batch, not once per event
}

/**
 * Bounds nesting depth and key count, and drops `__proto__` keys so no later merge can
 * reach an object's prototype (schemas/json-shape.ts, shared with bulk imports). Returns a
 * problem description, or undefined.
 */
function checkShape(root: object): string | undefined {
  const problem = shapeProblem(root);
  return problem && `${problem.path || 'event'}: ${problem.message}`;
}
