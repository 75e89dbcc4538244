import { describe, expect, it } from 'vitest';
import {
  applyMapping,
  checkDestination,
  DestinationError,
  type DestinationInput,
  deliveryBody,
  MAX_ITEM_BYTES,
  passesFilter,
} from './destination.ts';

const input = (mapping: DestinationInput['mapping'], filter?: unknown): DestinationInput => ({
  name: 'd',
  type: 'http',
  source: { kind: 'events', ...(filter === undefined ? {} : { filter }) },
  ...(mapping ? { mapping } : {}),
  http: { url: 'https://example.com' },
});

describe('destination mapping', () => {
  const event = {
    event: 'Signed Up',
    userId: 'u1',
    properties: { plan: 'pro', items: [{ sku: 'a' }, { sku: 'b' }] },
    context: { page: { url: 'https://x.test/' } },
  };

  it('reads paths (array indexes too), writes nested fields, leaves out what is missing', async () => {
    const out = await applyMapping(
      {
        user: 'userId',
        'page.url': 'context.page.url',
        'page.firstSku': 'properties.items.1.sku',
        missing: 'properties.nope.deeper',
        version: { const: { v: 2 } },
        greeting: { liquid: 'Hi {{ userId }} on {{ properties.plan }}' },
      },
      event,
    );
    expect(out).toEqual({
      user: 'u1',
      page: { url: 'https://x.test/', firstSku: 'b' },
      version: { v: 2 },
      greeting: 'Hi u1 on pro',
    });
  });

  it('reads own properties only, never a prototype', async () => {
    const out = (await applyMapping(
      { a: 'properties.toString', b: 'properties.hasOwnProperty' },
      event,
    )) as object;
    expect(out).toEqual({});
    await expect(applyMapping({ a: '__proto__' }, event)).rejects.toThrow(DestinationError);
    await expect(applyMapping({ '__proto__.x': 'userId' }, event)).rejects.toThrow(/not allowed/);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it('without a mapping sends the event itself; an item over the limit is refused', async () => {
    expect(await applyMapping(undefined, event)).toBe(event);
    await expect(applyMapping(undefined, { big: 'x'.repeat(MAX_ITEM_BYTES) })).rejects.toThrow(/over/);
  });

  it('checks definitions: conflicting outputs, Liquid syntax, filter operators', () => {
    expect(() => checkDestination(input({ 'a.b': 'userId', a: 'event' }))).toThrow(/conflicts/);
    expect(() => checkDestination(input({ t: { liquid: '{% if %}' } }))).toThrow(/invalid Liquid/);
    expect(() => checkDestination(input(undefined, { method: [{ var: 'x' }, 'constructor'] }))).toThrow(
      /unknown operator "method"/,
    );
    expect(() => checkDestination(input({ ok: 'userId' }, { '==': [{ var: 'event' }, 'X'] }))).not.toThrow();
  });

  it('filters with JSON Logic over the event', () => {
    expect(passesFilter({ '==': [{ var: 'properties.plan' }, 'pro'] }, event)).toBe(true);
    expect(passesFilter({ in: [{ var: 'event' }, ['Order Completed']] }, event)).toBe(false);
    expect(passesFilter(undefined, event)).toBe(true);
  });

  it('a body is the item alone, or {batch} when the destination batches', () => {
    const item = { id: 'm1', type: 'event' as const, timestamp: 't', data: { a: 1 } };
    expect(JSON.parse(deliveryBody([item], false))).toEqual(item);
    expect(JSON.parse(deliveryBody([item, item], true))).toEqual({ batch: [item, item] });
  });
});
