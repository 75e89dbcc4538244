// A journey timer as a member of the timer sets (the due set, the claimed set and a paused
// journey's parked set; activation/journeys/journey-timers.ts): workspace, journey, profile
// id, run and node joined by U+001F. It names the profile id, so an erasure removes the
// person's members from every one of those sets (query/erase-profile.ts).

const SEP = '\u001f';

export interface TimerRef {
  workspaceId: string;
  journeyId: string;
  profileId: string;
}

export interface TimerMember {
  ref: TimerRef;
  run: number;
  node: string;
}

export function timerMember(ref: TimerRef, run: number, node: string): string {
  return [ref.workspaceId, ref.journeyId, ref.profileId, run, node].join(SEP);
}

export function parseTimerMember(m: string): TimerMember | undefined {
  const p = m.split(SEP);
  if (p.length !== 5) return undefined;
  return { ref: { workspaceId: p[0]!, journeyId: p[1]!, profileId: p[2]! }, run: Number(p[3]), node: p[4]! };
}

/**
 * A (Z)SCAN MATCH pattern for every timer of one person in a workspace (any journey, run and
 * node). A pattern only narrows: callers check what it returns with parseTimerMember.
 */
export function personTimersPattern(workspaceId: string, profileId: string): string {
  const glob = (s: string) => s.replace(/[*?[\]\\]/g, '\\$&');
  return `${glob(workspaceId)}${SEP}*${SEP}${glob(profileId)}${SEP}*`;
}
