// Compiled segment rules per workspace, rebuilt when definitions change, indexed by what
// they read (trait keys, counted event conditions, other segments), so an event evaluates
// only the rules it can change and per-event cost stays flat as segments grow.

import type { ConditionPlan } from '../profiles/apply-event.ts';
import { ruleHolds } from '../profiles/rule-context.ts';
import type { Logger } from '../runtime/log.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import { type CompiledRule, compileRule, type EventCondition, type RuleContext } from '../schemas/rules.ts';
import type { SegmentDefinition } from '../schemas/segment.ts';

export interface CompiledSegment {
  def: SegmentDefinition;
  rule: CompiledRule;
  /** Position in dependency order: a segment comes after those it reads with in_segment. */
  rank: number;
}

/** What changed for a profile, which decides the segments to evaluate. */
export interface Touched {
  /** Every segment (a backfill of all segments). */
  all?: boolean;
  /**
   * Everything the profile holds: its traits, counted conditions and memberships. For a
   * new, merged or replayed profile, where what changed is not known from the event.
   */
  profile?: { traits: Iterable<string>; conditions: Iterable<string>; memberOf: Iterable<string> };
  traits?: Iterable<string>;
  conditions?: Iterable<string>;
  /** Computed trait names whose value an event changed. */
  computed?: Iterable<string>;
  /** Lead score names whose value an event changed. */
  scores?: Iterable<string>;
  /** Time passed: every segment with a window. */
  windows?: boolean;
  /** These segments (a backfill of one segment; its dependents come with it). */
  segments?: Iterable<string>;
}

interface WorkspaceRules {
  /** In dependency order. */
  segments: CompiledSegment[];
  byId: Map<string, CompiledSegment>;
  /**
   * Segments that hold for a profile with no traits, no counted events and no
   * memberships. A segment outside this list that reads nothing a profile has is false
   * for it, which is what lets a new or merged profile skip most segments.
   */
  trueOnEmpty: CompiledSegment[];
  conditions: Map<string, { condition: EventCondition; retentionMs: number }>;
  /** Counted conditions by event name. */
  conditionsByEvent: Map<string, Array<{ id: string; condition: EventCondition; retentionMs: number }>>;
  byTrait: Map<string, CompiledSegment[]>;
  byCondition: Map<string, CompiledSegment[]>;
  byComputed: Map<string, CompiledSegment[]>;
  byScore: Map<string, CompiledSegment[]>;
  /**
   * Segments reading computed traits or scores: evaluated for every new, merged or
   * replayed profile (an empty profile's values depend on the definitions' kinds), and
   * when time passes (windows and decay).
   */
  readsValues: CompiledSegment[];
  /** Rules that read the event or profile fields, or every trait: evaluated on every event. */
  always: CompiledSegment[];
  windowed: CompiledSegment[];
  dependents: Map<string, CompiledSegment[]>;
}

const emptyRules = (): WorkspaceRules => ({
  segments: [],
  byId: new Map(),
  trueOnEmpty: [],
  conditions: new Map(),
  conditionsByEvent: new Map(),
  byTrait: new Map(),
  byCondition: new Map(),
  byComputed: new Map(),
  byScore: new Map(),
  readsValues: [],
  always: [],
  windowed: [],
  dependents: new Map(),
});
const EMPTY = emptyRules();
const EMPTY_PLAN: ConditionPlan = { add: [] };

const push = <K, V>(m: Map<K, V[]>, k: K, v: V) => {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
};

export class SegmentRegistry {
  private byWorkspace = new Map<string, WorkspaceRules>();

  constructor(private readonly log: Logger) {}

  replace(defs: SegmentDefinition[]): void {
    const compiled = new Map<string, Array<{ def: SegmentDefinition; rule: CompiledRule }>>();
    for (const def of defs) {
      if (def.status !== 'active') continue;
      try {
        push(compiled, def.workspaceId, { def, rule: compileRule(def.rule) });
      } catch (err) {
        // Stored rules were validated on write; one that no longer compiles is skipped, not fatal.
        this.log.error({ segmentId: def.id, err: (err as Error).message }, 'segment_rule_invalid');
      }
    }
    const next = new Map<string, WorkspaceRules>();
    for (const [workspaceId, list] of compiled) next.set(workspaceId, index(list));
    this.byWorkspace = next;
  }

  forWorkspace(workspaceId: string): readonly CompiledSegment[] {
    return (this.byWorkspace.get(workspaceId) ?? EMPTY).segments;
  }

