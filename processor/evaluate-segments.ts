// Step (pure): given a profile's state, decide which segment memberships change.
import type { RuleContext } from '../schemas/rules.ts';
import type { ProfileState } from './apply-event.ts';
import type { CompiledSegment } from './segment-registry.ts';

export interface Transition {
  segmentId: string;
  segmentVersion: number;
  /** The epoch the membership has now; the transition moves it to `fromEpoch + 1`. */
  fromEpoch: number;
  type: 'entered' | 'exited';
}

export function evaluateSegments(
  segments: readonly CompiledSegment[],
  state: ProfileState,
  event: Record<string, unknown> | null,
): Transition[] {
  // Memberships are settled in dependency order so `in_segment` sees this round's result.
  const epochs = { ...state.epochs };
  const isMember = (id: string) => (epochs[id] ?? 0) % 2 === 1;
  const ctx: RuleContext = {
    traits: state.traits,
    profile: { id: state.profileId, firstSeenAt: state.firstSeenAt, lastSeenAt: state.lastSeenAt },
    event,
    segments: Object.keys(epochs).filter(isMember),
  };
  const out: Transition[] = [];
  for (const s of orderByDependency(segments)) {
    let want: boolean;
    try {
      want = s.rule.evaluate(ctx);
    } catch {
      want = false;
    }
    const id = s.def.id;
    const now = isMember(id);
    if (want === now) continue;
    const fromEpoch = epochs[id] ?? 0;
    out.push({ segmentId: id, segmentVersion: s.def.version, fromEpoch, type: want ? 'entered' : 'exited' });
    epochs[id] = fromEpoch + 1;
    ctx.segments = want ? [...ctx.segments, id] : ctx.segments.filter((x) => x !== id);
  }
  return out;
}

/** Segments a rule references come before it; cycles are refused when segments are saved. */
export function orderByDependency(segments: readonly CompiledSegment[]): CompiledSegment[] {
  const byId = new Map(segments.map((s) => [s.def.id, s]));
  const done = new Set<string>();
  const out: CompiledSegment[] = [];
  const visit = (s: CompiledSegment, depth: number) => {
    if (done.has(s.def.id) || depth > segments.length) return;
    for (const dep of s.rule.segments) {
      const d = byId.get(dep);
      if (d) visit(d, depth + 1);
    }
    if (!done.has(s.def.id)) {
      done.add(s.def.id);
      out.push(s);
    }
  };
  for (const s of segments) visit(s, 0);
  return out;
}
