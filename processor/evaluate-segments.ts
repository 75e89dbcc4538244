// Step (pure): given a profile's state and the time, decide which segment memberships
// change, and when time alone could change them next (the earliest moment a counted
// event leaves its window).

import type { ProfileState } from '../profiles/apply-event.ts';
import { isMemberEpoch } from '../profiles/read.ts';
import { ruleContext, ruleHolds } from '../profiles/rule-context.ts';
import type { CompiledSegment } from './segment-registry.ts';

export interface Transition {
  segmentId: string;
  segmentVersion: number;
  /** The epoch the membership has now; the transition moves it to `fromEpoch + 1`. */
  fromEpoch: number;
  type: 'entered' | 'exited';
}

export interface Evaluation {
  transitions: Transition[];
  /** Epoch ms at which a windowed rule of this profile must be evaluated again, if any. */
  nextDeadline: number | null;
}

export function evaluateSegments(
  segments: readonly CompiledSegment[],
  state: ProfileState,
  event: Record<string, unknown> | null,
  nowMs: number,
  /** Computed traits and lead scores the segments read (processor/read-values.ts). */
  values?: { computed: Record<string, unknown>; scores: Record<string, number> },
): Evaluation {
  // Windowed counts, exact to the millisecond: an event at t counts while t > now - window.
  const counts: Record<string, number> = {};
  let nextDeadline: number | null = null;
  for (const s of segments) {
    for (const c of s.rule.counts) {
      if (c.key in counts) continue;
      const times = state.times[c.condition.id] ?? [];
      let n = 0;
      let oldest = Number.POSITIVE_INFINITY;
      for (const t of times) {
        if (t > nowMs - c.windowMs) {
          n++;
          if (t < oldest) oldest = t;
        }
      }
      counts[c.key] = n;
      if (n > 0) {
        const leaves = oldest + c.windowMs;
        if (nextDeadline === null || leaves < nextDeadline) nextDeadline = leaves;
      }
    }
  }

  // `segments` come in dependency order (the registry's), so `in_segment` sees this
  // round's result.
  const epochs = { ...state.epochs };
  const isMember = (id: string) => isMemberEpoch(epochs[id]);
  const ctx = ruleContext(state.profileId, state, event, counts, values);
  const transitions: Transition[] = [];
  for (const s of segments) {
    const want = ruleHolds(s.rule, ctx);
    const id = s.def.id;
    const now = isMember(id);
    if (want === now) continue;
    const fromEpoch = epochs[id] ?? 0;
    transitions.push({
      segmentId: id,
      segmentVersion: s.def.version,
      fromEpoch,
      type: want ? 'entered' : 'exited',
    });
    epochs[id] = fromEpoch + 1;
    ctx.segments = want ? [...ctx.segments, id] : ctx.segments.filter((x) => x !== id);
  }
  return { transitions, nextDeadline };
}
