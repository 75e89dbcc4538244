// What a segment rule (JSON Logic, schemas/rules.ts) reads of a profile, built one way for
// the processor's evaluation (processor/evaluate-segments.ts) and the query service's
// preview (query/preview-segment.ts), so a preview holds exactly where the segment would.
import type { CompiledRule, RuleContext } from '../schemas/rules.ts';
import { memberSegments } from './read.ts';
import type { ComputedValues } from './values.ts';

/** A profile as rules see it: its traits, memberships (epochs) and seen times. */
export interface RuleProfile {
  traits: Record<string, unknown>;
  /** segment id → membership epoch (odd = member) */
  epochs: Record<string, number>;
  firstSeenAt: string | null;
  lastSeenAt: string | null;
}

/**
 * The context a rule is evaluated in: `counts` are the windowed counts by key
 * (WindowedCount.key), `values` the computed traits and lead scores read (none: empty).
 */
export function ruleContext(
  profileId: string,
  p: RuleProfile,
  event: Record<string, unknown> | null,
  counts: Record<string, number>,
  values?: ComputedValues,
): RuleContext {
  return {
    traits: p.traits,
    profile: { id: profileId, firstSeenAt: p.firstSeenAt, lastSeenAt: p.lastSeenAt },
    event,
    segments: memberSegments(p.epochs),
    counts,
    computed: values?.computed ?? {},
    scores: values?.scores ?? {},
  };
}

/** Whether the rule holds; a rule that throws (a value of an unexpected type) does not. */
export function ruleHolds(rule: CompiledRule, ctx: RuleContext): boolean {
  try {
    return rule.evaluate(ctx);
  } catch {
    return false;
  }
}
