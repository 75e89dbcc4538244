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
});
export type IdentityChange = Static<typeof IdentityChange>;
export const identityChangeCheck = TypeCompiler.Compile(IdentityChange);

/** Splits "kind:value" (the value may contain ':'). */
export function splitIdentifier(id: string): { kind: string; value: string } {
  const i = id.indexOf(':');
  return i < 0 ? { kind: '', value: id } : { kind: id.slice(0, i), value: id.slice(i + 1) };
}
