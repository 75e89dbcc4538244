// Compiled segment rules per workspace, rebuilt when definitions change, with the counted
// event conditions they read (and how long each must be kept).
import type { Logger } from '../runtime/log.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import { type CompiledRule, compileRule, type EventCondition } from '../schemas/rules.ts';
import type { SegmentDefinition } from '../schemas/segment.ts';
import type { ConditionPlan } from './apply-event.ts';

export interface CompiledSegment {
  def: SegmentDefinition;
  rule: CompiledRule;
}

interface WorkspaceRules {
  segments: CompiledSegment[];
  /** condition id → condition and the longest window reading it */
  conditions: Map<string, { condition: EventCondition; retentionMs: number }>;
  read: ConditionPlan['read'];
}

const EMPTY: WorkspaceRules = { segments: [], conditions: new Map(), read: [] };

export class SegmentRegistry {
  private byWorkspace = new Map<string, WorkspaceRules>();

  constructor(private readonly log: Logger) {}

  replace(defs: SegmentDefinition[]): void {
    const next = new Map<string, WorkspaceRules>();
    for (const def of defs) {
      if (def.status !== 'active') continue;
      let rule: CompiledRule;
      try {
        rule = compileRule(def.rule);
      } catch (err) {
        // Stored rules were validated on write; one that no longer compiles is skipped, not fatal.
        this.log.error({ segmentId: def.id, err: (err as Error).message }, 'segment_rule_invalid');
        continue;
      }
      const ws: WorkspaceRules = next.get(def.workspaceId) ?? {
        segments: [],
        conditions: new Map(),
        read: [],
      };
      ws.segments.push({ def, rule });
      for (const c of rule.counts) {
        const known = ws.conditions.get(c.condition.id);
        if (!known || known.retentionMs < c.windowMs)
          ws.conditions.set(c.condition.id, { condition: c.condition, retentionMs: c.windowMs });
      }
      next.set(def.workspaceId, ws);
    }
    for (const ws of next.values()) ws.read = [...ws.conditions].map(([id, c]) => [id, c.retentionMs]);
    this.byWorkspace = next;
  }

  forWorkspace(workspaceId: string): readonly CompiledSegment[] {
    return (this.byWorkspace.get(workspaceId) ?? EMPTY).segments;
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

const EMPTY_PLAN: ConditionPlan = { add: [], read: [] };
