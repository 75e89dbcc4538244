// Compiled computed traits and lead scores per workspace, rebuilt when definitions change,
// indexed by event name, so an event finds the aggregates and score counters it updates
// with one map lookup (and a workspace without any pays nothing more).

import type { ConditionPlan } from '../profiles/apply-event.ts';
import type { Logger } from '../runtime/log.ts';
import {
  type CompiledComputedTrait,
  type ComputedTraitDefinition,
  compileComputedTrait,
} from '../schemas/computed-trait.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import {
  type CompiledEventScoreRule,
  type CompiledLeadScore,
  compileLeadScore,
  type LeadScoreDefinition,
} from '../schemas/lead-score.ts';

interface WorkspaceComputed {
  traits: CompiledComputedTrait[];
  scores: CompiledLeadScore[];
  /** Computed trait names by storage id; score names by counter id and by trait they read. */
  namesByStorage: Map<string, string[]>;
  scoresByCounter: Map<string, string[]>;
  scoresByTrait: Map<string, string[]>;
  /** Aggregates by event name, one per storage id (equal definitions share storage). */
  aggregatesByEvent: Map<string, CompiledComputedTrait[]>;
  /** Score counters by event name, one per counter id. */
  countersByEvent: Map<string, CompiledEventScoreRule[]>;
}

const push = <V>(m: Map<string, V[]>, k: string, v: V) => {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
};

export class ComputedRegistry {
  private byWorkspace = new Map<string, WorkspaceComputed>();

  constructor(private readonly log: Logger) {}

  replace(traits: readonly ComputedTraitDefinition[], scores: readonly LeadScoreDefinition[]): void {
    const next = new Map<string, WorkspaceComputed>();
    const ws = (id: string) => {
      let w = next.get(id);
      if (!w) {
        w = {
          traits: [],
          scores: [],
          namesByStorage: new Map(),
          scoresByCounter: new Map(),
          scoresByTrait: new Map(),
          aggregatesByEvent: new Map(),
          countersByEvent: new Map(),
        };
        next.set(id, w);
      }
      return w;
    };
    // Stored definitions were validated on write; one that no longer compiles is skipped, not fatal.
    for (const def of traits) {
      try {
        ws(def.workspaceId).traits.push(compileComputedTrait(def));
      } catch (err) {
        this.log.error({ computedTraitId: def.id, err: (err as Error).message }, 'computed_trait_invalid');
      }
    }
    for (const def of scores) {
      try {
        ws(def.workspaceId).scores.push(compileLeadScore(def));
      } catch (err) {
        this.log.error({ scoreId: def.id, err: (err as Error).message }, 'score_invalid');
      }
    }
    for (const w of next.values()) {
      for (const t of w.traits) push(w.namesByStorage, t.storageId, t.def.name);
      for (const s of w.scores) {
        for (const r of s.eventRules) push(w.scoresByCounter, r.counterId, s.def.name);
        for (const r of s.traitRules) for (const t of r.rule.traits) push(w.scoresByTrait, t, s.def.name);
      }
      const seen = new Set<string>();
      for (const t of w.traits) {
        if (seen.has(t.storageId)) continue;
        seen.add(t.storageId);
        push(w.aggregatesByEvent, t.def.event, t);
      }
      for (const s of w.scores)
        for (const r of s.eventRules) {
          if (seen.has(r.counterId)) continue;
          seen.add(r.counterId);
          push(w.countersByEvent, r.condition.event, r);
        }
    }
    this.byWorkspace = next;
  }

  forWorkspace(workspaceId: string): {
    traits: readonly CompiledComputedTrait[];
    scores: readonly CompiledLeadScore[];
  } {
    return this.byWorkspace.get(workspaceId) ?? { traits: [], scores: [] };
  }

  /**
   * The computed trait and score names an event's plan and trait changes moved, for
   * choosing the segments to evaluate (scores with trait rules move with those traits).
   */
  touchedNames(
    workspaceId: string,
    plan: ConditionPlan,
    traits: Iterable<string>,
    out: { computed: Set<string>; scores: Set<string> },
  ): void {
    const w = this.byWorkspace.get(workspaceId);
    if (!w) return;
    for (const [sid] of plan.agg ?? []) for (const n of w.namesByStorage.get(sid) ?? []) out.computed.add(n);
    for (const [cid] of plan.dec ?? []) for (const n of w.scoresByCounter.get(cid) ?? []) out.scores.add(n);
    if (w.scoresByTrait.size === 0) return;
    let any = false;
    for (const t of traits) {
      any = true;
      for (const n of w.scoresByTrait.get(t) ?? []) out.scores.add(n);
    }
    if (any) for (const n of w.scoresByTrait.get('*') ?? []) out.scores.add(n);
  }

  /**
   * `plan` plus the aggregates and score counters the event updates (values extracted
   * here, so the Lua script only stores). The same plan object when the event updates none.
   */
  extend(e: NormalizedEvent, plan: ConditionPlan): ConditionPlan {
    if (e.type !== 'track' || !e.event) return plan;
    const w = this.byWorkspace.get(e.workspaceId);
    if (!w) return plan;
    const aggs = w.aggregatesByEvent.get(e.event);
    const counters = w.countersByEvent.get(e.event);
    if (!aggs && !counters) return plan;
    const agg: NonNullable<ConditionPlan['agg']> = [];
    for (const a of aggs ?? []) {
      if (!a.condition.matches(e.properties)) continue;
      const v = a.contribution(e.properties);
      if (v !== undefined) agg.push([a.storageId, a.kind, v, a.bucketMs, a.windowMs]);
    }
    const dec: NonNullable<ConditionPlan['dec']> = [];
    for (const r of counters ?? [])
      if (r.condition.matches(e.properties)) dec.push([r.counterId, r.halfLifeMs]);
    if (agg.length === 0 && dec.length === 0) return plan;
    return { ...plan, ...(agg.length > 0 ? { agg } : {}), ...(dec.length > 0 ? { dec } : {}) };
  }
}
