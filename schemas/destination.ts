// Destinations (issue #22): where a workspace's data goes besides campaigns. A destination
// subscribes to events (with a JSON Logic filter) or to segment changes, maps each one to a
// payload with a declarative mapping, and is delivered by its own consumer group
// (destinations/), so one slow or failing destination never holds another one back.
// Shared by the query API (validation, dry-run) and the destinations service (delivery).
import { randomBytes } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import jsonLogic from 'json-logic-js';
import { type Keyring, open as openSealed, type SealedBlob } from '../runtime/secrets-key.ts';
import { RenderBudgetError, renderBudget, templateError } from './liquid-template.ts';

/** Path segments that would reach an object's prototype: never read nor written. */
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'prototype', 'constructor']);
/** One segment of a source or output path: a name or an array index. */
const SEGMENT = /^[A-Za-z0-9_$@-]{1,128}$/;
export const MAX_MAPPING_FIELDS = 100;
export const MAX_PATH_DEPTH = 10;
export const MAX_LIQUID_BYTES = 10_000;
/** The whole mapping as JSON (constants included). */
export const MAX_MAPPING_BYTES = 64 * 1024;
/** One mapped item as JSON; larger ones are dead-lettered, never sent. */
export const MAX_ITEM_BYTES = 256 * 1024;
/** One request's body; a batch is cut before it would pass this. */
export const MAX_BODY_BYTES = 1024 * 1024;
export const MAX_BATCH_EVENTS = 500;
/**
 * The Liquid render time (ms) of one event's whole mapping, all its `{liquid}` fields together
 * (each also at most RENDER_LIMIT_MS): up to 100 fields may not cost 100 render limits.
 */
export const MAPPING_RENDER_BUDGET_MS = 250;
const MAX_FILTER_BYTES = 16 * 1024;
const MAX_FILTER_DEPTH = 20;

const FILTER_OPS = new Set([
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
  'all',
  'none',
  'some',
]);

const MappingValue = Type.Union([
  /** A path into the event (or segment change), e.g. `properties.revenue`, `context.page.url`. */
  Type.String({ minLength: 1, maxLength: 512 }),
  Type.Object({ const: Type.Unknown() }, { additionalProperties: false }),
  Type.Object(
    { liquid: Type.String({ minLength: 1, maxLength: MAX_LIQUID_BYTES }) },
    { additionalProperties: false },
  ),
]);
export type MappingValue = Static<typeof MappingValue>;

export const DestinationSource = Type.Union([
  Type.Object(
    {
      kind: Type.Literal('events'),
      /** JSON Logic over the event (`type`, `event`, `properties`, `traits`, `context`, …); truthy = delivered. */
      filter: Type.Optional(Type.Unknown()),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('segment_changes'),
      /** Only these segments' entries and exits; all segments when omitted. */
      segmentIds: Type.Optional(
        Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 100 }),
      ),
    },
    { additionalProperties: false },
  ),
]);
export type DestinationSource = Static<typeof DestinationSource>;

export const DestinationHttp = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2048 }),
    /** Standard Webhooks secret, `whsec_<base64>`; generated when omitted (kept on update when omitted). */
    secret: Type.Optional(Type.String({ pattern: '^whsec_[A-Za-z0-9+/]+={0,2}$', maxLength: 200 })),
    batch: Type.Optional(
      Type.Object(
        {
          maxEvents: Type.Integer({ minimum: 1, maximum: MAX_BATCH_EVENTS }),
          maxWaitMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** One deadline for the whole attempt (lookup, connect, headers, body). */
    timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 30_000 })),
  },
  { additionalProperties: false },
);

/** Built-in providers besides the plain webhook (`http`). */
export const DESTINATION_TYPES = ['http', 'hubspot', 'salesforce', 'audience'] as const;
export type DestinationType = (typeof DESTINATION_TYPES)[number];

export const DestinationHubspot = Type.Object(
  {
    /** Private-app access token; write-only (sealed at rest, never read back); kept on update when omitted. */
    token: Type.Optional(Type.String({ minLength: 1, maxLength: 500, pattern: '^[\\x21-\\x7e]+$' })),
    /** The unique contact property upserted by (default `email`). */
    idProperty: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_]{0,99}$' })),
  },
  { additionalProperties: false },
);

