import { describe, expect, it } from 'vitest';
import { createLogger } from '../runtime/log.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import type { SegmentDefinition } from '../schemas/segment.ts';
import { SegmentRegistry } from './segment-registry.ts';

const def = (id: string, rule: unknown): SegmentDefinition => ({
  id,
  workspaceId: 'ws',
  name: id,
  rule,
  version: 1,
  status: 'active',
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
});

function registry() {
  const r = new SegmentRegistry(createLogger({ level: 'silent', name: 'test' }));
  r.replace([
    def('vip', { and: [{ in_segment: ['pro'] }, { in_segment: ['buyer'] }] }),
    def('pro', { '==': [{ var: 'traits.plan' }, 'pro'] }),
    def('buyer', { '>=': [{ event_count: ['Order', '7d'] }, 1] }),
    def('recent', { '>': [{ var: 'profile.lastSeenAt' }, '2026'] }),
    def('big', { '>=': [{ event_count: ['Order', '1d', { '>': [{ var: 'revenue' }, 100] }] }, 1] }),
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
    expect(ids(r.affected('ws', { conditions: plan.add }))).toEqual(['buyer', 'vip', 'recent', 'big']);
    const small = r.conditionPlan({ ...order, properties: { revenue: 5 } });
    expect(small.add).toHaveLength(1);
  });

  it('picks windowed rules when time passes, everything for a new profile, nothing unrelated', () => {
    const r = registry();
    expect(ids(r.affected('ws', { windows: true }))).toEqual(['buyer', 'vip', 'recent', 'big']);
    expect(r.affected('ws', { all: true })).toHaveLength(505);
    expect(ids(r.affected('ws', { traits: ['color'] }))).toEqual(['recent']);
    expect(r.affected('other-ws', { all: true })).toHaveLength(0);
  });

  it('orders every selection by dependency', () => {
    const all = registry().affected('ws', { all: true });
    const rank = new Map(all.map((s, i) => [s.def.id, i]));
    expect(rank.get('pro')!).toBeLessThan(rank.get('vip')!);
    expect(rank.get('buyer')!).toBeLessThan(rank.get('vip')!);
  });
});
