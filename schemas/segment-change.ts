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
  traits: Type.Record(Type.String(), Type.Unknown()),
});
export type SegmentChange = Static<typeof SegmentChange>;
export const segmentChangeCheck = TypeCompiler.Compile(SegmentChange);
