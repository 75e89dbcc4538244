import { describe, expect, it } from 'vitest';
import { IngestError } from './ingest-error.ts';
import { normalizeEvent } from './normalize-event.ts';

const receivedAt = new Date('2026-03-01T12:00:00.000Z');
const ctx = { workspaceId: 'ws', receivedAt, ip: '203.0.113.9' };

function error(raw: unknown, extra: object = {}): string {
  try {
    normalizeEvent(raw, { ...ctx, ...extra });
  } catch (e) {
    expect(e).toBeInstanceOf(IngestError);
    return (e as IngestError).message;
  }
  throw new Error('expected an error');
}

describe('normalizeEvent', () => {
  it('fills messageId, receivedAt, timestamp and context.ip', () => {
    const e = normalizeEvent({ userId: 'u1', event: 'Signed Up' }, { ...ctx, routeType: 'track' });
    expect(e).toMatchObject({
      workspaceId: 'ws',
      type: 'track',
      userId: 'u1',
      anonymousId: null,
      event: 'Signed Up',
      receivedAt: receivedAt.toISOString(),
      timestamp: receivedAt.toISOString(),
      context: { ip: '203.0.113.9' },
    });
    expect(e.messageId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('drops a client’s own context.violations (only a tracking plan sets them), in a batch context too', () => {
    const forged = {
      violations: [{ path: 'properties.total', keyword: 'type', message: 'fake' }],
      locale: 'en',
    };
    const e = normalizeEvent(
      { userId: 'u1', event: 'Paid', context: forged },
      { ...ctx, routeType: 'track' },
    );
    expect(e.context).toEqual({ locale: 'en', ip: '203.0.113.9' });
    const b = normalizeEvent(
      { type: 'track', userId: 'u1', event: 'Paid' },
      { ...ctx, batchContext: forged },
    );
    expect(b.context.violations).toBeUndefined();
  });

  it('corrects client clock skew from sentAt and originalTimestamp', () => {
    // the client clock is 1 h fast; the event happened 5 s before it was sent
    const e = normalizeEvent(
      { anonymousId: 'a', originalTimestamp: '2026-03-01T12:59:55.000Z', sentAt: '2026-03-01T13:00:00.000Z' },
      { ...ctx, routeType: 'page' },
    );
    expect(e.timestamp).toBe('2026-03-01T11:59:55.000Z');
  });

  it('keeps an explicit timestamp and a given context.ip', () => {
    const e = normalizeEvent(
      { userId: 'u', timestamp: '2025-01-01T00:00:00Z', context: { ip: '198.51.100.1' } },
      { ...ctx, routeType: 'identify' },
    );
    expect(e.timestamp).toBe('2025-01-01T00:00:00.000Z');
    expect(e.context.ip).toBe('198.51.100.1');
  });

  it('merges batch context and integrations under the event’s own', () => {
    const e = normalizeEvent(
      { type: 'track', userId: 'u', event: 'x', context: { locale: 'de' }, integrations: { All: false } },
      {
        ...ctx,
        batchContext: { locale: 'en', library: { name: 'sdk' } },
        batchIntegrations: { All: true, X: true },
      },
    );
    expect(e.context).toMatchObject({ locale: 'de', library: { name: 'sdk' } });
    expect(e.integrations).toEqual({ All: false, X: true });
  });

  it('keeps a page’s top-level category in properties, without overriding one given there', () => {
    const page = (extra: object) =>
      normalizeEvent({ anonymousId: 'a', name: 'Shoes', ...extra }, { ...ctx, routeType: 'page' });
    expect(page({ category: 'Shop' }).properties).toEqual({ category: 'Shop' });
    expect(page({ category: 'Shop', properties: { category: 'Own' } }).properties).toEqual({
      category: 'Own',
    });
  });

  it('treats numeric ids as strings and junk ids as absent', () => {
    expect(normalizeEvent({ userId: 42, event: 'x' }, { ...ctx, routeType: 'track' }).userId).toBe('42');
    expect(error({ userId: 'undefined', anonymousId: 'null', event: 'x' }, { routeType: 'track' })).toMatch(
      /userId or anonymousId/,
    );
  });

  it.each([
    [{ userId: 'u' }, { routeType: 'track' }, /event: required/],
    [{ userId: 'u', previousId: '' }, { routeType: 'alias' }, /previousId: required/],
    [{ anonymousId: 'a', previousId: 'p' }, { routeType: 'alias' }, /userId: required/],
    [{ userId: 'u' }, { routeType: 'group' }, /groupId: required/],
    [{ userId: 'u', type: 'bogus' }, {}, /type: must be one of/],
    [{ userId: 'u', type: 'page' }, { routeType: 'track' }, /sent to the track endpoint/],
    [{ userId: 'u', timestamp: 'yesterday' }, { routeType: 'identify' }, /timestamp: not an ISO 8601 date/],
    [{ userId: 'u', properties: 'x' }, { routeType: 'identify' }, /properties/],
    [[1, 2], { routeType: 'identify' }, /JSON object/],
    [{ userId: 'u', event: 'e' }, { routeType: 'track', label: 'batch[3]' }, null],
  ])('rejects %o with a message naming the field', (raw, extra, pattern) => {
    if (pattern === null) {
      expect(() => normalizeEvent(raw, { ...ctx, ...extra } as never)).not.toThrow();
      return;
    }
    expect(error(raw, extra)).toMatch(pattern);
  });

  it('refuses nesting bombs and drops __proto__ keys', () => {
    let deep: Record<string, unknown> = {};
    const root = deep;
    for (let i = 0; i < 100; i++) {
      deep.x = {};
      deep = deep.x as Record<string, unknown>;
    }
    expect(error({ userId: 'u', event: 'e', properties: root }, { routeType: 'track' })).toMatch(
      /nested deeper/,
    );
    const hostile = JSON.parse(
      '{"userId":"u","event":"e","properties":{"__proto__":{"polluted":true},"a":1}}',
    );
    const e = normalizeEvent(hostile, { ...ctx, routeType: 'track' });
    expect(Object.keys(e.properties)).toEqual(['a']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
