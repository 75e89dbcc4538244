// The tracking plan's checks at save (shape, hostile schemas) and the compiled validator.
import { describe, expect, it } from 'vitest';
import type { NormalizedEvent } from './event.ts';
import { hasNestedQuantifier } from './safe-regex.ts';
import {
  checkTrackingPlanInput,
  compilePlan,
  MAX_VIOLATIONS,
  PLAN_ID,
  type TrackingPlan,
  type TrackingPlanInput,
} from './tracking-plan.ts';

const ORDER = {
  type: 'object',
  required: ['order_id', 'total'],
  properties: {
    order_id: { type: 'string', pattern: '^ord_[0-9]+$' },
    total: { type: 'number', minimum: 0 },
    currency: { enum: ['USD', 'EUR'] },
    placed_at: { type: 'string', format: 'date-time' },
    items: { type: 'array', items: { $ref: '#/$defs/item' } },
  },
  $defs: { item: { type: 'object', required: ['sku'], properties: { sku: { type: 'string' } } } },
  additionalProperties: false,
};

function plan(input: Partial<TrackingPlanInput> = {}): TrackingPlan {
  const body: TrackingPlanInput = {
    mode: 'flag',
    events: {
      'Order Completed': {
        properties: ORDER,
        traits: { type: 'object', properties: { plan: { type: 'string' } } },
      },
      'Page Liked': {},
    },
    identify: { traits: { type: 'object', required: ['email'], properties: { email: { format: 'email' } } } },
    ...input,
  };
  checkTrackingPlanInput(body);
  return {
    ...body,
    id: PLAN_ID,
    workspaceId: 'ws',
    version: 3,
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
  };
}

function ev(over: Partial<NormalizedEvent>): NormalizedEvent {
  return {
    workspaceId: 'ws',
    type: 'track',
    messageId: 'm1',
    userId: 'u1',
    anonymousId: null,
    properties: {},
    traits: {},
    context: {},
    integrations: {},
    timestamp: '2026-01-01T00:00:00Z',
    receivedAt: '2026-01-01T00:00:00Z',
    ...over,
  };
}

describe('compiled plan', () => {
  const p = compilePlan(plan());

  it('passes a conforming event and names each violation by property path and keyword', () => {
    expect(
      p.check(
        ev({
          event: 'Order Completed',
          properties: {
            order_id: 'ord_1',
            total: 10,
            currency: 'EUR',
            placed_at: '2026-01-01T10:00:00Z',
            items: [{ sku: 'a' }],
          },
        }),
      ),
    ).toBeUndefined();
    const v = p.check(
      ev({
        event: 'Order Completed',
        properties: {
          order_id: 'x',
          total: '10',
          currency: 'GBP',
          placed_at: 'yesterday',
          items: [{}],
          extra: 1,
        },
        context: { traits: { plan: 5 } },
      }),
    );
    const got = (v ?? []).map((x) => `${x.path} ${x.keyword}`).sort();
    expect(got).toEqual(
      [
        'properties.order_id pattern',
        'properties.total type',
        'properties.currency enum',
        'properties.placed_at format',
        'properties.items.0.sku required',
        'properties.extra additionalProperties',
        'context.traits.plan type',
      ].sort(),
    );
    expect(v!.every((x) => x.message.length > 0)).toBe(true);
  });

  it('reports a missing required property at its own path', () => {
    const v = p.check(ev({ event: 'Order Completed', properties: { order_id: 'ord_2' } }));
    expect(v).toEqual([
      { path: 'properties.total', keyword: 'required', message: "must have required property 'total'" },
    ]);
  });

  it('checks identify traits; leaves unplanned events, pages and events without schemas alone', () => {
    expect(p.check(ev({ type: 'identify', traits: { email: 'not-an-email' } }))).toEqual([
      expect.objectContaining({ path: 'traits.email', keyword: 'format' }),
    ]);
    expect(p.check(ev({ type: 'identify', traits: {} }))?.[0]?.path).toBe('traits.email');
    expect(p.check(ev({ type: 'identify', traits: { email: 'a@b.co' } }))).toBeUndefined();
    expect(p.check(ev({ event: 'Something Else', properties: { any: 1 } }))).toBeUndefined();
    expect(p.check(ev({ event: 'Page Liked', properties: { any: 1 } }))).toBeUndefined();
    expect(p.check(ev({ type: 'page', name: 'Home' }))).toBeUndefined();
    // an event named like an Object.prototype member is just unplanned
    expect(p.check(ev({ event: 'constructor' }))).toBeUndefined();
  });

  it('treats unplanned event names as violations when the plan says so', () => {
    const strict = compilePlan(plan({ unplannedEvents: 'violation' }));
    expect(strict.check(ev({ event: '__proto__' }))).toEqual([
      { path: 'event', keyword: 'unplanned', message: 'event "__proto__" is not in the tracking plan' },
    ]);
    expect(strict.check(ev({ event: 'Page Liked' }))).toBeUndefined();
  });

  it('keeps at most MAX_VIOLATIONS per event', () => {
    const props: Record<string, unknown> = {};
    const schema = { type: 'object', properties: {} as Record<string, unknown> };
    for (let i = 0; i < 30; i++) {
      schema.properties[`p${i}`] = { type: 'integer' };
      props[`p${i}`] = 'x';
    }
    const many = compilePlan(plan({ events: { Many: { properties: schema } } }));
    expect(many.check(ev({ event: 'Many', properties: props }))).toHaveLength(MAX_VIOLATIONS);
  });
});

