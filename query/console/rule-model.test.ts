// The builder's tree → JSON Logic → tree, for every operator the builder offers; every
// rule it makes is accepted by the server's rule compiler and means what the builder says.
import { describe, expect, it } from 'vitest';
import { compileRule, type RuleContext } from '../../schemas/rules.ts';
import {
  COMPARE_OPS,
  type Compare,
  fromLogic,
  NotBuildable,
  problems,
  type RuleNode,
  toLogic,
} from './rule-model.js';

const group = (op: 'and' | 'or', children: RuleNode[], negate = false): RuleNode => ({
  kind: 'group',
  op,
  negate,
  children,
});
const trait = (
  field: string,
  op: Compare['op'],
  value: string,
  type: Compare['type'] = 'text',
): RuleNode => ({
  kind: 'trait',
  field,
  op,
  type,
  value,
});
const ctx = (
  traits: Record<string, unknown>,
  counts: Record<string, number> = {},
  segments: string[] = [],
): RuleContext => ({
  traits,
  profile: { id: 'p', firstSeenAt: null, lastSeenAt: null },
  event: null,
  segments,
  counts,
});

describe('rule model', () => {
  const cases: Array<{
    name: string;
    node: RuleNode;
    logic: unknown;
    holds: RuleContext;
    fails: RuleContext;
  }> = [
    {
      name: 'is',
      node: trait('plan', '==', 'pro'),
      logic: { '==': [{ var: 'traits.plan' }, 'pro'] },
      holds: ctx({ plan: 'pro' }),
      fails: ctx({ plan: 'free' }),
    },
    {
      name: 'is not',
      node: trait('plan', '!=', 'pro'),
      logic: { '!=': [{ var: 'traits.plan' }, 'pro'] },
      holds: ctx({ plan: 'free' }),
      fails: ctx({ plan: 'pro' }),
    },
    {
      name: 'greater than (number)',
      node: trait('age', '>', '30', 'number'),
      logic: { '>': [{ var: 'traits.age' }, 30] },
      holds: ctx({ age: 31 }),
      fails: ctx({ age: 30 }),
    },
    {
      name: 'at least',
      node: trait('age', '>=', '30', 'number'),
      logic: { '>=': [{ var: 'traits.age' }, 30] },
      holds: ctx({ age: 30 }),
      fails: ctx({ age: 29 }),
    },
    {
      name: 'less than',
      node: trait('age', '<', '30', 'number'),
      logic: { '<': [{ var: 'traits.age' }, 30] },
      holds: ctx({ age: 29 }),
      fails: ctx({ age: 30 }),
    },
    {
      name: 'at most',
      node: trait('age', '<=', '30', 'number'),
      logic: { '<=': [{ var: 'traits.age' }, 30] },
      holds: ctx({ age: 30 }),
      fails: ctx({ age: 31 }),
    },
    {
      name: 'boolean',
      node: trait('vip', '==', 'true', 'boolean'),
      logic: { '==': [{ var: 'traits.vip' }, true] },
      holds: ctx({ vip: true }),
      fails: ctx({ vip: false }),
    },
    {
      name: 'one of',
      node: trait('country', 'in_list', 'FR, DE'),
      logic: { in: [{ var: 'traits.country' }, ['FR', 'DE']] },
      holds: ctx({ country: 'DE' }),
      fails: ctx({ country: 'US' }),
    },
    {
      name: 'contains',
      node: trait('email', 'contains', '@acme.com'),
      logic: { in: ['@acme.com', { var: 'traits.email' }] },
      holds: ctx({ email: 'a@acme.com' }),
      fails: ctx({ email: 'a@b.com' }),
    },
    {
      name: 'is set',
      node: trait('phone', 'exists', ''),
      logic: { '!!': [{ var: 'traits.phone' }] },
      holds: ctx({ phone: '+33' }),
      fails: ctx({}),
    },
    {
      name: 'is not set',
      node: trait('phone', 'missing', ''),
      logic: { '!': [{ var: 'traits.phone' }] },
      holds: ctx({}),
      fails: ctx({ phone: '+33' }),
    },
    {
      name: 'in segment',
      node: { kind: 'segment', segmentId: 'seg_1', member: true },
      logic: { in_segment: ['seg_1'] },
      holds: ctx({}, {}, ['seg_1']),
      fails: ctx({}),
    },
    {
      name: 'not in segment',
      node: { kind: 'segment', segmentId: 'seg_1', member: false },
      logic: { '!': [{ in_segment: ['seg_1'] }] },
      holds: ctx({}),
      fails: ctx({}, {}, ['seg_1']),
    },
  ];
  for (const c of cases)
    it(`${c.name}: JSON Logic, round trip and meaning`, () => {
      const root = group('and', [c.node]);
      expect(toLogic(root)).toEqual(c.logic);
      expect(fromLogic(c.logic)).toEqual(root);
      expect(problems(root)).toEqual([]);
      const compiled = compileRule(c.logic);
      expect(compiled.evaluate(c.holds)).toBe(true);
      expect(compiled.evaluate(c.fails)).toBe(false);
    });

  it('covers every comparison the builder offers', () => {
    const tested = new Set(cases.flatMap((c) => (c.node.kind === 'trait' ? [c.node.op] : [])));
    expect(COMPARE_OPS.map(([op]) => op).filter((op) => !tested.has(op))).toEqual([]);
  });

  it('event count in a window with property filters, in nested and/or/not groups', () => {
    const root = group('or', [
      group('and', [
        trait('plan', '==', 'pro'),
        {
          kind: 'event',
          event: 'Order Completed',
          cmp: '>=',
          count: '2',
          window: '7',
          unit: 'd',
          filters: [
            { field: 'currency', op: '==', type: 'text', value: 'EUR' },
            { field: 'total', op: '>', type: 'number', value: '10' },
          ],
        },
      ]),
      group(
        'and',
        [{ kind: 'event', event: 'Signed Up', cmp: '==', count: '0', window: '30', unit: 'm', filters: [] }],
        true,
      ),
    ]);
    const logic = toLogic(root);
    expect(logic).toEqual({
      or: [
        {
          and: [
            { '==': [{ var: 'traits.plan' }, 'pro'] },
            {
              '>=': [
                {
                  event_count: [
                    'Order Completed',
                    '7d',
                    { and: [{ '==': [{ var: 'currency' }, 'EUR'] }, { '>': [{ var: 'total' }, 10] }] },
                  ],
                },
                2,
              ],
            },
          ],
        },
        { '!': [{ and: [{ '==': [{ event_count: ['Signed Up', '30m'] }, 0] }] }] },
      ],
    });
    expect(fromLogic(logic)).toEqual(root);
    const compiled = compileRule(logic);
    expect(compiled.counts.map((c) => [c.condition.event, c.windowMs])).toEqual([
      ['Order Completed', 7 * 86_400_000],
      ['Signed Up', 30 * 60_000],
    ]);
    const key = (e: string) => compiled.counts.find((c) => c.condition.event === e)!.key;
    expect(compiled.counts[0]!.condition.matches({ currency: 'EUR', total: 11 })).toBe(true);
    expect(compiled.counts[0]!.condition.matches({ currency: 'EUR', total: 9 })).toBe(false);
    expect(
      compiled.evaluate(ctx({ plan: 'pro' }, { [key('Order Completed')]: 2, [key('Signed Up')]: 0 })),
    ).toBe(true);
    expect(
      compiled.evaluate(ctx({ plan: 'pro' }, { [key('Order Completed')]: 1, [key('Signed Up')]: 0 })),
    ).toBe(false);
    // "not (signed up 0 times in 30m)" is the second branch
    expect(
      compiled.evaluate(ctx({ plan: 'free' }, { [key('Order Completed')]: 0, [key('Signed Up')]: 1 })),
    ).toBe(true);
  });

  it('names what is missing, and refuses rules it cannot show', () => {
    expect(problems(group('and', []))).toEqual(['rule: add at least one condition']);
    expect(
      problems(
        group('and', [
          trait('', '==', 'x'),
          trait('age', '>', 'old', 'number'),
          { kind: 'event', event: '', cmp: '>=', count: '1', window: '0', unit: 'd', filters: [] },
          { kind: 'segment', segmentId: '', member: true },
        ]),
      ),
    ).toEqual([
      'rule.1: the trait is required',
      'rule.2: the value must be a number',
      'rule.3: the event name is required',
      'rule.3: the window must be a whole number above 0',
      'rule.4: choose a segment',
    ]);
    expect(() => fromLogic({ '+': [1, 2] })).toThrow(NotBuildable);
  });
});