  /**
   * The segments whose truth can have changed, in dependency order: those reading what
   * changed, plus (transitively) every segment that reads one of them with in_segment.
   */
  affected(workspaceId: string, touched: Touched): readonly CompiledSegment[] {
    const ws = this.byWorkspace.get(workspaceId) ?? EMPTY;
    if (touched.all) return ws.segments;
    const picked = new Map<string, CompiledSegment>();
    const add = (list: readonly CompiledSegment[] | undefined) => {
      if (list) for (const s of list) picked.set(s.def.id, s);
    };
    add(ws.always);
    if (touched.windows) add(ws.windowed);
    for (const t of touched.traits ?? []) add(ws.byTrait.get(t));
    for (const c of touched.conditions ?? []) add(ws.byCondition.get(c));
    // a rule reading the whole object (`computed`, `scores`) is indexed under '*'
    for (const [names, index] of [
      [touched.computed, ws.byComputed],
      [touched.scores, ws.byScore],
    ] as const) {
      let any = false;
      for (const n of names ?? []) {
        any = true;
        add(index.get(n));
      }
      if (any) add(index.get('*'));
    }
    for (const id of touched.segments ?? []) {
      const s = ws.byId.get(id);
      if (s) picked.set(id, s);
    }
    if (touched.profile) {
      add(ws.trueOnEmpty);
      add(ws.readsValues);
      for (const t of touched.profile.traits) add(ws.byTrait.get(t));
      for (const c of touched.profile.conditions) add(ws.byCondition.get(c));
      for (const id of touched.profile.memberOf) {
        const s = ws.byId.get(id);
        if (s) picked.set(id, s); // so that an exit is seen
      }
    }
    const queue = [...picked.values()];
    while (queue.length > 0) {
      for (const d of ws.dependents.get(queue.pop()!.def.id) ?? []) {
        if (picked.has(d.def.id)) continue;
        picked.set(d.def.id, d);
        queue.push(d);
      }
    }
    return [...picked.values()].sort((a, b) => a.rank - b.rank);
  }

  /** The counted conditions an event matches (looked up by event name, not scanned). */
  conditionPlan(e: NormalizedEvent): ConditionPlan {
    if (e.type !== 'track' || !e.event) return EMPTY_PLAN;
    const candidates = (this.byWorkspace.get(e.workspaceId) ?? EMPTY).conditionsByEvent.get(e.event);
    if (!candidates) return EMPTY_PLAN;
    const add: ConditionPlan['add'] = [];
    for (const c of candidates) if (c.condition.matches(e.properties)) add.push([c.id, c.retentionMs]);
    return add.length > 0 ? { add } : EMPTY_PLAN;
  }
}

function index(list: Array<{ def: SegmentDefinition; rule: CompiledRule }>): WorkspaceRules {
  const ws = emptyRules();
  // dependency order (cycles are refused when segments are saved; a leftover one is cut)
  const byId = new Map(list.map((s) => [s.def.id, s]));
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (s: { def: SegmentDefinition; rule: CompiledRule }) => {
    if (state.has(s.def.id)) return;
    state.set(s.def.id, 'visiting');
    for (const dep of s.rule.segments) {
      const d = byId.get(dep);
      if (d) visit(d);
    }
    state.set(s.def.id, 'done');
    ws.segments.push({ ...s, rank: ws.segments.length });
  };
  for (const s of list) visit(s);

  for (const s of ws.segments) {
    const { rule } = s;
    if (rule.readsEvent || rule.readsProfile || rule.traits.has('*')) ws.always.push(s);
    for (const t of rule.traits) if (t !== '*') push(ws.byTrait, t, s);
    for (const c of rule.counts) {
      push(ws.byCondition, c.condition.id, s);
      const known = ws.conditions.get(c.condition.id);
      if (!known || known.retentionMs < c.windowMs)
        ws.conditions.set(c.condition.id, { condition: c.condition, retentionMs: c.windowMs });
    }
    for (const n of rule.computed) push(ws.byComputed, n, s);
    for (const n of rule.scores) push(ws.byScore, n, s);
    if (rule.computed.size > 0 || rule.scores.size > 0) ws.readsValues.push(s);
    if (rule.counts.length > 0 || rule.computed.size > 0 || rule.scores.size > 0) ws.windowed.push(s);
    for (const dep of rule.segments) push(ws.dependents, dep, s);
    ws.byId.set(s.def.id, s);
  }
  for (const [id, c] of ws.conditions)
    push(ws.conditionsByEvent, c.condition.event, { id, condition: c.condition, retentionMs: c.retentionMs });

  // evaluated once, in dependency order, against a profile that holds nothing
  const empty: RuleContext = {
    traits: {},
    profile: { id: '', firstSeenAt: null, lastSeenAt: null },
    event: null,
    segments: [],
    counts: {},
  };
  for (const s of ws.segments) {
    for (const c of s.rule.counts) empty.counts[c.key] = 0;
    if (ruleHolds(s.rule, empty)) {
      ws.trueOnEmpty.push(s);
      empty.segments = [...empty.segments, s.def.id];
    }
  }
  return ws;
}
