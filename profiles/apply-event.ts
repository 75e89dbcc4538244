// Step: apply an event to the identity graph and profile in Redis (one Lua script, atomic
// per event, pipelined per batch by the caller).

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ChainableCommander, Result } from 'ioredis';
import type { Redis } from '../runtime/redis.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import { isJunkId } from '../schemas/event.ts';
import type { IdentityKind } from '../schemas/redis-keys.ts';
import { MAX_INCREMENT, MAX_SET_MEMBER, MAX_TRAIT_OPS } from '../schemas/trait-ops.ts';
import { decodeTrait, isoOfMs } from './read.ts';

const lua = (name: string) => readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');
/** profileState(), the state both scripts send back, goes in front of each. */
const STATE = lua('profile-state.lua');
const SCRIPT = STATE + lua('apply-event.lua');
const READ = STATE + lua('read-profile.lua');

export interface ProfileState {
  profileId: string;
  duplicate: boolean;
  created: boolean;
  firstSeenAt: string | null;
  lastSeenAt: string | null;
  traits: Record<string, unknown>;
  /** segment id → membership epoch (odd = member) */
  epochs: Record<string, number>;
  identities: string[];
  merged: string[];
  conflicts: string[];
  /** Identifiers (`kind:value`) and traits (`trait:name`) refused past the per-profile bounds. */
  limited: string[];
  /** What a client key was refused on a known person: links `kind:value`, traits `trait:name`. */
  refused: string[];
  /** condition id → times (ms) of the profile's matching events, oldest first */
  times: Record<string, number[]>;
  /** Identity-graph version after this event (0: the event changed no link); see apply-event.lua. */
  identityVersion: number;
  /**
   * The profile's revision when this state was read ('0' when unknown): a record made on
   * this state tells whether the profile changed since (record-membership.lua).
   */
  revision: string;
  /**
   * False for an event followed by another of the same profile in the same call: only
   * what the event did is known (the fields above traits), not the profile's state.
   */
  complete: boolean;
}

/** The counted conditions an event matches, each with how long its times are kept. */
export interface ConditionPlan {
  add: Array<[id: string, retentionMs: number]>;
  /**
   * Computed-trait aggregates the event updates (processor/computed-registry.ts): the value
   * is a number as a string ('1' for a count) or, for `last`, JSON. windowMs 0 = all time.
   */
  agg?: Array<[storageId: string, kind: string, value: string, bucketMs: number, windowMs: number]>;
  /** Lead-score counters the event adds 1 to, decayed by their half-life (0: none). */
  dec?: Array<[counterId: string, halfLifeMs: number]>;
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cdpApplyEvent(tag: string, ...args: (string | number)[]): Result<unknown[], Context>;
    cdpReadProfile(tag: string, pid: string): Result<unknown[], Context>;
  }
}

export function defineApplyEvent(redis: Redis): void {
  redis.defineCommand('cdpApplyEvent', { numberOfKeys: 1, lua: SCRIPT });
  redis.defineCommand('cdpReadProfile', { numberOfKeys: 1, lua: READ });
}

export interface ApplyOptions {
  dedupTtlSeconds: number;
  maxIdentities: number;
  newProfileId?: () => string;
  /** Extra "no id" values (lower case), on top of schemas/event.ts JUNK_IDS. */
  junkIds?: ReadonlySet<string>;
  /** context.externalIds types that link to the person (kind `ext.<type>`). */
  externalIdTypes?: ReadonlySet<string>;
  /**
   * Deployment default for client keys (a workspace's own setting in Redis wins):
   * `restricted` (default) or `trusted` (like server keys).
   */
  clientKeys?: 'restricted' | 'trusted';
  /** Traits a client key never changes on a known person; default email, phone, pushToken. */
  protectedTraits?: readonly string[];
  /** Traits per profile (default 1000) and their bytes, names + JSON values (default 1 MiB). */
  maxTraits?: number;
  maxTraitBytes?: number;
  /** Push devices kept per profile (default 20): a new one past it drops the least recently seen. */
  maxDevices?: number;
}

export const DEFAULT_PROTECTED_TRAITS = ['email', 'phone', 'pushToken'] as const;

/** The script's options argument: one JSON string per options object, built once. */
const optionsJson = new WeakMap<ApplyOptions, string>();
function scriptOptions(opts: ApplyOptions): string {
  let json = optionsJson.get(opts);
  if (json === undefined) {
    json = JSON.stringify({
      clientKeys: opts.clientKeys ?? 'restricted',
      protected: opts.protectedTraits ?? DEFAULT_PROTECTED_TRAITS,
      maxTraits: opts.maxTraits ?? 1000,
      maxTraitBytes: opts.maxTraitBytes ?? 1024 * 1024,
      maxDevices: opts.maxDevices ?? DEFAULT_MAX_DEVICES,
    });
    optionsJson.set(opts, json);
  }
  return json;
}