describe('plan input', () => {
  const refused = (input: unknown, where: string) => {
    expect(() => checkTrackingPlanInput(input)).toThrow(where);
  };

  it('refuses hostile or broken schemas, naming the path', () => {
    const one = (properties: unknown) => ({ mode: 'flag', events: { Signed: { properties } } });
    refused(one({ $ref: 'https://evil.example/schema.json' }), 'events."Signed".properties.$ref');
    refused(
      one({ properties: { a: { $ref: 'other.json#/x' } } }),
      'events."Signed".properties.properties.a.$ref',
    );
    refused(one({ $id: 'https://x.example/s' }), 'properties.$id');
    refused(
      one({ properties: { a: { type: 'string', pattern: '(a+)+$' } } }),
      'properties.properties.a.pattern',
    );
    refused(one({ properties: { a: { pattern: '((a*)b)*' } } }), 'a repeated group');
    refused(one({ patternProperties: { '(x+)*': {} } }), 'patternProperties');
    refused(one({ pattern: '(' }), 'not a valid regular expression');
    refused(one({ type: 'strin' }), 'events."Signed".properties: does not compile');
    refused(one({ $ref: '#/$defs/missing' }), 'does not compile');
    refused(
      one({ properties: { a: { enum: 'x'.repeat(70_000).split('') } } }),
      'over the 65536-byte schema limit',
    );
    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 40; i++) deep = { type: 'object', properties: { a: deep } };
    refused(one(deep), 'nested deeper than');
    refused({ mode: 'block', events: {} }, 'mode');
    refused({ mode: 'flag', events: {}, extra: 1 }, 'extra: unknown field');
    refused({ mode: 'flag', events: { E: { props: {} } } }, 'unknown field');
    refused({ mode: 'flag', events: {}, identify: { traits: { $ref: 'http://x' } } }, 'identify.traits.$ref');
  });

  it('takes data that merely looks like keywords, and local refs', () => {
    expect(() =>
      checkTrackingPlanInput({
        mode: 'quarantine',
        events: {
          E: {
            properties: {
              type: 'object',
              properties: { pattern: { const: { $ref: 'http://not-a-ref' } }, $ref: { type: 'string' } },
              $defs: { x: { type: 'string' } },
              additionalProperties: { $ref: '#/$defs/x' },
            },
          },
        },
      }),
    ).not.toThrow();
  });

  it('nested quantifier check', () => {
    for (const bad of ['(a+)+', '(a*)*', '(a{2,})+', '((a+))+', '(?:x|y+){2}', '((ab)*c)+'])
      expect(hasNestedQuantifier(bad), bad).toBe(true);
    for (const ok of ['[A-Z]{3}-\\d{2}', '(ab)+', '^ord_[0-9]+$', '\\(a+\\)+', '[(a+)]+', '(a+)?', '(a|b)*'])
      expect(hasNestedQuantifier(ok), ok).toBe(false);
  });
});
