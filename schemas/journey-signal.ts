// What the journey runner reacts to besides segment changes: an event of a known person,
// published by the processor (which has resolved the person) on cdp.journey-signals, only
// for event names some live journey listens to (entry, wait-until, goal).
// Key: `${workspaceId}:${profileId}`, so one person's signals and segment changes keep
// their order per partition.
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

export const JourneySignal = Type.Object({
  workspaceId: Type.String({ minLength: 1 }),
  profileId: Type.String({ minLength: 1 }),
  messageId: Type.String(),
  event: Type.String(),
  properties: Type.Record(Type.String(), Type.Unknown()),
  /** Event time (ISO 8601). */
  timestamp: Type.String(),
  userId: Type.Union([Type.String(), Type.Null()]),
});
export type JourneySignal = Static<typeof JourneySignal>;
export const journeySignalCheck = TypeCompiler.Compile(JourneySignal);

/** A row of ClickHouse `journey_steps` (migration 009), produced to cdp.journey-ledger. */
export interface JourneyStepRow {
  workspace_id: string;
  /** epoch ms */
  at: number;
  journey_id: string;
  version: number;
  profile_id: string;
  run: number;
  node_id: string;
  /** entered, refused, waiting, resumed, met, timeout, branched, split, holdout, queued_send, updated, exited, completed, converted */
  step: string;
  /** Which way and why: `yes`, `variant:1`, the rule or event that decided. */
  detail: string;
  message_id: string;
}