/**
 * Whose state a script call sends back (for the last event of each profile in the call):
 * every profile's, or only of profiles whose identity it changed (a workspace with no
 * segments evaluates nothing, so it only publishes identity changes). The others come back
 * with `complete` false.
 */
export type ReadState = 'all' | 'changed';

const MAX_EXTERNAL_IDS = 20;
const MAX_ID_LENGTH = 512;

/**
 * The identifiers an event links, in the order the script considers them (user first):
 * userId, anonymousId, the normalised email trait, configured external ids
 * (`ext.<type>`), and for alias the previousId. Junk values are left out.
 */
export function identifiersOf(
  e: NormalizedEvent,
  opts: Pick<ApplyOptions, 'junkIds' | 'externalIdTypes'> = {},
): Array<[IdentityKind | 'prev', string]> {
  const junk = (v: string) => isJunkId(v) || (opts.junkIds?.has(v.trim().toLowerCase()) ?? false);
  const out: Array<[IdentityKind | 'prev', string]> = [];
  if (e.userId && !junk(e.userId)) out.push(['user', e.userId]);
  if (e.anonymousId && !junk(e.anonymousId)) out.push(['anon', e.anonymousId]);
  const email = emailOf(e);
  if (email && !junk(email)) out.push(['email', email]);
  const ext = e.context.externalIds;
  if (opts.externalIdTypes && opts.externalIdTypes.size > 0 && Array.isArray(ext)) {
    let n = 0;
    for (const x of ext) {
      if (n >= MAX_EXTERNAL_IDS) break;
      if (!x || typeof x !== 'object') continue;
      const { id, type } = x as { id?: unknown; type?: unknown };
      if (typeof type !== 'string' || !opts.externalIdTypes.has(type)) continue;
      const value = typeof id === 'number' && Number.isFinite(id) ? String(id) : id;
      if (typeof value !== 'string' || value.length > MAX_ID_LENGTH || junk(value)) continue;
      out.push([`ext.${type}`, value]);
      n++;
    }
  }
  if (e.type === 'alias' && e.previousId && !junk(e.previousId)) out.push(['prev', e.previousId]);
  return out;
}

function emailOf(e: NormalizedEvent): string | undefined {
  const ctxTraits = e.context.traits as Record<string, unknown> | undefined;
  const raw = e.traits.email ?? ctxTraits?.email;
  if (typeof raw !== 'string') return undefined;
  const email = raw.trim().toLowerCase();
  return /^[^\s@]+@[^\s@]+$/.test(email) ? email : undefined;
}

/**
 * The trait operations of an identify (`context.traitOps`, from a server key or the journey
 * runner): `{increment: {trait: number}, add: {trait: [string]}, remove: {trait: [string]}}`,
 * flattened to `[op, trait, jsonArg, ...]` for apply-event.lua. Malformed parts are dropped
 * (ingest refuses them with a 400 before they get here: schemas/trait-ops.ts).
 */
export function traitOpsOf(e: NormalizedEvent): string[] {
  const raw = e.context.traitOps;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return [];
  const out: string[] = [];
  const o = raw as Record<string, unknown>;
  const each = (v: unknown, f: (k: string, x: unknown) => void) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return;
    for (const [k, x] of Object.entries(v)) if (k !== '__proto__' && k.length > 0 && k.length <= 256) f(k, x);
  };
  each(o.increment, (k, n) => {
    if (typeof n === 'number' && Number.isFinite(n) && Math.abs(n) <= MAX_INCREMENT)
      out.push('incr', k, String(n));
  });
  for (const op of ['add', 'remove'] as const)
    each(o[op], (k, xs) => {
      for (const x of Array.isArray(xs) ? xs : [xs])
        if (typeof x === 'string' && x.length > 0 && x.length <= MAX_SET_MEMBER)
          out.push(op, k, JSON.stringify(x));
    });
  return out.slice(0, MAX_TRAIT_OPS * 3);
}

/** The traits an event's trait operations change (for choosing the segments to evaluate). */
export function traitOpNames(e: NormalizedEvent): string[] {
  if (e.context.traitOps === undefined || e.type !== 'identify' || e.keyKind === 'client') return [];
  const ops = traitOpsOf(e);
  const names: string[] = [];
  for (let i = 1; i < ops.length; i += 3) names.push(ops[i]!);
  return names;
}

