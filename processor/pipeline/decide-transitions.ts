// Settling, step 2: each profile's segments evaluated on its state, into the segment
// changes to publish and record, and the time of its next time-driven evaluation.

import type { SegmentChange } from '../../schemas/segment-change.ts';
import { evaluateSegments } from '../evaluate-segments.ts';
import type { ProfileValues } from '../read-values.ts';
import { timerMember } from '../timers.ts';
import type { Selected } from './select-segments.ts';
import type { Recheck } from './shared.ts';

/** A membership transition decided on a profile's state as read at `revision`. */
export interface Decision {
  ws: string;
  change: SegmentChange;
  /** The membership epoch it moves from (record-membership.lua's compare-and-set). */
  from: number;
  item: Recheck;
  revision: string;
}

export interface Decisions {
  changes: Decision[];
  /** Timer entries (timers.ts): when time alone next changes what a profile's segments read. */
  schedule: Array<[deadline: number, member: string]>;
}

/** `values`: by index of `selected`, the computed traits and scores its segments read. */
export function decideTransitions(
  selected: Selected[],
  values: ReadonlyArray<ProfileValues | undefined>,
  at: Date,
): Decisions {
  const changes: Decision[] = [];
  const schedule: Array<[number, string]> = [];
  for (const [i, { ws, state, event, selection, segments }] of selected.entries()) {
    const item: Recheck = { ws, profileId: state.profileId, event, touched: selection };
    const v = values[i];
    const evaluation = evaluateSegments(
      segments,
      state,
      event as unknown as Record<string, unknown> | null,
      at.getTime(),
      v,
    );
    const { transitions } = evaluation;
    let { nextDeadline } = evaluation;
    if (v?.nextDeadline != null && (nextDeadline === null || v.nextDeadline < nextDeadline))
      nextDeadline = v.nextDeadline;
    if (nextDeadline !== null) schedule.push([nextDeadline, timerMember(ws, state.profileId)]);
    const userEntry = state.identities.find((i) => i.startsWith('user:'));
    for (const t of transitions)
      changes.push({
        ws,
        from: t.fromEpoch,
        item,
        revision: state.revision,
        change: {
          workspaceId: ws,
          profileId: state.profileId,
          segmentId: t.segmentId,
          segmentVersion: t.segmentVersion,
          type: t.type,
          epoch: t.fromEpoch + 1,
          messageId: event?.messageId ?? null,
          occurredAt: at.toISOString(),
          userId: userEntry ? userEntry.slice(5) : null,
          traits: state.traits,
        },
      });
  }
  return { changes, schedule };
}