const SF_NAME = '^[A-Za-z][A-Za-z0-9_]{0,79}$';
/** Salesforce records upserted by an external id field (sObject Collections). */
export const DestinationSalesforce = Type.Object(
  {
    /** The external id field upserted by, e.g. `External_Id__c` (or `Email` if marked as one). */
    externalIdField: Type.String({ pattern: SF_NAME }),
    /** The sObject (default Contact). */
    object: Type.Optional(Type.String({ pattern: SF_NAME })),
    /** OAuth access token; write-only like hubspot.token; kept on update when omitted. */
    token: Type.Optional(Type.String({ minLength: 1, maxLength: 2000, pattern: '^[\\x21-\\x7e]+$' })),
    /** The REST API version in the path (default v60.0). */
    apiVersion: Type.Optional(Type.String({ pattern: '^v[0-9]{2,3}\\.0$' })),
  },
  { additionalProperties: false },
);

/** An ads custom audience kept in step with segments (Meta's Marketing API shape). */
export const DestinationAudience = Type.Object(
  {
    audienceId: Type.String({ pattern: '^[0-9]{1,32}$' }),
    /** Access token; write-only like hubspot.token; kept on update when omitted. */
    token: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, pattern: '^[\\x21-\\x7e]+$' })),
    /** Which trait matches people (hashed before it leaves): `email` (default) or `phone` (E.164). */
    identifier: Type.Optional(Type.Union([Type.Literal('email'), Type.Literal('phone')])),
    /** The Graph API version in the path (default v21.0). */
    apiVersion: Type.Optional(Type.String({ pattern: '^v[0-9]{1,3}\\.[0-9]{1,2}$' })),
  },
  { additionalProperties: false },
);

export const DestinationInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    /**
     * `http`: a signed webhook to `http.url`; `hubspot`: contacts upserted through HubSpot's API
     * at `http.url`; `salesforce`: records upserted by an external id at the instance
     * `http.url`; `audience`: segment members added to / removed from an ads custom audience
     * through the Graph API at `http.url`.
     */
    type: Type.Union(DESTINATION_TYPES.map((t) => Type.Literal(t))),
    source: DestinationSource,
    /** Output field (dotted for nesting) → path | {const} | {liquid}; the whole event when omitted. */
    mapping: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 512 }), MappingValue)),
    http: DestinationHttp,
    hubspot: Type.Optional(DestinationHubspot),
    salesforce: Type.Optional(DestinationSalesforce),
    audience: Type.Optional(DestinationAudience),
    /** Requests per second to this destination (a token bucket per worker process). */
    rateLimit: Type.Optional(
      Type.Object(
        { perSecond: Type.Number({ minimum: 0.01, maximum: 10_000 }) },
        { additionalProperties: false },
      ),
    ),
    retry: Type.Optional(
      Type.Object(
        {
          /** Attempts before a delivery is dead-lettered (default 8). */
          maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 20 })),
          /** Wait before the 2nd attempt, doubled each time, capped at 10 minutes (default 1000). */
          initialBackoffMs: Type.Optional(Type.Integer({ minimum: 50, maximum: 600_000 })),
        },
        { additionalProperties: false },
      ),
    ),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('paused')])),
  },
  { additionalProperties: false },
);
export type DestinationInput = Static<typeof DestinationInput>;
export const destinationInputCheck = TypeCompiler.Compile(DestinationInput);

export interface DestinationDefinition {
  id: string;
  workspaceId: string;
  name: string;
  type: DestinationType;
  source: DestinationSource;
  mapping?: Record<string, MappingValue>;
  http: {
    url: string;
    /**
     * A webhook's signing secret in clear: stored so only when CDP_SECRETS_KEY was not set
     * (else '' and `sealedSecret`); '' for a built-in, which is not signed.
     */
    secret: string;
    /** The signing secret sealed with CDP_SECRETS_KEY (bound to the destination); never returned. */
    sealedSecret?: SealedBlob;
    batch?: { maxEvents: number; maxWaitMs?: number };
    timeoutMs?: number;
  };
  hubspot?: { idProperty: string };
  salesforce?: { externalIdField: string; object: string; apiVersion: string };
  audience?: { audienceId: string; identifier: 'email' | 'phone'; apiVersion: string };
  /** A provider's credentials (the HubSpot token), sealed with CDP_SECRETS_KEY; never returned by the API. */
  credentials?: SealedBlob;
  rateLimit?: { perSecond: number };
  retry?: { maxAttempts?: number; initialBackoffMs?: number };
  status: 'active' | 'paused';
  version: number;
  createdAt: string;
  updatedAt: string;
}

export const DESTINATION_DEFAULTS = {
  maxAttempts: 8,
  initialBackoffMs: 1000,
  maxBackoffMs: 600_000,
  timeoutMs: 10_000,
  maxEvents: 1,
  maxWaitMs: 0,
} as const;

/** The consumer group of a destination: derived from its id, so it is its own. */
export function destinationGroup(topicPrefix: string, destinationId: string): string {
  return `${topicPrefix ? `${topicPrefix}.` : ''}cdp-destination-${destinationId}`;
}

