// Compiled segment rules per workspace, rebuilt when definitions change.

import type { Logger } from '../runtime/log.ts';
import { type CompiledRule, compileRule } from '../schemas/rules.ts';
import type { SegmentDefinition } from '../schemas/segment.ts';

export interface CompiledSegment {
  def: SegmentDefinition;
  rule: CompiledRule;
}

export class SegmentRegistry {
  private byWorkspace = new Map<string, CompiledSegment[]>();

  constructor(private readonly log: Logger) {}

  replace(defs: SegmentDefinition[]): void {
    const next = new Map<string, CompiledSegment[]>();
    for (const def of defs) {
      if (def.status !== 'active') continue;
      try {
        const list = next.get(def.workspaceId) ?? [];
        list.push({ def, rule: compileRule(def.rule) });
        next.set(def.workspaceId, list);
      } catch (err) {
        // Stored rules were validated on write; one that no longer compiles is skipped, not fatal.
        this.log.error({ segmentId: def.id, err: (err as Error).message }, 'segment_rule_invalid');
      }
    }
    this.byWorkspace = next;
  }

  forWorkspace(workspaceId: string): readonly CompiledSegment[] {
    return this.byWorkspace.get(workspaceId) ?? [];
  }
}
