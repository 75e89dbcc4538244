import { describe, expect, it } from 'vitest';
import { compileRule, type RuleContext } from './rules.ts';

const ctx = (traits: Record<string, unknown>, segments: string[] = []): RuleContext => ({
  traits,
  profile: { id: 'p', firstSeenAt: null, lastSeenAt: null },
  event: null,
  segments,
});

describe('compileRule', () => {
  it('evaluates trait comparisons and records what the rule reads', () => {
    const r = compileRule({
      and: [{ '==': [{ var: 'traits.plan' }, 'pro'] }, { '>': [{ var: 'traits.seats' }, 5] }],
    });
    expect(r.traits).toEqual(new Set(['plan', 'seats']));
    expect(r.evaluate(ctx({ plan: 'pro', seats: 6 }))).toBe(true);
    expect(r.evaluate(ctx({ plan: 'pro', seats: 5 }))).toBe(false);
    expect(r.evaluate(ctx({}))).toBe(false);
  });

  it('rewrites in_segment into a membership lookup', () => {
    const r = compileRule({ in_segment: ['seg_a'] });
    expect(r.segments).toEqual(new Set(['seg_a']));
    expect(r.evaluate(ctx({}, ['seg_a']))).toBe(true);
    expect(r.evaluate(ctx({}, ['seg_b']))).toBe(false);
  });

  it.each([
    [{ nope: [1] }, /unknown operator "nope"/],
    [{ '==': [1, 1], '!=': [1, 2] }, /exactly one operator/],
    [{ var: 'secret.x' }, /unknown field "secret.x"/],
    [{ in_segment: [] }, /in_segment takes one segment id/],
    [{ event_count: ['Order Completed', '7d'] }, /not supported by this version yet/],
    ['pro', /must be a JSON Logic operation object/],
    [null, /must be a JSON Logic operation object/],
  ])('refuses %o', (rule, pattern) => {
    expect(() => compileRule(rule)).toThrow(pattern);
  });

  it('refuses rules nested too deep', () => {
    let rule: unknown = { var: 'traits.a' };
    for (let i = 0; i < 40; i++) rule = { '!': [rule] };
    expect(() => compileRule(rule)).toThrow(/nested deeper/);
  });
});