export const DEFAULT_MAX_DEVICES = 20;
/** FCM registration tokens are ~163 characters, APNs device tokens 64 hex digits. */
export const MAX_DEVICE_TOKEN = 512;
const MAX_DEVICE_ID = 512;
/** Device types kept as sent (lower-cased); anything else is stored as `other`. */
const DEVICE_TYPE = /^[a-z0-9_.-]{1,32}$/;

/**
 * The push device an event registers (Segment spec: `context.device.token`, with
 * `context.device.id` and `.type`), for apply-event.lua: `[key, token, type]` with key
 * `i:<device id>` (or `t:<token>` when there is no id) and token '' to unregister the
 * device (`token: null` or '' with an id); `['!', what]` when the event's device is refused
 * (a token that is not a string or longer than MAX_DEVICE_TOKEN, an id too long): the event
 * is applied without it and the profile's state reports `device:<what>` as limited.
 * Undefined when the event carries no token at all (the hot path: nothing to do).
 */
export function deviceOf(e: NormalizedEvent): string[] | undefined {
  const d = e.context.device;
  if (d === null || typeof d !== 'object' || Array.isArray(d)) return undefined;
  const dev = d as Record<string, unknown>;
  if (!('token' in dev) || dev.token === undefined) return undefined;
  const raw = dev.token;
  const token = typeof raw === 'string' ? raw.trim() : raw;
  if (token !== null && typeof token !== 'string') return ['!', 'token_type'];
  if (typeof token === 'string' && token.length > MAX_DEVICE_TOKEN) return ['!', 'token_length'];
  const rawId = dev.id;
  const id = typeof rawId === 'number' && Number.isFinite(rawId) ? String(rawId) : rawId;
  let key: string;
  if (typeof id === 'string' && id.trim() !== '' && !isJunkId(id)) {
    if (id.length > MAX_DEVICE_ID) return ['!', 'id_length'];
    key = `i:${id.trim()}`;
  } else if (token) key = `t:${token}`;
  else return undefined; // no token and no id: nothing to unregister
  const t = typeof dev.type === 'string' ? dev.type.trim().toLowerCase() : '';
  return [key, token ?? '', DEVICE_TYPE.test(t) ? t : 'other'];
}

/** Traits an event sets: `context.traits` first, then the call's own traits (identify, group). */
export function traitsOf(e: NormalizedEvent): Record<string, unknown> {
  const ctxTraits = e.context.traits;
  const fromContext =
    ctxTraits && typeof ctxTraits === 'object' && !Array.isArray(ctxTraits) ? ctxTraits : {};
  return e.type === 'identify' ? { ...fromContext, ...e.traits } : { ...fromContext };
}

/**
 * Queues one script call applying `events` (all of one workspace) in order; its reply is
 * one state per event (parseApplyResults).
 */
export function queueApplyEvents(
  pipe: ChainableCommander,
  tag: string,
  events: readonly NormalizedEvent[],
  opts: ApplyOptions,
  conditions: readonly ConditionPlan[] = [],
  nowMs: number = Date.now(),
  readState: ReadState = 'all',
): void {
  const list: unknown[] = new Array(events.length);
  events.forEach((e, i) => {
    const plan = conditions[i];
    const ids: string[] = [];
    for (const [k, v] of identifiersOf(e, opts)) ids.push(k, v);
    const traits: string[] = [];
    for (const [k, v] of Object.entries(traitsOf(e))) if (v !== undefined) traits.push(k, JSON.stringify(v));
    let groupId = '';
    const groupTraits: string[] = [];
    if (e.type === 'group' && e.groupId) {
      groupId = e.groupId;
      for (const [k, v] of Object.entries(e.traits))
        if (v !== undefined && k !== '__proto__') groupTraits.push(k, JSON.stringify(v));
    }
    const ops = e.type === 'identify' && e.keyKind !== 'client' ? traitOpsOf(e) : [];
    list[i] = [
      e.messageId,
      Date.parse(e.timestamp),
      (opts.newProfileId ?? randomUUID)(),
      plan && (plan.add.length > 0 || plan.agg || plan.dec) ? plan : {},
      ids,
      traits,
      groupId,
      groupTraits,
      e.keyKind === 'client' ? 'c' : '',
      ops,
    ];
    // only events that carry a device token get the 11th element (apply-event.lua: devices)
    const device = deviceOf(e);
    // ordered by the event's time, but never later than its arrival: a client's clock set
    // ahead cannot pin a device against the real phone's next registration
    if (device)
      (list[i] as unknown[]).push(
        device[0] === '!'
          ? device
          : [...device, String(Math.min(Date.parse(e.timestamp), Date.parse(e.receivedAt)))],
      );
  });
  (pipe as unknown as Redis).cdpApplyEvent(
    tag,
    opts.dedupTtlSeconds,
    opts.maxIdentities,
    nowMs,
    readState,
    forLuaJson(JSON.stringify(list)),
    forLuaJson(scriptOptions(opts)),
  );
}

