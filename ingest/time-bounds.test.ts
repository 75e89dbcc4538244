// Event times far from the server's clock are refused at the edge with a 400 naming the
// event and the field, after Segment's clock-skew correction, and a batch holding one is
// refused whole. Through app.request(); the producer records what it is given.
import { describe, expect, it } from 'vitest';
import type { OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import { createIngestApp } from './app.ts';
import type { TimeBounds } from './normalize-event.ts';

const WRITE_KEY = 'wk-time-bounds';
const NOW = new Date('2026-06-01T12:00:00.000Z');
const auth = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`;

function ingest(timeBounds?: TimeBounds) {
  const sent: OutgoingMessage[] = [];
  const producer: Producer = {
    connect: async () => {},
    disconnect: async () => {},
    send: async (_topic, messages) => {
      sent.push(...messages);
    },
  };
  const app = createIngestApp({
    producer,
    eventsTopic: 'events',
    resolveWriteKey: (k) => (k === WRITE_KEY ? 'ws' : undefined),
    log: createLogger({ level: 'silent', name: 'test' }),
    now: () => NOW,
    timeBounds,
  });
  return {
    sent,
    async post(path: string, body: unknown) {
      sent.length = 0;
      const res = await app.request(path, {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { authorization: auth, 'content-type': 'application/json' },
      });
      const json = (await res.json()) as { success: boolean; error?: string };
      return { status: res.status, ...json };
    },
    produced: () => sent.map((m) => JSON.parse(String(m.value)) as NormalizedEvent),
  };
}

const track = (extra: Record<string, unknown>) => ({ userId: 'u1', event: 'Clicked', ...extra });
const days = (n: number) => n * 86_400_000;
const iso = (ms: number) => new Date(NOW.getTime() + ms).toISOString();

describe('event times outside the accepted range', () => {
  it.each([
    [
      'year 2999',
      { timestamp: '2999-01-01T00:00:00Z' },
      /^timestamp: 2999-01-01T00:00:00\.000Z is outside the years 1900–2299/,
    ],
    [
      'year 2100',
      { timestamp: '2100-01-01T00:00:00Z' },
      /^timestamp: 2100-01-01T00:00:00\.000Z is more than 1 day ahead/,
    ],
    [
      '1970',
      { timestamp: '1970-01-01T00:00:00Z' },
      /^timestamp: 1970-01-01T00:00:00\.000Z is more than 1826 days in the past/,
    ],
    [
      'a day and a minute ahead',
      { timestamp: iso(days(1) + 60_000) },
      /^timestamp: .* ahead of the server's clock/,
    ],
    [
      'originalTimestamp alone, 6 years back',
      { originalTimestamp: iso(-days(6 * 365)) },
      /^originalTimestamp: .* in the past/,
    ],
    [
      'skew-corrected into the future',
      // sentAt before originalTimestamp by two days: the event "happens" two days after receipt
      { originalTimestamp: iso(0), sentAt: iso(-days(2)) },
      /^originalTimestamp: .* \(corrected for clock skew by sentAt\) is more than 1 day ahead/,
    ],
    ['an unstorable sentAt', { sentAt: '2400-01-01T00:00:00Z' }, /^sentAt: .* outside the years 1900–2299/],
  ])('%s: 400 naming the field, nothing produced', async (_name, fields, message) => {
    const edge = ingest();
    const r = await edge.post('/v1/track', track(fields));
    expect(r.status).toBe(400);
    expect(r).toEqual({ status: 400, success: false, error: expect.stringMatching(message) });
    expect(edge.sent).toHaveLength(0);
  });

  it('accepts times at the edges of the range and corrects skew before checking', async () => {
    const edge = ingest();
    for (const fields of [
      { timestamp: iso(days(1)) },
      { timestamp: iso(-days(1826)) },
      { timestamp: '2025-12-24T10:00:00+02:00' },
      // a client clock ten years fast: corrected to 5 s before receipt
      { originalTimestamp: iso(days(3650)), sentAt: iso(days(3650) + 5000) },
    ]) {
      const r = await edge.post('/v1/track', track(fields));
      expect(r.status, JSON.stringify({ fields, r })).toBe(200);
    }
    expect(edge.produced().at(-1)?.timestamp).toBe(iso(-5000));
  });

  it('refuses a whole batch for one event out of range, naming it', async () => {
    const edge = ingest();
    const batch = [
      { type: 'track', ...track({ timestamp: iso(-60_000) }) },
      { type: 'identify', userId: 'u1', traits: { plan: 'pro' }, timestamp: '2100-12-31T00:00:00Z' },
      { type: 'track', ...track({}) },
    ];
    const r = await edge.post('/v1/batch', { batch });
    expect(r.status).toBe(400);
    expect(r.error).toMatch(/^batch\[1\]\.timestamp: 2100-12-31T00:00:00\.000Z is more than 1 day ahead/);
    expect(edge.sent).toHaveLength(0);
  });

  it('follows configured bounds', async () => {
    const edge = ingest({ maxPastMs: days(30), maxFutureMs: 3_600_000 });
    expect((await edge.post('/v1/track', track({ timestamp: iso(-days(31)) }))).error).toMatch(
      /^timestamp: .* more than 30 days in the past/,
    );
    expect((await edge.post('/v1/track', track({ timestamp: iso(7_200_000) }))).error).toMatch(
      /^timestamp: .* more than 1 hour ahead/,
    );
    expect((await edge.post('/v1/track', track({ timestamp: iso(-days(29)) }))).status).toBe(200);
  });
});
