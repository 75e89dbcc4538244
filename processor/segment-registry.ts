// Compiled segment rules per workspace, rebuilt when definitions change, indexed by what
// they read (trait keys, counted event conditions, other segments), so an event evaluates
// only the rules it can change and per-event cost stays flat as segments grow.
import type { Logger } from '../runtime/log.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import { type CompiledRule, compileRule, type EventCondition } from '../schemas/rules.ts';
import type { SegmentDefinition } from '../schemas/segment.ts';
import type { ConditionPlan } from './apply-event.ts';

export interface CompiledSegment {
  def: SegmentDefinition;
  rule: CompiledRule;
  /** Position in dependency order: a segment comes after those it reads with in_segment. */
  rank: number;
}

/** What changed for a profile, which decides the segments to evaluate. */
export interface Touched {
  /** Every segment: a new or merged profile, a backfill. */
  all?: boolean;
  traits?: Iterable<string>;
  conditions?: Iterable<string>;
  /** Time passed: every segment with a window. */
  windows?: boolean;
}

interface WorkspaceRules {
  /** In dependency order. */
  segments: CompiledSegment[];
  conditions: Map<string, { condition: EventCondition; retentionMs: number }>;
  read: ConditionPlan['read'];
  byTrait: Map<string, CompiledSegment[]>;
  byCondition: Map<string, CompiledSegment[]>;
  /** Rules that read the event or profile fields, or every trait: evaluated on every event. */
  always: CompiledSegment[];
  windowed: CompiledSegment[];
  dependents: Map<string, CompiledSegment[]>;
}

const emptyRules = (): WorkspaceRules => ({
  segments: [],
  conditions: new Map(),
  read: [],
  byTrait: new Map(),
  byCondition: new Map(),
  always: [],
  windowed: [],
  dependents: new Map(),
});
const EMPTY = emptyRules();
const EMPTY_PLAN: ConditionPlan = { add: [], read: [] };

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

  /** The counted conditions an event adds to, and those the workspace's rules read. */
  conditionPlan(e: NormalizedEvent): ConditionPlan {
    const ws = this.byWorkspace.get(e.workspaceId) ?? EMPTY;
    if (ws.conditions.size === 0) return EMPTY_PLAN;
    const add: string[] = [];
    if (e.type === 'track' && e.event)
      for (const [id, { condition }] of ws.conditions)
        if (condition.event === e.event && condition.matches(e.properties)) add.push(id);
    return { add, read: ws.read };
  }

  readPlan(workspaceId: string): ConditionPlan['read'] {
    return (this.byWorkspace.get(workspaceId) ?? EMPTY).read;
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
    if (rule.counts.length > 0) ws.windowed.push(s);
    for (const dep of rule.segments) push(ws.dependents, dep, s);
  }
  ws.read = [...ws.conditions].map(([id, c]) => [id, c.retentionMs]);
  return ws;
}