/** A `\uD800`-`\uDFFF` escape not preceded by an escaped backslash. */
const LONE_SURROGATE = /(?<!\\)((?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/g;

/**
 * JSON for Redis's cjson, which refuses a lone surrogate escape (JSON.stringify writes one
 * for a string holding half a pair; a pair it writes as the character). It becomes U+FFFD,
 * what the string would have become as a command argument of its own (UTF-8 encoding).
 */
export function forLuaJson(json: string): string {
  return json.includes('\\ud') ? json.replace(LONE_SURROGATE, '$1\\ufffd') : json;
}

/** One event in its own call (tests, tools). */
export function queueApplyEvent(
  pipe: ChainableCommander,
  tag: string,
  e: NormalizedEvent,
  opts: ApplyOptions,
  conditions: ConditionPlan = { add: [] },
  nowMs: number = Date.now(),
): void {
  queueApplyEvents(pipe, tag, [e], opts, [conditions], nowMs);
}

/** Queues a read of a profile's state (no event): for timers and re-evaluation. */
export function queueReadProfile(pipe: ChainableCommander, tag: string, profileId: string): void {
  (pipe as unknown as Redis).cdpReadProfile(tag, profileId);
}

type RawState = [
  pid: string,
  duplicate: number,
  created: number,
  merged: string[],
  conflicts: string[],
  limited: string[],
  identityVersion: number,
  refused: string[],
  // the profile's state, present on the last event of each profile in a call
  firstSeenAt?: string,
  lastSeenAt?: string,
  traits?: string[],
  epochs?: string[],
  identities?: string[],
  times?: unknown[],
  revision?: string,
];

/** The reply of an apply call: one state per event (null: no usable identifier). */
export function parseApplyResults(raw: unknown): Array<ProfileState | null> {
  const list = JSON.parse(String(raw)) as unknown;
  // cjson writes an empty Lua table as {}
  return Array.isArray(list) ? list.map((r) => parseState(r as RawState)) : [];
}

/** The reply of a profile read (read-profile.lua): its state, or null when it is gone. */
export function parseApplyResult(raw: unknown): ProfileState | null {
  return parseState(JSON.parse(String(raw)) as RawState);
}

/** A list from the script's JSON: cjson writes an empty one as {}. */
const listOf = <T>(x: T[] | undefined): T[] => (Array.isArray(x) ? x : []);

function parseState(r: RawState): ProfileState | null {
  if (!r[0]) return null;
  const out: ProfileState = {
    profileId: r[0],
    duplicate: r[1] === 1,
    created: r[2] === 1,
    merged: listOf(r[3]),
    conflicts: listOf(r[4]),
    limited: listOf(r[5]),
    identityVersion: Number(r[6] ?? 0),
    refused: listOf(r[7]),
    revision: '0',
    complete: r.length > 8,
    firstSeenAt: null,
    lastSeenAt: null,
    traits: {},
    epochs: {},
    identities: [],
    times: {},
  };
  if (!out.complete) return out;
  const traits: Record<string, unknown> = {};
  const t = listOf(r[10]);
  for (let i = 0; i < t.length; i += 2) if (t[i] !== '__proto__') traits[t[i]!] = decodeTrait(t[i + 1]!);
  const epochs: Record<string, number> = {};
  const ep = listOf(r[11]);
  for (let i = 0; i < ep.length; i += 2) epochs[ep[i]!] = Number(ep[i + 1]);
  out.firstSeenAt = isoOfMs(r[8]);
  out.lastSeenAt = isoOfMs(r[9]);
  out.traits = traits;
  out.epochs = epochs;
  out.identities = listOf(r[12]);
  out.times = parseTimes(listOf(r[13]));
  out.revision = r[14] ?? '0';
  return out;
}

function parseTimes(flat: unknown[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (let i = 0; i < flat.length; i += 2) out[String(flat[i])] = listOf(flat[i + 1] as number[]);
  return out;
}
