// Settling, step 1: the segments to evaluate on each profile, chosen by what changed.

import type { ProfileState } from '../../profiles/apply-event.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import type { CompiledSegment, SegmentRegistry, Touched } from '../segment-registry.ts';
import { isWide, type SettleItem } from './shared.ts';

/** A profile with segments to evaluate (profiles with none are left out). */
export interface Selected {
  ws: string;
  state: ProfileState;
  event: NormalizedEvent | null;
  /** What the segments were chosen by (everything the profile holds, for a wide one). */
  selection: Touched;
  segments: readonly CompiledSegment[];
}

export function selectSegments(registry: SegmentRegistry, items: SettleItem[]): Selected[] {
  const selected: Selected[] = [];
  for (const input of items) {
    const { ws, state, event, touched } = input;
    // For a new, merged or replayed profile the event does not say what changed: take
    // everything the profile holds (the registry adds what holds on an empty profile).
    const wide = input.wide || isWide(state);
    const selection: Touched = wide
      ? {
          ...touched,
          profile: {
            traits: Object.keys(state.traits),
            conditions: Object.keys(state.times),
            memberOf: Object.keys(state.epochs).filter((id) => (state.epochs[id] ?? 0) % 2 === 1),
          },
        }
      : touched;
    const segments = registry.affected(ws, selection);
    if (segments.length > 0) selected.push({ ws, state, event, selection, segments });
  }
  return selected;
}
