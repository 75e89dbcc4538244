// Lead scores: rules that add (or remove) points per matching event, or while a trait
// condition holds, with an optional half-life for event points. The processor keeps, per
// profile and event rule, a decayed count of matching events (value, asOf) in Redis
// (apply-event.lua); the points are applied when the score is read, so editing a rule's
// points takes effect at once and two rules on the same events share one counter.
import { createHash } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { checkShape, DefinitionInputError, NAME_PATTERN } from './definition-input.ts';
import { type CompiledRule, compileCondition, compileRule, type EventCondition, RuleError } from './rules.ts';

/** Scores per workspace, and rules per score. */
export const MAX_SCORES = 50;
export const MAX_SCORE_RULES = 50;
const MAX_POINTS = 1_000_000;
const DAY_MS = 86_400_000;

const Points = Type.Number({ minimum: -MAX_POINTS, maximum: MAX_POINTS });

export const EventScoreRule = Type.Object(
  {
    /** Track event name. */
    event: Type.String({ minLength: 1, maxLength: 512 }),
    /** JSON Logic filter on the event's properties. */
    where: Type.Optional(Type.Unknown()),
    points: Points,
  },
  { additionalProperties: false },
);
export const TraitScoreRule = Type.Object(
  {
    /** JSON Logic on `{traits}`: the points count while it holds. */
    trait: Type.Unknown(),
    points: Points,
  },
  { additionalProperties: false },
);
export type EventScoreRule = Static<typeof EventScoreRule>;
export type TraitScoreRule = Static<typeof TraitScoreRule>;
export type ScoreRule = EventScoreRule | TraitScoreRule;

export const LeadScoreInput = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN }),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    rules: Type.Array(Type.Union([EventScoreRule, TraitScoreRule]), {
      minItems: 1,
      maxItems: MAX_SCORE_RULES,
    }),
    /** Event points halve every this many days; no decay when absent. */
    halfLifeDays: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 3650 })),
  },
  { additionalProperties: false },
);
export type LeadScoreInput = Static<typeof LeadScoreInput>;

// The union above documents the shape; checking each rule against its own kind gives
// errors that name the field instead of "expected union value".
const topCheck = TypeCompiler.Compile(
  Type.Object(
    {
      ...LeadScoreInput.properties,
      rules: Type.Array(Type.Unknown(), { minItems: 1, maxItems: MAX_SCORE_RULES }),
    },
    { additionalProperties: false },
  ),
);
const eventRuleCheck = TypeCompiler.Compile(EventScoreRule);
const traitRuleCheck = TypeCompiler.Compile(TraitScoreRule);

export interface LeadScoreDefinition extends LeadScoreInput {
  id: string;
  workspaceId: string;
  version: number;
  createdAt: string;
  updatedAt: string;
}

const isTraitRule = (r: ScoreRule): r is TraitScoreRule => 'trait' in r;

/** Validates an API body; throws DefinitionInputError naming the field. */
export function checkLeadScoreInput(body: unknown): LeadScoreInput {
  checkShape(topCheck, body, {
    name: 'letters, digits and _, starting with a letter or _, at most 64 (it is read as scores.<name>)',
    rules: `a list of 1 to ${MAX_SCORE_RULES} rules`,
    halfLifeDays: 'a number of days above 0, at most 3650',
  });
  const input = body as LeadScoreInput;
  input.rules.forEach((rule, i) => {
    const at = `rules.${i}`;
    if (rule === null || typeof rule !== 'object' || Array.isArray(rule))
      throw new DefinitionInputError(`${at}: a rule is {event, where?, points} or {trait, points}`);
    if (Object.hasOwn(rule, 'trait')) checkShape(traitRuleCheck, rule, {}, `${at}.`);
    else checkShape(eventRuleCheck, rule, {}, `${at}.`);
    try {
      if (isTraitRule(rule)) {
        const compiled = compileRule(rule.trait);
        if (
          compiled.counts.length > 0 ||
          compiled.segments.size > 0 ||
          compiled.computed.size > 0 ||
          compiled.scores.size > 0 ||
          compiled.readsEvent ||
          compiled.readsProfile
        )
          throw new DefinitionInputError(
            `${at}.trait: may read only traits.* (no event_count, in_segment, event, profile, computed, scores)`,
          );
      } else compileCondition(rule.event, rule.where ?? null, '');
    } catch (err) {
      if (err instanceof RuleError)
        throw new DefinitionInputError(
          `${at}.${isTraitRule(rule) ? 'trait' : 'where'}${err.path}: ${err.detail}`,
        );
      throw err;
    }
  });
  return input;
}

