// Event envelopes: what SDKs send (Segment Tracking API spec) and what ingest puts on
// `cdp.events` after normalisation. Validators are compiled once.
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

export const EVENT_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

const Id = Type.Union([Type.String({ maxLength: 512 }), Type.Number()]);
const Obj = Type.Record(Type.String(), Type.Unknown());
const Timestamp = Type.String({ maxLength: 64 });

/** Fields common to every call, as an SDK sends them. */
export const IncomingEvent = Type.Object(
  {
    type: Type.Optional(Type.String()),
    messageId: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    userId: Type.Optional(Type.Union([Id, Type.Null()])),
    anonymousId: Type.Optional(Type.Union([Id, Type.Null()])),
    previousId: Type.Optional(Type.Union([Id, Type.Null()])),
    groupId: Type.Optional(Type.Union([Id, Type.Null()])),
    event: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    name: Type.Optional(Type.Union([Type.String({ maxLength: 512 }), Type.Null()])),
    category: Type.Optional(Type.Union([Type.String({ maxLength: 512 }), Type.Null()])),
    properties: Type.Optional(Type.Union([Obj, Type.Null()])),
    traits: Type.Optional(Type.Union([Obj, Type.Null()])),
    context: Type.Optional(Type.Union([Obj, Type.Null()])),
    integrations: Type.Optional(Type.Union([Obj, Type.Null()])),
    timestamp: Type.Optional(Type.Union([Timestamp, Type.Null()])),
    originalTimestamp: Type.Optional(Type.Union([Timestamp, Type.Null()])),
    sentAt: Type.Optional(Type.Union([Timestamp, Type.Null()])),
    writeKey: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);
export type IncomingEvent = Static<typeof IncomingEvent>;
export const incomingEventCheck = TypeCompiler.Compile(IncomingEvent);

/** The normalised envelope on `cdp.events`. */
export const NormalizedEvent = Type.Object({
  workspaceId: Type.String({ minLength: 1 }),
  type: Type.Union(EVENT_TYPES.map((t) => Type.Literal(t))),
  messageId: Type.String({ minLength: 1 }),
  userId: Type.Union([Type.String(), Type.Null()]),
  anonymousId: Type.Union([Type.String(), Type.Null()]),
  previousId: Type.Optional(Type.String()),
  groupId: Type.Optional(Type.String()),
  event: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
  properties: Obj,
  traits: Obj,
  context: Obj,
  integrations: Obj,
  /** When it happened (ISO 8601, corrected for client clock skew). */
  timestamp: Type.String(),
  originalTimestamp: Type.Optional(Type.String()),
  sentAt: Type.Optional(Type.String()),
  /** When ingest accepted it (ISO 8601, server clock). */
  receivedAt: Type.String(),
  /**
   * The kind of write key that sent it, stamped by ingest from the key (never read from the
   * request body): `client` keys are public and limited in what they may change on a known
   * person (profiles/apply-event.lua). Absent (events from before kinds): `server`.
   */
  keyKind: Type.Optional(Type.Union([Type.Literal('server'), Type.Literal('client')])),
});
export type NormalizedEvent = Static<typeof NormalizedEvent>;
export const normalizedEventCheck = TypeCompiler.Compile(NormalizedEvent);

/** Identifiers that are refused: SDKs and buggy code send these strings for "no id". */
export const JUNK_IDS = new Set([
  '',
  'null',
  'undefined',
  '0',
  'anonymous',
  'nan',
  'none',
  '[object object]',
]);
export const isJunkId = (id: string) => JUNK_IDS.has(id.trim().toLowerCase());
