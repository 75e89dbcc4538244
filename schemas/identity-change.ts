import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

/**
 * An identity-graph change on `cdp.identity`, emitted by the processor whenever a profile
 * is created, gains an identifier, or absorbs other profiles in a merge. It lists every
 * identifier that now resolves to `profileId` ("kind:value", kind = user | anon | email),
 * and the profile ids merged into it. `version` grows per workspace with every change
 * (a Redis counter bumped in the same atomic step), so the latest row for an identifier
 * wins wherever the changes are stored, whatever order they arrive in.
 */
export const IdentityChange = Type.Object({
  workspaceId: Type.String(),
  profileId: Type.String(),
  identifiers: Type.Array(Type.String()),
  mergedProfileIds: Type.Array(Type.String()),
  version: Type.Integer({ minimum: 1 }),
  /** The event whose processing changed the graph. */
  messageId: Type.String(),
  occurredAt: Type.String(),
  /**
   * A change too large for one message goes as several (serializeIdentityChange): each
   * carries a share of the identifiers (the merged ids in the first), all with the same
   * version; `part` counts from 1 to `parts`. Absent on a change that fits one message.
   */
  part: Type.Optional(Type.Integer({ minimum: 1 })),
  parts: Type.Optional(Type.Integer({ minimum: 1 })),
});
export type IdentityChange = Static<typeof IdentityChange>;
export const identityChangeCheck = TypeCompiler.Compile(IdentityChange);

/** Bytes an identity change message may take on Kafka (see SEGMENT_CHANGE_MAX_BYTES). */
export const IDENTITY_CHANGE_MAX_BYTES = 128 * 1024;

/**
 * The change as the JSON texts of its messages, each at most about `maxBytes`: one when it
 * fits (nearly always), else the identifiers split over parts. Every identifier is in one
 * part, so what reads the changes (identity links per identifier, the latest version
 * winning) sees the same as from one message. An identifier longer than the budget still
 * goes, alone in its part.
 */
export function serializeIdentityChange(
  change: IdentityChange,
  maxBytes = IDENTITY_CHANGE_MAX_BYTES,
): string[] {
  const whole = JSON.stringify(change);
  if (whole.length * 3 <= maxBytes || Buffer.byteLength(whole) <= maxBytes) return [whole];
  const base = Buffer.byteLength(
    JSON.stringify({ ...change, identifiers: [], mergedProfileIds: [], part: 1_000_000, parts: 1_000_000 }),
  );
  const groups: string[][] = [[]];
  let left = maxBytes - base - Buffer.byteLength(JSON.stringify(change.mergedProfileIds));
  for (const id of change.identifiers) {
    const size = Buffer.byteLength(JSON.stringify(id)) + 1;
    if (size > left && groups[groups.length - 1]!.length > 0) {
      groups.push([]);
      left = maxBytes - base;
    }
    groups[groups.length - 1]!.push(id);
    left -= size;
  }
  return groups.map((identifiers, i) =>
    JSON.stringify({
      ...change,
      identifiers,
      mergedProfileIds: i === 0 ? change.mergedProfileIds : [],
      part: i + 1,
      parts: groups.length,
    }),
  );
}

/** Splits "kind:value" (the value may contain ':'). */
export function splitIdentifier(id: string): { kind: string; value: string } {
  const i = id.indexOf(':');
  return i < 0 ? { kind: '', value: id } : { kind: id.slice(0, i), value: id.slice(i + 1) };
}