/** What a destination's sealed credentials are bound to: opened for another one, they fail. */
export const destinationAad = (workspaceId: string, destinationId: string) =>
  `${workspaceId}|destination|${destinationId}`;

/** What a webhook's sealed signing secret is bound to (not the token's: neither opens as the other). */
export const destinationSecretAad = (workspaceId: string, destinationId: string) =>
  `${destinationAad(workspaceId, destinationId)}|http.secret`;

/** A webhook's signing secret, opened when sealed; UnreadableSecret when no key at hand opens it. */
export function signingSecretOf(ring: Keyring, def: DestinationDefinition): string {
  return def.http.sealedSecret
    ? openSealed(ring, def.http.sealedSecret, destinationSecretAad(def.workspaceId, def.id))
    : def.http.secret;
}

/** How the API shows a destination's `http`: the signing secret never, only that there is one. */
export type PublicDestinationHttp = Omit<DestinationDefinition['http'], 'secret' | 'sealedSecret'> & {
  secretSet?: boolean;
};

/**
 * A definition as the API (GET, the list, the audit log) shows it: write-only secrets never,
 * the webhook's signing secret only as `http.secretSet`, a built-in's sealed credentials only
 * as `credentialsSet` (a built-in's unused signing secret not at all).
 */
export type PublicDestination = Omit<DestinationDefinition, 'credentials' | 'http'> & {
  http: PublicDestinationHttp;
  credentialsSet?: boolean;
};

export function publicDestination(def: DestinationDefinition): PublicDestination {
  const { credentials, http, ...rest } = def;
  const { secret, sealedSecret, ...h } = http;
  return def.type === 'http'
    ? {
        ...rest,
        http: {
          ...h,
          secretSet: sealedSecret !== undefined || (typeof secret === 'string' && secret !== ''),
        },
      }
    : { ...rest, http: h, credentialsSet: credentials !== undefined };
}

export function generateDestinationSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

export class DestinationError extends Error {}

/** `a.b.0.c` → its segments, or a reason it is refused. */
function splitPath(path: string, what: string): string[] {
  const parts = path.split('.');
  if (parts.length > MAX_PATH_DEPTH) throw new DestinationError(`${what}: deeper than ${MAX_PATH_DEPTH}`);
  for (const p of parts) {
    if (FORBIDDEN_SEGMENTS.has(p)) throw new DestinationError(`${what}: "${p}" is not allowed in a path`);
    if (!SEGMENT.test(p)) throw new DestinationError(`${what}: "${p}" is not a valid path segment`);
  }
  return parts;
}

function filterError(node: unknown, depth: number): string | undefined {
  if (depth > MAX_FILTER_DEPTH) return `nested deeper than ${MAX_FILTER_DEPTH}`;
  if (Array.isArray(node)) {
    for (const n of node) {
      const why = filterError(n, depth + 1);
      if (why) return why;
    }
    return undefined;
  }
  if (node === null || typeof node !== 'object') return undefined;
  const keys = Object.keys(node);
  if (keys.length !== 1) return 'an operation is an object with exactly one operator';
  const op = keys[0]!;
  if (!FILTER_OPS.has(op)) return `unknown operator "${op}"`;
  const args = (node as Record<string, unknown>)[op];
  if (op === 'var') {
    const path = Array.isArray(args) ? args[0] : args;
    if (typeof path === 'string' && path !== '') {
      for (const p of path.split('.'))
        if (FORBIDDEN_SEGMENTS.has(p)) return `"${p}" is not allowed in a var path`;
    }
  }
  return filterError(args, depth + 1);
}

/**
 * Checks what the schema cannot: paths, output names, Liquid syntax, sizes, the filter's
 * operators. Throws DestinationError naming the field.
 */
