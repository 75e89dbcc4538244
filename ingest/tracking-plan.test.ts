// The tracking plan at the ingest route, through app.request() with a recording producer:
// a mixed batch is split between the events and quarantine topics, violating events carry
// the plan's headers, flagged ones their violations; a workspace without a plan is untouched.
import { describe, expect, it } from 'vitest';
import type { OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import {
  compilePlan,
  PLAN_HEADERS,
  PLAN_ID,
  type PlanMode,
  type TrackingPlan,
} from '../schemas/tracking-plan.ts';
import { createIngestApp } from './app.ts';

function setup(mode: PlanMode | undefined) {
  const sent: Array<{ topic: string; messages: OutgoingMessage[] }> = [];
  const producer: Producer = {
    connect: async () => {},
    disconnect: async () => {},
    send: async (topic, messages) => {
      sent.push({ topic, messages });
    },
  };
  const plan: TrackingPlan | undefined = mode && {
    id: PLAN_ID,
    workspaceId: 'ws1',
    version: 7,
    mode,
    events: {
      Paid: {
        properties: { type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } },
      },
    },
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
  };
  const compiled = plan && compilePlan(plan);
  const app = createIngestApp({
    producer,
    eventsTopic: 'events',
    resolveWriteKey: (k) => (k === 'wk-123456' ? 'ws1' : undefined),
    log: createLogger({ level: 'silent', name: 'test' }),
    trackingPlans: {
      plans: { get: (ws) => (ws === 'ws1' ? compiled : undefined) },
      quarantineTopic: 'quarantine',
    },
  });
  const batch = (events: unknown[]) =>
    app.request('/v1/batch', {
      method: 'POST',
      body: JSON.stringify({ batch: events }),
      headers: {
        authorization: `Basic ${Buffer.from('wk-123456:').toString('base64')}`,
        'content-type': 'application/json',
      },
    });
  const on = (topic: string) =>
    sent
      .filter((s) => s.topic === topic)
      .flatMap((s) => s.messages.map((m) => ({ value: JSON.parse(String(m.value)), headers: m.headers })));
  return { batch, on };
}

const EVENTS = [
  { type: 'track', userId: 'u1', messageId: 'good', event: 'Paid', properties: { amount: 5 } },
  { type: 'track', userId: 'u2', messageId: 'bad', event: 'Paid', properties: { amount: 'five' } },
  { type: 'track', userId: 'u3', messageId: 'other', event: 'Unplanned', properties: { x: 1 } },
];

describe('tracking plan at ingest', () => {
  it('quarantine: violating events go to the quarantine topic with the headers, the request still 200', async () => {
    const { batch, on } = setup('quarantine');
    expect((await batch(EVENTS)).status).toBe(200);
    expect(on('events').map((m) => m.value.messageId)).toEqual(['good', 'other']);
    expect(on('events').every((m) => m.headers === undefined)).toBe(true);
    const q = on('quarantine');
    expect(q.map((m) => m.value.messageId)).toEqual(['bad']);
    expect(q[0]!.value.context.violations).toBeUndefined();
    expect(q[0]!.headers![PLAN_HEADERS.mode]).toBe('quarantine');
    expect(q[0]!.headers![PLAN_HEADERS.version]).toBe('7');
    expect(JSON.parse(q[0]!.headers![PLAN_HEADERS.violations]!)).toEqual([
      { path: 'properties.amount', keyword: 'type', message: 'must be number' },
    ]);
  });

  it('flag: every event goes on; the violating one with context.violations and the headers', async () => {
    const { batch, on } = setup('flag');
    expect((await batch(EVENTS)).status).toBe(200);
    expect(on('quarantine')).toHaveLength(0);
    const bad = on('events').find((m) => m.value.messageId === 'bad')!;
    expect(bad.value.context.violations).toEqual([
      { path: 'properties.amount', keyword: 'type', message: 'must be number' },
    ]);
    expect(bad.headers![PLAN_HEADERS.mode]).toBe('flag');
    expect(on('events').find((m) => m.value.messageId === 'good')!.value.context.violations).toBeUndefined();
  });

  it('flag: an event at the size limit goes on without the violations it would not fit with', async () => {
    const big = (n: number) => ({
      type: 'track',
      userId: 'u4',
      messageId: 'big',
      event: 'Paid',
      properties: { amount: 'x'.repeat(n) },
    });
    // the longest event taken without a plan
    const none = setup(undefined);
    let lo = 30_000;
    let hi = 33_000;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if ((await none.batch([big(mid)])).status === 200) lo = mid;
      else hi = mid;
    }
    const { batch, on } = setup('flag');
    expect((await batch([big(lo)])).status).toBe(200);
    const m = on('events')[0]!;
    expect(m.value.context.violations).toBeUndefined();
    expect(JSON.parse(m.headers![PLAN_HEADERS.violations]!)).toHaveLength(1);
    expect((await batch([big(lo - 200)])).status).toBe(200);
    expect(on('events')[1]!.value.context.violations).toHaveLength(1);
  });

  it('allow: the event is untouched, only the headers say it violated; no plan: nothing', async () => {
    const allow = setup('allow');
    await allow.batch(EVENTS);
    const bad = allow.on('events').find((m) => m.value.messageId === 'bad')!;
    expect(bad.value.context.violations).toBeUndefined();
    expect(bad.headers![PLAN_HEADERS.mode]).toBe('allow');
    const none = setup(undefined);
    await none.batch(EVENTS);
    expect(none.on('events').every((m) => m.headers === undefined && !m.value.context.violations)).toBe(true);
  });
});
