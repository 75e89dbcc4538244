// The journeys the runner knows, rebuilt when definitions change: the latest definition of
// each journey (its status rules: only active journeys take entrants and run steps), every
// version still in use (a person in flight stays on the version they entered), and indexes
// from a signal (a segment change, an event) to the journeys it can move.
import type { JourneyDefinition, JourneyNode } from '../../schemas/journey.ts';
import { nodeIndex } from '../../schemas/journey.ts';
import {
  type CompiledRule,
  compileCondition,
  compileRule,
  type EventCondition,
} from '../../schemas/rules.ts';

export interface CompiledJourney {
  def: JourneyDefinition;
  nodes: Map<string, JourneyNode>;
  /** Compiled branch rules and event filters, by node id (or `entry`, `goal`). */
  rules: Map<string, CompiledRule>;
  filters: Map<string, EventCondition>;
}

const key = (ws: string, id: string) => `${ws}/${id}`;

function compile(def: JourneyDefinition): CompiledJourney {
  const rules = new Map<string, CompiledRule>();
  const filters = new Map<string, EventCondition>();
  if ('event' in def.entry)
    filters.set('entry', compileCondition(def.entry.event, def.entry.where ?? null, ''));
  if (def.goal && 'event' in def.goal)
    filters.set('goal', compileCondition(def.goal.event, def.goal.where ?? null, ''));
  for (const n of def.nodes) {
    if (n.type === 'branch') rules.set(n.id, compileRule(n.rule));
    if (n.type === 'wait' && typeof n.for !== 'string' && 'until' in n.for && 'event' in n.for.until)
      filters.set(n.id, compileCondition(n.for.until.event, n.for.until.where ?? null, ''));
  }
  return { def, nodes: nodeIndex(def), rules, filters };
}

export class JourneyRegistry {
  private latest = new Map<string, CompiledJourney>();
  private versions = new Map<string, CompiledJourney>();
  /** ws → journeys (latest, not archived) that a segment id or an event name can move. */
  private bySegment = new Map<string, CompiledJourney[]>();
  private byEvent = new Map<string, CompiledJourney[]>();

  replace(latest: JourneyDefinition[], versions: JourneyDefinition[]): void {
    const l = new Map<string, CompiledJourney>();
    const v = new Map<string, CompiledJourney>();
    const bySegment = new Map<string, CompiledJourney[]>();
    const byEvent = new Map<string, CompiledJourney[]>();
    const add = (m: Map<string, CompiledJourney[]>, k: string, j: CompiledJourney) => {
      const list = m.get(k) ?? [];
      if (!list.includes(j)) list.push(j);
      m.set(k, list);
    };
    for (const d of versions) v.set(`${key(d.workspaceId, d.id)}@${d.version}`, compile(d));
    for (const d of latest) {
      const j = v.get(`${key(d.workspaceId, d.id)}@${d.version}`) ?? compile(d);
      j.def = d; // the status is the latest one's
      l.set(key(d.workspaceId, d.id), j);
      v.set(`${key(d.workspaceId, d.id)}@${d.version}`, j);
      if (d.status === 'archived' || d.status === 'draft') continue;
      // every version in flight listens too: its waits and goal; the latest one's entry
      const signalsOf = (x: JourneyDefinition) => {
        const segs: string[] = [];
        const events: string[] = [];
        if (x.goal)
          ('event' in x.goal ? events : segs).push('event' in x.goal ? x.goal.event : x.goal.segment);
        if (x.exitOnSegmentExit) segs.push(x.exitOnSegmentExit);
        for (const n of x.nodes)
          if (n.type === 'wait' && typeof n.for !== 'string' && 'until' in n.for)
            ('event' in n.for.until ? events : segs).push(
              'event' in n.for.until ? n.for.until.event : n.for.until.segment,
            );
        return { segs, events };
      };
      const { segs, events } = signalsOf(d);
      if ('segment' in d.entry) segs.push(d.entry.segment);
      else if ('event' in d.entry) events.push(d.entry.event);
      for (const old of versions)
        if (old.workspaceId === d.workspaceId && old.id === d.id && old.version !== d.version) {
          const s = signalsOf(old);
          segs.push(...s.segs);
          events.push(...s.events);
        }
      for (const s of segs) add(bySegment, `${d.workspaceId}/${s}`, j);
      for (const e of events) add(byEvent, `${d.workspaceId}/${e}`, j);
    }
    this.latest = l;
    this.versions = v;
    this.bySegment = bySegment;
    this.byEvent = byEvent;
  }

  /** The journey as last saved (its status applies to every version). */
  get(ws: string, id: string): CompiledJourney | undefined {
    return this.latest.get(key(ws, id));
  }

  version(ws: string, id: string, version: number): CompiledJourney | undefined {
    return this.versions.get(`${key(ws, id)}@${version}`);
  }

  /** Every journey as last saved (the time-entry scheduler picks the active ones). */
  all(): CompiledJourney[] {
    return [...this.latest.values()];
  }

  /** Journeys (latest definitions, active or paused) a change of this segment can move. */
  forSegment(ws: string, segmentId: string): CompiledJourney[] {
    return this.bySegment.get(`${ws}/${segmentId}`) ?? [];
  }

  /** Journeys (latest definitions, active or paused) an event of this name can move. */
  forEvent(ws: string, event: string): CompiledJourney[] {
    return this.byEvent.get(`${ws}/${event}`) ?? [];
  }

  /** The workspace's journeys that may have runs under way (not drafts). */
  live(ws: string): CompiledJourney[] {
    const out: CompiledJourney[] = [];
    for (const j of this.latest.values())
      if (j.def.workspaceId === ws && j.def.status !== 'draft') out.push(j);
    return out;
  }

  /** Event names any live journey of the workspace listens to. */
  eventNames(): Set<string> {
    return new Set(this.byEvent.keys());
  }
}