export function checkDestination(input: DestinationInput): void {
  const mapping = input.mapping;
  if (mapping) {
    const fields = Object.keys(mapping);
    if (fields.length === 0) throw new DestinationError('mapping: at least one field (or leave it out)');
    if (fields.length > MAX_MAPPING_FIELDS)
      throw new DestinationError(`mapping: at most ${MAX_MAPPING_FIELDS} fields`);
    if (Buffer.byteLength(JSON.stringify(mapping)) > MAX_MAPPING_BYTES)
      throw new DestinationError(`mapping: over ${MAX_MAPPING_BYTES} bytes`);
    const outputs = new Set<string>();
    for (const field of fields) {
      const out = splitPath(field, `mapping.${field}`);
      // "a" and "a.b" cannot both be written
      for (let i = 1; i < out.length; i++)
        if (outputs.has(out.slice(0, i).join('.')))
          throw new DestinationError(`mapping.${field}: conflicts with ${out.slice(0, i).join('.')}`);
      for (const o of outputs)
        if (o.startsWith(`${field}.`)) throw new DestinationError(`mapping.${field}: conflicts with ${o}`);
      outputs.add(field);
      const v = mapping[field]!;
      if (typeof v === 'string') splitPath(v, `mapping.${field}`);
      else if ('liquid' in v) {
        const why = templateError(v.liquid);
        if (why) throw new DestinationError(`mapping.${field}: invalid Liquid template: ${why}`);
      }
    }
  }
  if (input.source.kind === 'events' && input.source.filter !== undefined) {
    if (Buffer.byteLength(JSON.stringify(input.source.filter)) > MAX_FILTER_BYTES)
      throw new DestinationError(`source.filter: over ${MAX_FILTER_BYTES} bytes`);
    const why = filterError(input.source.filter, 0);
    if (why) throw new DestinationError(`source.filter: ${why}`);
  }
}

/** Whether an event passes a destination's filter (no filter: every event). */
export function passesFilter(filter: unknown, event: Record<string, unknown>): boolean {
  if (filter === undefined) return true;
  return Boolean(jsonLogic.apply(filter as jsonLogic.RulesLogic, event));
}

/** The value at a path of own properties, or undefined. */
function readPath(root: unknown, parts: readonly string[]): unknown {
  let v: unknown = root;
  for (const p of parts) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, p)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

function writePath(out: Record<string, unknown>, parts: readonly string[], value: unknown): void {
  let o = out;
  for (let i = 0; i < parts.length - 1; i++) {
    const p = parts[i]!;
    let next = Object.hasOwn(o, p) ? o[p] : undefined;
    if (next === null || typeof next !== 'object') {
      next = {};
      Object.defineProperty(o, p, { value: next, enumerable: true, writable: true, configurable: true });
    }
    o = next as Record<string, unknown>;
  }
  // defineProperty: even a name the checks missed could never reach a prototype setter
  Object.defineProperty(o, parts[parts.length - 1]!, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/**
 * Maps one event (or segment change) with a mapping: the mapped object, or the source itself
 * when there is no mapping. Throws DestinationError (a path, a Liquid render error, the
 * render budget spent, an item over MAX_ITEM_BYTES).
 *
 * The `{liquid}` fields share one render budget (MAPPING_RENDER_BUDGET_MS): each renders with
 * what the fields before it left (at most RENDER_LIMIT_MS), and a field that runs out, or
 * finds nothing left, fails the mapping naming that field. The time counted is the time spent
 * in the renders (`now`, injectable for tests), not the time between fields.
 */
export async function applyMapping(
  mapping: Record<string, MappingValue> | undefined,
  source: Record<string, unknown>,
  opts: { budgetMs?: number; now?: () => number } = {},
): Promise<unknown> {
  let out: unknown = source;
  if (mapping) {
    const budget = renderBudget(opts.budgetMs ?? MAPPING_RENDER_BUDGET_MS, {
      ...(opts.now ? { now: opts.now } : {}),
      unit: 'event',
    });
    const o: Record<string, unknown> = {};
    for (const [field, v] of Object.entries(mapping)) {
      const target = splitPath(field, `mapping.${field}`);
      let value: unknown;
      if (typeof v === 'string') value = readPath(source, splitPath(v, `mapping.${field}`));
      else if ('const' in v) value = v.const;
      else {
        try {
          value = await budget.render(field, v.liquid, source);
        } catch (err) {
          // the budget's error names the field; a render error does not
          const message = (err as Error).message.split('\n')[0] ?? '';
          throw new DestinationError(
            err instanceof RenderBudgetError ? `mapping.${message}` : `mapping.${field}: ${message}`,
          );
        }
      }
      if (value !== undefined) writePath(o, target, value);
    }
    out = o;
  }
  const size = Buffer.byteLength(JSON.stringify(out) ?? 'null');
  if (size > MAX_ITEM_BYTES)
    throw new DestinationError(`mapped payload is ${size} bytes, over ${MAX_ITEM_BYTES}`);
  return out;
}

/** One item as it is sent: the id receivers dedupe on, what it came from, when, and the mapped data. */
export interface DeliveryItem {
  id: string;
  type: 'event' | 'segment_change';
  timestamp: string;
  data: unknown;
}

/** The request body of a delivery: one item alone, or `{batch: [...]}` when the destination batches. */
export function deliveryBody(items: readonly DeliveryItem[], batched: boolean): string {
  return JSON.stringify(batched ? { batch: items } : items[0]);
}
