// Date-trait entries ({dateTrait, offset, at}: e.g. 14 days before `renewal_date`, at 09:00
// in the person's zone): each person's entry is a durable timer of their own, set when the
// trait is set or changed (the processor signals an identify that sets a trait some live
// journey dates by, as `$identify`) and, for the people who had it already, by a backfill
// over the workspace's profiles when the journey is activated (time-entries.ts runs it like
// a broadcast: leased, paged, resumable). When the timer fires the profile is read again: a
// trait changed since set a timer of its own and this one does nothing. A person enters once
// per date (the occurrence is `dateTrait@<date>`); re-entry rules apply across dates.
import type { Logger } from '../../runtime/log.ts';
import type { Redis } from '../../runtime/redis.ts';
import type { IdentityChange } from '../../schemas/identity-change.ts';
import type { JourneySignal } from '../../schemas/journey-signal.ts';
import { dateTraitInstant, parseDayOffset, traitDate } from '../../schemas/journey-time.ts';
import { profileTimezone } from '../policy/local-time.ts';
import type { JourneyEngine } from './journey-engine.ts';
import type { CompiledJourney, JourneyRegistry } from './journey-registry.ts';
import type { DueRun, JourneyTimers } from './journey-timers.ts';
import { readProfileContext } from './profile-context.ts';
import type { RunRef } from './run-state.ts';

/** Timer node of a date-trait entry: `$date:<YYYY-MM-DD>` (the trait's date it was set for). */
export const DATE_ENTRY_NODE = '$date:';

export function dateEntries(deps: {
  redis: Redis;
  prefix: string;
  registry: Pick<JourneyRegistry, 'all' | 'get'>;
  timers: Pick<JourneyTimers, 'schedule' | 'park'>;
  engine: Pick<JourneyEngine, 'onTimeEntry'>;
  now: () => number;
  defaultTimezone: string;
  log: Logger;
}) {
  /** The person's entry by this journey's date trait: the date and when; undefined without a date. */
  const when = (j: CompiledJourney, traits: Record<string, unknown>) => {
    const e = j.def.entry;
    if (!('dateTrait' in e)) return undefined;
    const date = traitDate(traits[e.dateTrait]);
    if (date === undefined) return undefined;
    const tz = profileTimezone(traits, deps.defaultTimezone);
    const day = new Date(date).toISOString().slice(0, 10);
    return { day, due: dateTraitInstant(date, parseDayOffset(e.offset ?? 'P0D') ?? 0, e.at, tz) };
  };

  /** Sets the person's entry timer if their date is ahead; true if set. A day passed enters no one. */
  async function schedule(ref: RunRef, j: CompiledJourney, traits: Record<string, unknown>) {
    const w = when(j, traits);
    if (!w || w.due <= deps.now()) return false;
    await deps.timers.schedule(ref, 0, `${DATE_ENTRY_NODE}${w.day}`, w.due);
    return true;
  }

  const read = (ws: string, pid: string) => readProfileContext(deps.redis, deps.prefix, ws, pid);

  return {
    /** An identify set a date trait: the person's timers for the journeys dating by it. */
    async onSignal(s: JourneySignal): Promise<void> {
      const journeys = deps.registry
        .all()
        .filter(
          (j) =>
            j.def.workspaceId === s.workspaceId &&
            (j.def.status === 'active' || j.def.status === 'paused') &&
            'dateTrait' in j.def.entry &&
            Object.hasOwn(s.properties, j.def.entry.dateTrait),
        );
      if (journeys.length === 0) return;
      const p = await read(s.workspaceId, s.profileId);
      for (const j of journeys)
        await schedule(
          { workspaceId: s.workspaceId, journeyId: j.def.id, profileId: p.profileId },
          j,
          p.traits,
        );
    },

    /**
     * Profiles merged: the survivor may have a date it did not have (the merged-away
     * profile's trait, last write wins), so its timers are set from its traits now.
     */
    async onIdentityChange(c: IdentityChange): Promise<void> {
      if (!c.mergedProfileIds.some((m) => m !== c.profileId)) return;
      const journeys = deps.registry
        .all()
        .filter(
          (j) =>
            j.def.workspaceId === c.workspaceId &&
            (j.def.status === 'active' || j.def.status === 'paused') &&
            'dateTrait' in j.def.entry,
        );
      if (journeys.length === 0) return;
      const p = await read(c.workspaceId, c.profileId);
      for (const j of journeys)
        await schedule(
          { workspaceId: c.workspaceId, journeyId: j.def.id, profileId: p.profileId },
          j,
          p.traits,
        );
    },

    /** The backfill's step for one profile of the workspace (see time-entries.ts). */
    async backfill(ref: RunRef): Promise<boolean> {
      const j = deps.registry.get(ref.workspaceId, ref.journeyId);
      if (!j) return false;
      const p = await read(ref.workspaceId, ref.profileId);
      if (p.profileId !== ref.profileId) return false; // merged away: the survivor has its own key
      return schedule(ref, j, p.traits);
    },

    /** A person's entry timer fired: they enter if their date is still the one it was set for. */
    async onDue(d: DueRun): Promise<void> {
      const j = deps.registry.get(d.ref.workspaceId, d.ref.journeyId);
      if (!j || !('dateTrait' in j.def.entry)) return;
      if (j.def.status === 'paused') {
        // set aside with the journey's waits; it fires when the journey resumes
        await deps.timers.park(d.ref, 0, d.node, deps.now());
        return;
      }
      if (j.def.status !== 'active') return;
      const p = await read(d.ref.workspaceId, d.ref.profileId);
      const w = when(j, p.traits);
      if (!w || `${DATE_ENTRY_NODE}${w.day}` !== d.node) return; // changed since: its own timer
      const ref = { ...d.ref, profileId: p.profileId };
      // the zone changed to a later one: the same date, later
      if (w.due > deps.now()) await deps.timers.schedule(ref, 0, d.node, w.due);
      else await deps.engine.onTimeEntry(ref, `dateTrait@${w.day}`);
    },
  };
}
export type DateEntries = ReturnType<typeof dateEntries>;
