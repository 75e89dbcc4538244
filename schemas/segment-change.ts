import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

/**
 * A membership transition on `cdp.segment-changes`. `epoch` counts the transitions of this
 * (profile, segment) pair: odd while a member, even while not. Together with the segment
 * it names one entry (or exit) exactly, so a redelivered or re-emitted change carries the
 * same epoch and activation sends at most once for it.
 */
export const SegmentChange = Type.Object({
  workspaceId: Type.String(),
  profileId: Type.String(),
  segmentId: Type.String(),
  segmentVersion: Type.Integer(),
  type: Type.Union([Type.Literal('entered'), Type.Literal('exited')]),
  epoch: Type.Integer({ minimum: 1 }),
  /** The event whose processing decided the transition. */
  messageId: Type.Union([Type.String(), Type.Null()]),
  occurredAt: Type.String(),
  userId: Type.Union([Type.String(), Type.Null()]),
  /** The profile's traits, or as many as fit the message's byte budget (then `traitsTruncated`). */
  traits: Type.Record(Type.String(), Type.Unknown()),
  /** Set when traits were left out to keep the message bounded: read the profile's traits from Redis. */
  traitsTruncated: Type.Optional(Type.Boolean()),
});
export type SegmentChange = Static<typeof SegmentChange>;
export const segmentChangeCheck = TypeCompiler.Compile(SegmentChange);

/**
 * Bytes a segment change may take on Kafka: far under the broker's default 1 MB per
 * message, so a huge profile never makes a message the broker refuses (and a partition
 * stall), and several fit one produce request.
 */
export const SEGMENT_CHANGE_MAX_BYTES = 128 * 1024;

/** Traits kept first when a change must leave some out: what channels and policies read. */
const CONTACT_TRAITS = ['email', 'phone', 'pushToken', 'timezone', 'name', 'firstName', 'lastName'];

/**
 * The change as the JSON text of its message, at most `maxBytes` (UTF-8): when the whole
 * change is larger, its traits are cut to what fits, contact traits first, then the others
 * in order while they fit, and `traitsTruncated` is set. Costs one JSON.stringify for a
 * change that fits (nearly all of them).
 */
export function serializeSegmentChange(change: SegmentChange, maxBytes = SEGMENT_CHANGE_MAX_BYTES): string {
  const whole = JSON.stringify(change);
  if (whole.length * 3 <= maxBytes || Buffer.byteLength(whole) <= maxBytes) return whole;
  const base = Buffer.byteLength(JSON.stringify({ ...change, traits: {}, traitsTruncated: true }));
  let left = maxBytes - base;
  const kept: Record<string, unknown> = {};
  const keep = (k: string) => {
    const v = change.traits[k];
    if (v === undefined || k in kept) return;
    // "key":value, — the comma counted for every entry
    const size = Buffer.byteLength(JSON.stringify(k)) + Buffer.byteLength(JSON.stringify(v) ?? 'null') + 2;
    if (size > left) return;
    kept[k] = v;
    left -= size;
  };
  for (const k of CONTACT_TRAITS) if (Object.hasOwn(change.traits, k)) keep(k);
  for (const k of Object.keys(change.traits)) keep(k);
  return JSON.stringify({ ...change, traits: kept, traitsTruncated: true });
}
