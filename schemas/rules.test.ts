import { describe, expect, it } from 'vitest';
import { compileRule, type RuleContext } from './rules.ts';

const ctx = (traits: Record<string, unknown>, segments: string[] = []): RuleContext => ({
  traits,
  profile: { id: 'p', firstSeenAt: null, lastSeenAt: null },
  event: null,
  segments,
  counts: {},
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
    [{ event_count: ['Order Completed', '7 days'] }, /bad window/],
    [{ event_count: ['Order Completed', '500d'] }, /bad window/],
    [{ event_count: ['', '7d'] }, /event name/],
    [{ event_count: ['X', '7d', { nope: [] }] }, /unknown operator "nope" in filter/],
    ['pro', /must be a JSON Logic operation object/],
    [null, /must be a JSON Logic operation object/],
  ])('refuses %o', (rule, pattern) => {
    expect(() => compileRule(rule)).toThrow(pattern);
  });

  it('rewrites event_count into a windowed count the evaluator prepares', () => {
    const r = compileRule({
      '>=': [{ event_count: ['Order Completed', '7d', { '>': [{ var: 'revenue' }, 100] }] }, 2],
    });
    expect(r.counts).toHaveLength(1);
    const c = r.counts[0]!;
    expect(c.windowMs).toBe(7 * 86_400_000);
    expect(c.condition.event).toBe('Order Completed');
    expect(c.condition.matches({ revenue: 150 })).toBe(true);
    expect(c.condition.matches({ revenue: 50 })).toBe(false);
    expect(r.evaluate({ ...ctx({}), counts: { [c.key]: 2 } })).toBe(true);
    expect(r.evaluate({ ...ctx({}), counts: { [c.key]: 1 } })).toBe(false);
    expect(r.evaluate(ctx({}))).toBe(false);
    // the same condition in another rule shares its id (one sorted set per profile)
    const again = compileRule({
      event_count: ['Order Completed', '30d', { '>': [{ var: 'revenue' }, 100] }],
    });
    expect(again.counts[0]!.condition.id).toBe(c.condition.id);
    expect(again.counts[0]!.key).not.toBe(c.key);
  });

  it('reads computed traits and scores by name, and records which', () => {
    const r = compileRule({
      and: [{ '>=': [{ var: 'computed.revenue_30d' }, 100] }, { '>': [{ var: 'scores.lead' }, 50] }],
    });
    expect([...r.computed]).toEqual(['revenue_30d']);
    expect([...r.scores]).toEqual(['lead']);
    expect(r.traits.size).toBe(0);
    expect(r.evaluate({ ...ctx({}), computed: { revenue_30d: 120 }, scores: { lead: 51 } })).toBe(true);
    expect(r.evaluate({ ...ctx({}), computed: { revenue_30d: null }, scores: { lead: 51 } })).toBe(false);
  });

  it('refuses rules nested too deep', () => {
    let rule: unknown = { var: 'traits.a' };
    for (let i = 0; i < 40; i++) rule = { '!': [rule] };
    expect(() => compileRule(rule)).toThrow(/nested deeper/);
  });
});
