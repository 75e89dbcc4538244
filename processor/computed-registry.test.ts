import { describe, expect, it } from 'vitest';
import { createLogger } from '../runtime/log.ts';
import type { ComputedTraitDefinition } from '../schemas/computed-trait.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import type { LeadScoreDefinition } from '../schemas/lead-score.ts';
import { ComputedRegistry } from './computed-registry.ts';

const base = {
  workspaceId: 'ws',
  version: 1,
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
};
const trait = (id: string, d: Partial<ComputedTraitDefinition>) =>
  ({ ...base, id, name: id, kind: 'count', event: 'Order', ...d }) as ComputedTraitDefinition;
const order = (properties: Record<string, unknown>, workspaceId = 'ws') =>
  ({ type: 'track', event: 'Order', workspaceId, properties }) as unknown as NormalizedEvent;

function registry() {
  const r = new ComputedRegistry(createLogger({ level: 'silent', name: 'test' }));
  r.replace(
    [
      trait('orders', { window: '7d' }),
      // the same meaning under another name shares the storage: updated once
      trait('orders_again', { window: '7d' }),
      trait('revenue', { kind: 'sum', property: 'cart.total' }),
      trait('big', { where: { '>': [{ var: 'cart.total' }, 100] } }),
      trait('last_coupon', { kind: 'last', property: 'coupon' }),
      trait('logins', { event: 'Login' }),
    ],
    [
      {
        ...base,
        id: 'lead',
        name: 'lead',
        halfLifeDays: 1,
        rules: [
          { event: 'Order', points: 5 },
          { trait: { var: 'traits.vip' }, points: 1 },
        ],
      } as LeadScoreDefinition,
    ],
  );
  return r;
}

describe('ComputedRegistry.extend', () => {
  it('adds the aggregates and score counters an event updates, with values extracted', () => {
    const plan = registry().extend(order({ cart: { total: '150.5' }, coupon: { code: 'X' } }), { add: [] });
    expect(plan.agg?.map(([, kind, value, bucketMs, windowMs]) => [kind, value, bucketMs, windowMs])).toEqual(
      [
        ['count', '1', 3_600_000, 604_800_000],
        ['sum', '150.5', 0, 0],
        ['count', '1', 0, 0],
        ['last', '{"code":"X"}', 0, 0],
      ],
    );
    expect(plan.dec).toEqual([[expect.any(String), 86_400_000]]);
  });

  it('leaves out values an event does not carry, and filters that do not match', () => {
    const plan = registry().extend(order({ cart: { total: 'n/a' } }), { add: [] });
    expect(plan.agg?.map(([, kind]) => kind)).toEqual(['count']);
  });

  it('costs nothing for other events and workspaces: the same plan object comes back', () => {
    const r = registry();
    const plan = { add: [] };
    expect(r.extend(order({}, 'other-ws'), plan)).toBe(plan);
    expect(r.extend({ ...order({}), event: 'Signup' }, plan)).toBe(plan);
    expect(r.extend({ ...order({}), type: 'page' } as NormalizedEvent, plan)).toBe(plan);
  });
});