export interface CompiledEventScoreRule {
  /** Names the decayed counter of matching events (shared by rules with the same event, filter, half-life). */
  counterId: string;
  condition: EventCondition;
  points: number;
  /** 0: no decay. */
  halfLifeMs: number;
}

export interface CompiledLeadScore {
  def: LeadScoreDefinition;
  eventRules: CompiledEventScoreRule[];
  traitRules: Array<{ rule: CompiledRule; points: number }>;
}

export function compileLeadScore(def: LeadScoreDefinition): CompiledLeadScore {
  const halfLifeMs = def.halfLifeDays === undefined ? 0 : Math.round(def.halfLifeDays * DAY_MS);
  const eventRules: CompiledEventScoreRule[] = [];
  const traitRules: CompiledLeadScore['traitRules'] = [];
  for (const r of def.rules) {
    if (isTraitRule(r)) traitRules.push({ rule: compileRule(r.trait), points: r.points });
    else {
      const condition = compileCondition(r.event, r.where ?? null, '');
      const counterId = createHash('sha256')
        .update(JSON.stringify([condition.id, halfLifeMs]))
        .digest('base64url')
        .slice(0, 16)
        .replace(/[-_]/g, 'x');
      eventRules.push({ counterId, condition, points: r.points, halfLifeMs });
    }
  }
  return { def, eventRules, traitRules };
}

/**
 * A decayed counter as stored (apply-event.lua): `"<count> <asOf ms> <halfLife ms>"`, read
 * at `nowMs`: count · 2^(−(now − asOf) / halfLife).
 */
export function counterValue(raw: string | undefined, nowMs: number): number {
  if (!raw) return 0;
  const [c, t, h] = raw.split(' ').map(Number) as [number, number, number];
  if (!Number.isFinite(c)) return 0;
  if (!h) return c;
  return c * 2 ** (-Math.max(0, nowMs - t) / h);
}

/** The score now: event points from the counters (field counterId), plus trait points that hold. */
export function scoreValue(
  s: CompiledLeadScore,
  counters: Record<string, string>,
  traits: Record<string, unknown>,
  nowMs: number,
): number {
  let v = 0;
  for (const r of s.eventRules) v += r.points * counterValue(counters[r.counterId], nowMs);
  for (const r of s.traitRules) {
    let holds = false;
    try {
      holds = r.rule.evaluate({
        traits,
        profile: { id: '', firstSeenAt: null, lastSeenAt: null },
        event: null,
        segments: [],
        counts: {},
      });
    } catch {
      holds = false;
    }
    if (holds) v += r.points;
  }
  // enough digits for any score; no float noise such as 0.30000000000000004
  return Math.round(v * 1e6) / 1e6;
}

/** Decayed event points below this are treated as gone (no more re-evaluation for them). */
const NEGLIGIBLE_POINTS = 0.01;
/** A decaying score is looked at again every 1/16 of its half-life (it moves ≤ 4.2% between looks). */
const RECHECK_FRACTION = 16;

/**
 * When a segment reading this score should be evaluated again with no new event, as its
 * event points decay: in 1/16 of the shortest half-life still carrying points, or null.
 * (A threshold crossing is seen that late at most; exact crossing times would need the
 * rule solved for time.)
 */
export function scoreRecheckAt(
  s: CompiledLeadScore,
  counters: Record<string, string>,
  nowMs: number,
): number | null {
  let next: number | null = null;
  for (const r of s.eventRules) {
    if (r.halfLifeMs === 0) continue;
    if (Math.abs(r.points * counterValue(counters[r.counterId], nowMs)) < NEGLIGIBLE_POINTS) continue;
    const at = nowMs + Math.max(1000, Math.round(r.halfLifeMs / RECHECK_FRACTION));
    if (next === null || at < next) next = at;
  }
  return next;
}
