import { describe, expect, it } from 'vitest';
import { createLogger } from '../runtime/log.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import type { SegmentDefinition } from '../schemas/segment.ts';
import { segmentDef } from '../test/fixtures.ts';
import { SegmentRegistry } from './segment-registry.ts';

const def = (id: string, rule: unknown): SegmentDefinition => segmentDef(id, rule);

function registry() {
  const r = new SegmentRegistry(createLogger({ level: 'silent', name: 'test' }));
  r.replace([
    def('vip', { and: [{ in_segment: ['pro'] }, { in_segment: ['buyer'] }] }),
    def('pro', { '==': [{ var: 'traits.plan' }, 'pro'] }),
    def('buyer', { '>=': [{ event_count: ['Order', '7d'] }, 1] }),
    def('recent', { '>': [{ var: 'profile.lastSeenAt' }, '2026'] }),
    def('big', { '>=': [{ event_count: ['Order', '1d', { '>': [{ var: 'revenue' }, 100] }] }, 1] }),
    def('free', { '!': [{ var: 'traits.paid' }] }),
    def('lapsed', { and: [{ in_segment: ['free'] }, { '<': [{ event_count: ['Login', '30d'] }, 1] }] }),
    ...Array.from({ length: 500 }, (_, i) => def(`other${i}`, { '==': [{ var: `traits.unused${i}` }, i] })),
  ]);
  return r;
}
const ids = (list: readonly { def: { id: string } }[]) => list.map((s) => s.def.id);

describe('SegmentRegistry.affected', () => {
  it('picks the rules reading a changed trait, their in_segment dependents, and the always-rules', () => {
    expect(ids(registry().affected('ws', { traits: ['plan'] }))).toEqual(['pro', 'vip', 'recent']);
  });

  it('picks rules counting a matched condition', () => {
    const r = registry();
    const order = {
      type: 'track',
      event: 'Order',
      properties: { revenue: 150 },
      workspaceId: 'ws',
    } as unknown as NormalizedEvent;
    const plan = r.conditionPlan(order);
    expect(plan.add).toHaveLength(2); // the plain count and the filtered one
    expect(ids(r.affected('ws', { conditions: plan.add.map(([id]) => id) }))).toEqual([
      'buyer',
      'vip',
      'recent',
      'big',
    ]);
    const small = r.conditionPlan({ ...order, properties: { revenue: 5 } });
    expect(small.add).toHaveLength(1);
  });

  it('picks windowed rules when time passes, everything for a new profile, nothing unrelated', () => {
    const r = registry();
    expect(ids(r.affected('ws', { windows: true }))).toEqual(['buyer', 'vip', 'recent', 'big', 'lapsed']);
    expect(r.affected('ws', { all: true })).toHaveLength(507);
    expect(ids(r.affected('ws', { traits: ['color'] }))).toEqual(['recent']);
    expect(r.affected('other-ws', { all: true })).toHaveLength(0);
  });

  it('for a new or merged profile, picks what it holds and what holds on an empty profile', () => {
    const r = registry();
    const none = { traits: [], conditions: [], memberOf: [] };
    // 'free' and 'lapsed' hold for a profile with nothing; 'recent' reads the profile itself
    expect(ids(r.affected('ws', { profile: none }))).toEqual(['recent', 'free', 'lapsed']);
    // what the profile holds brings in the rules reading it, and the memberships it has (exits)
    const held = r.affected('ws', {
      profile: { traits: ['plan', 'unused7'], conditions: [], memberOf: ['other300'] },
    });
    expect(ids(held).sort()).toEqual(['free', 'lapsed', 'other300', 'other7', 'pro', 'recent', 'vip'].sort());
    expect(held.length).toBeLessThan(10); // not the 507 segments of the workspace
  });

  it('looks counted conditions up by event name', () => {
    const r = registry();
    const login = {
      type: 'track',
      event: 'Login',
      properties: {},
      workspaceId: 'ws',
    } as unknown as NormalizedEvent;
    expect(r.conditionPlan(login).add).toEqual([[expect.any(String), 30 * 86_400_000]]);
    expect(r.conditionPlan({ ...login, event: 'Other' }).add).toEqual([]);
    expect(r.conditionPlan({ ...login, type: 'identify' }).add).toEqual([]);
  });

  it('picks rules reading a computed trait or score only when its value moved, and on time and new profiles', () => {
    const r = new SegmentRegistry(createLogger({ level: 'silent', name: 'test' }));
    r.replace([
      def('spender', { '>=': [{ var: 'computed.revenue' }, 100] }),
      def('hot', { '>': [{ var: 'scores.lead' }, 10] }),
      def('any_value', { '!!': [{ var: 'computed' }] }),
      def('pro', { '==': [{ var: 'traits.plan' }, 'pro'] }),
    ]);
    expect(ids(r.affected('ws', { computed: ['revenue'] }))).toEqual(['spender', 'any_value']);
    expect(ids(r.affected('ws', { computed: ['other'] }))).toEqual(['any_value']);
    expect(ids(r.affected('ws', { scores: ['lead'] }))).toEqual(['hot']);
    expect(ids(r.affected('ws', { traits: ['plan'] }))).toEqual(['pro']);
    expect(ids(r.affected('ws', { windows: true }))).toEqual(['spender', 'hot', 'any_value']);
    const none = { traits: [], conditions: [], memberOf: [] };
    expect(ids(r.affected('ws', { profile: none }))).toEqual(['spender', 'hot', 'any_value']);
  });

  it('orders every selection by dependency', () => {
    const all = registry().affected('ws', { all: true });
    const rank = new Map(all.map((s, i) => [s.def.id, i]));
    expect(rank.get('pro')!).toBeLessThan(rank.get('vip')!);
    expect(rank.get('buyer')!).toBeLessThan(rank.get('vip')!);
  });
});
