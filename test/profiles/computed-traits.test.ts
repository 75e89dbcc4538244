// Computed traits and lead scores as scenario tables with an injected clock, through the
// processor pipeline against real Redis (and a real Kafka producer): windowed aggregates,
// values leaving the window as time passes, out-of-order `last`, replayed messageIds,
// merges combining aggregates, decaying scores and trait-condition points. Values are read
// as the query API reads them (profiles/values.ts).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComputedRegistry } from '../../processor/computed-registry.ts';
import { SegmentRegistry } from '../../processor/segment-registry.ts';
import { startTimerWorker } from '../../processor/timers.ts';
import { readProfile } from '../../profiles/read.ts';
import { readComputed } from '../../profiles/values.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { Producer } from '../../runtime/kafka/index.ts';
import { createLogger } from '../../runtime/log.ts';
import type { ComputedTraitDefinition, ComputedTraitInput } from '../../schemas/computed-trait.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import type { LeadScoreDefinition, LeadScoreInput } from '../../schemas/lead-score.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { BATCH_CTX, eventBatch, segmentDef, streamEvent } from '../fixtures.ts';
import { processorOutputs, testConfig, testProcessor, uniqueId } from '../harness.ts';

const log = createLogger({ level: 'silent', name: 'test' });
const T0 = Date.parse('2026-06-01T00:00:00Z');
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** Points of one event `ageDays` old with a 7-day half-life. */
const decayed = (points: number, ageDays: number) => points * 2 ** (-ageDays / 7);

let cfg: Config;
let redis: Redis;
let producer: Producer;

beforeAll(async () => {
  cfg = testConfig();
  redis = new Redis(cfg.redis.url);
  producer = await processorOutputs(cfg, log);
});

afterAll(async () => {
  await producer?.disconnect();
  redis?.disconnect();
});

const TRAITS: ComputedTraitInput[] = [
  { name: 'orders_7d', kind: 'count', event: 'Order', window: '7d' },
  { name: 'revenue_7d', kind: 'sum', event: 'Order', property: 'revenue', window: '7d' },
  { name: 'smallest_7d', kind: 'min', event: 'Order', property: 'revenue', window: '7d' },
  { name: 'largest_7d', kind: 'max', event: 'Order', property: 'revenue', window: '7d' },
  { name: 'revenue_all', kind: 'sum', event: 'Order', property: 'revenue' },
  {
    name: 'big_orders_30d',
    kind: 'count',
    event: 'Order',
    where: { '>': [{ var: 'revenue' }, 100] },
    window: '30d',
  },
  { name: 'plan', kind: 'last', event: 'Plan Changed', property: 'to.plan' },
  { name: 'clicks_1h', kind: 'count', event: 'Click', window: '1h' },
];
const SCORES: LeadScoreInput[] = [
  {
    name: 'engagement',
    halfLifeDays: 7,
    rules: [
      { event: 'Order', points: 10 },
      { event: 'Unsubscribed', points: -20 },
      { trait: { '==': [{ var: 'traits.tier' }, 'gold'] }, points: 5 },
    ],
  },
  { name: 'orders_total', rules: [{ event: 'Order', points: 1 }] },
];

interface Send {
  userId?: string;
  anonymousId?: string;
  type?: NormalizedEvent['type'];
  event?: string;
  properties?: Record<string, unknown>;
  traits?: Record<string, unknown>;
  /** Reuse a messageId (a replay). */
  messageId?: string;
  /** Event time relative to T0 when not the clock's (late or out-of-order events). */
  at?: number;
}
interface Step {
  /** Clock, relative to T0. */
  t: number;
  send?: Send[];
  /** Expected values of the profile of `who` (a userId). */
  expect?: { who: string; computed?: Record<string, unknown>; scores?: Record<string, number> };
}
interface Scenario {
  description: string;
  steps: Step[];
}

const SCENARIOS: Scenario[] = [
  {
    description: 'count/sum/min/max over 7 days: replays count once; values leave the window as time passes',
    steps: [
      { t: 0, send: [{ userId: 'u1', event: 'Order', properties: { revenue: 50 } }] },
      {
        t: DAY,
        send: [
          { userId: 'u1', event: 'Order', properties: { revenue: 150 }, messageId: 'order-2' },
          // amounts sent as strings count; missing or non-numeric ones do not (but are counted)
          { userId: 'u1', event: 'Order', properties: { revenue: '20' } },
          { userId: 'u1', event: 'Order', properties: { revenue: 'n/a' } },
        ],
        expect: {
          who: 'u1',
          computed: {
            orders_7d: 4,
            revenue_7d: 220,
            smallest_7d: 20,
            largest_7d: 150,
            revenue_all: 220,
            big_orders_30d: 1,
          },
          scores: { engagement: decayed(10, 1) + 30, orders_total: 4 },
        },
      },
      {
        // the same messageId again (a redelivery after a crash): nothing changes
        t: DAY + HOUR,
        send: [{ userId: 'u1', event: 'Order', properties: { revenue: 150 }, messageId: 'order-2' }],
        expect: { who: 'u1', computed: { orders_7d: 4, revenue_7d: 220, big_orders_30d: 1 } },
      },
      {
        // the first order (day 0) has left the 7-day window (at most one 1 h bucket late)
        t: 7 * DAY + HOUR,
        expect: {
          who: 'u1',
          computed: { orders_7d: 3, revenue_7d: 170, smallest_7d: 20, largest_7d: 150, revenue_all: 220 },
          scores: { engagement: decayed(10, 7 + 1 / 24) + decayed(30, 6 + 1 / 24), orders_total: 4 },
        },
      },
      {
        t: 9 * DAY,
        expect: {
          who: 'u1',
          computed: {
            orders_7d: 0,
            revenue_7d: null,
            smallest_7d: null,
            largest_7d: null,
            revenue_all: 220,
            big_orders_30d: 1,
            plan: null,
          },
        },
      },
      { t: 31 * DAY + HOUR, expect: { who: 'u1', computed: { big_orders_30d: 0, revenue_all: 220 } } },
    ],
  },
  {
    description: 'last value: the later event time wins, not the later arrival',
    steps: [
      { t: 2 * DAY, send: [{ userId: 'u2', event: 'Plan Changed', properties: { to: { plan: 'pro' } } }] },
      {
        // an older change arriving late does not replace the newer one
        t: 3 * DAY,
        send: [{ userId: 'u2', event: 'Plan Changed', properties: { to: { plan: 'free' } }, at: DAY }],
        expect: { who: 'u2', computed: { plan: 'pro' } },
      },
      {
        t: 4 * DAY,
        send: [{ userId: 'u2', event: 'Plan Changed', properties: { to: { plan: 'team' } } }],
        expect: { who: 'u2', computed: { plan: 'team', orders_7d: 0 }, scores: { engagement: 0 } },
      },
    ],
  },
  {
    description: 'a short window in 1 s buckets',
    steps: [
      { t: 0, send: [{ userId: 'u3', event: 'Click' }] },
      {
        t: 30 * 60_000,
        send: [{ userId: 'u3', event: 'Click' }],
        expect: { who: 'u3', computed: { clicks_1h: 2 } },
      },
      { t: HOUR + 999, expect: { who: 'u3', computed: { clicks_1h: 2 } } },
      { t: HOUR + 1000, expect: { who: 'u3', computed: { clicks_1h: 1 } } },
      { t: 2 * HOUR, expect: { who: 'u3', computed: { clicks_1h: 0 } } },
    ],
  },
  {
    description: 'a merge combines the aggregates and the scores of both profiles',
    steps: [
      {
        t: 0,
        send: [
          { anonymousId: 'a4', event: 'Order', properties: { revenue: 30 } },
          { anonymousId: 'a4', event: 'Plan Changed', properties: { to: { plan: 'trial' } } },
        ],
      },
      {
        t: DAY,
        send: [
          { userId: 'u4', event: 'Order', properties: { revenue: 70 } },
          { userId: 'u4', event: 'Plan Changed', properties: { to: { plan: 'basic' } } },
          { userId: 'u4', event: 'Order', properties: { revenue: 500 }, at: 0 },
        ],
      },
      {
        t: 2 * DAY,
        send: [{ type: 'identify', userId: 'u4', anonymousId: 'a4' }],
        expect: {
          who: 'u4',
          computed: {
            orders_7d: 3,
            revenue_7d: 600,
            smallest_7d: 30,
            largest_7d: 500,
            plan: 'basic',
            big_orders_30d: 1,
          },
          scores: { engagement: decayed(20, 2) + decayed(10, 1), orders_total: 3 },
        },
      },
      {
        // the merged profile keeps counting (the anonymous id now resolves to it)
        t: 3 * DAY,
        send: [{ anonymousId: 'a4', event: 'Order', properties: { revenue: 1 } }],
        expect: { who: 'u4', computed: { orders_7d: 4, smallest_7d: 1, revenue_all: 601 } },
      },
    ],
  },
  {
    description:
      'score: points decay with the half-life, removals subtract, trait points count while they hold',
    steps: [
      { t: 0, send: [{ userId: 'u5', event: 'Order' }] },
      { t: 7 * DAY, expect: { who: 'u5', scores: { engagement: 5, orders_total: 1 } } },
      {
        t: 14 * DAY,
        send: [{ type: 'identify', userId: 'u5', traits: { tier: 'gold' } }],
        expect: { who: 'u5', scores: { engagement: 2.5 + 5 } },
      },
      {
        t: 14 * DAY,
        send: [{ userId: 'u5', event: 'Unsubscribed' }],
        expect: { who: 'u5', scores: { engagement: 2.5 + 5 - 20 } },
      },
      {
        t: 21 * DAY,
        send: [{ type: 'identify', userId: 'u5', traits: { tier: 'silver' } }],
        expect: { who: 'u5', scores: { engagement: 1.25 - 10, orders_total: 1 } },
      },
    ],
  },
];

function harness(clock: { t: number }, segments: ReturnType<typeof segmentDef>[] = []) {
  const prefix = uniqueId('ct');
  const ws = 'ws';
  const store = new DefinitionStore(redis, prefix);
  const computed = new ComputedRegistry(log);
  const registry = new SegmentRegistry(log);
  registry.replace(segments);
  const processor = testProcessor(cfg, {
    redis,
    producer,
    registry,
    computed,
    redisPrefix: prefix,
    log,
    now: () => new Date(clock.t),
  });
  let offset = 0;
  let n = 0;
  const define = async () => {
    const at = new Date(T0).toISOString();
    const base = { workspaceId: ws, version: 1, createdAt: at, updatedAt: at };
    for (const t of TRAITS)
      await store.put('computedTraits', { ...t, ...base, id: `ct_${t.name}` } as ComputedTraitDefinition);
    for (const s of SCORES)
      await store.put('scores', { ...s, ...base, id: `sc_${s.name}` } as LeadScoreDefinition);
    computed.replace(await store.list('computedTraits'), await store.list('scores'));
  };
  const send = async (list: Send[]) => {
    const events = list.map((s) =>
      streamEvent(
        {
          workspaceId: ws,
          type: s.type ?? 'track',
          messageId: s.messageId ?? `${prefix}-m${++n}`,
          userId: s.userId ?? null,
          anonymousId: s.anonymousId ?? null,
          properties: s.properties ?? {},
          traits: s.traits ?? {},
          timestamp: new Date(s.at === undefined ? clock.t : T0 + s.at).toISOString(),
          ...(s.event ? { event: s.event } : {}),
        },
        clock.t,
      ),
    );
    await processor.handleBatch(eventBatch(events, offset), BATCH_CTX);
    offset += events.length;
  };
  const read = async (userId: string) => {
    const pid = await redis.get(workspaceKeys(prefix, ws).identity('user', userId));
    expect(pid, `profile of ${userId}`).toBeTruthy();
    const profile = (await readProfile(redis, prefix, ws, pid!))!;
    return readComputed({
      redis,
      defs: store,
      prefix,
      workspaceId: ws,
      profileId: profile.id,
      traits: profile.traits,
      nowMs: clock.t,
    });
  };
  const timers = startTimerWorker({
    redis,
    prefix,
    reevaluate: processor.reevaluate,
    log,
    now: () => new Date(clock.t),
    autostart: false,
  });
  /** Segment ids the profile of `userId` is in now (recorded memberships). */
  const memberships = async (userId: string) => {
    const k = workspaceKeys(prefix, ws);
    const pid = (await redis.get(k.identity('user', userId)))!;
    const epochs = await redis.hgetall(k.profileSegments(pid));
    return Object.keys(epochs)
      .filter((id) => Number(epochs[id]) % 2 === 1)
      .sort();
  };
  return { define, send, read, timers, memberships };
}

describe('computed traits and lead scores (injected clock)', () => {
  for (const scenario of SCENARIOS) {
    it(scenario.description, async () => {
      const clock = { t: T0 };
      const h = harness(clock);
      await h.define();
      for (const [i, step] of scenario.steps.entries()) {
        clock.t = T0 + step.t;
        if (step.send) await h.send(step.send);
        if (step.expect) {
          const got = await h.read(step.expect.who);
          for (const [name, want] of Object.entries(step.expect.computed ?? {}))
            expect(got.computed[name], `step ${i}: computed.${name}`).toEqual(want);
          for (const [name, want] of Object.entries(step.expect.scores ?? {}))
            expect(got.scores[name], `step ${i}: scores.${name}`).toBeCloseTo(want, 5);
        }
      }
    });
  }
});

describe('segments reading computed traits and scores (injected clock)', () => {
  it('enter when an event moves the value, leave when the window passes (timer)', async () => {
    const clock = { t: T0 };
    const h = harness(clock, [
      segmentDef('big_spender', { '>=': [{ var: 'computed.revenue_7d' }, 200] }),
      segmentDef('hot_lead', { '>=': [{ var: 'scores.engagement' }, 25] }),
      segmentDef('has_plan', { '!!': [{ var: 'computed.plan' }] }),
    ]);
    await h.define();
    await h.send([{ userId: 'u6', event: 'Order', properties: { revenue: 150 } }]);
    expect(await h.memberships('u6')).toEqual([]);

    clock.t = T0 + DAY;
    await h.send([{ userId: 'u6', event: 'Order', properties: { revenue: 60 } }]);
    // revenue 210; engagement 10·2^(−1/7) + 10 ≈ 19.05
    expect(await h.memberships('u6')).toEqual(['big_spender']);
    // a trait the score reads: +5 ≈ 24.05, still under 25
    await h.send([{ type: 'identify', userId: 'u6', traits: { tier: 'gold' } }]);
    expect(await h.memberships('u6')).toEqual(['big_spender']);
    await h.send([{ userId: 'u6', event: 'Plan Changed', properties: { to: { plan: 'pro' } } }]);
    expect(await h.memberships('u6')).toEqual(['big_spender', 'has_plan']);
    await h.send([{ userId: 'u6', event: 'Order', properties: { revenue: 5 } }]);
    expect(await h.memberships('u6')).toEqual(['big_spender', 'has_plan', 'hot_lead']);

    // a decaying score is looked at again every 1/16 of its half-life (7d / 16 = 10.5 h)
    clock.t = T0 + DAY + 10.5 * HOUR;
    expect(await h.timers.tick()).toBe(1);
    expect(await h.memberships('u6')).toEqual(['big_spender', 'has_plan', 'hot_lead']);
    // by day 5 it has decayed under 25 (10·2^(−5/7) + 20·2^(−4/7) + 5 ≈ 24.6): it leaves
    // at the next look (at most 10.5 h after the crossing), without a new event
    clock.t = T0 + 5 * DAY;
    expect(await h.timers.tick()).toBe(1);
    expect(await h.memberships('u6')).toEqual(['big_spender', 'has_plan']);

    // the day-0 order leaves the 7-day window at T0 + 7d + 1h (its 1 h bucket's end)
    clock.t = T0 + 7 * DAY;
    expect(await h.timers.tick()).toBe(1); // a look at the score: nothing moves
    expect(await h.memberships('u6')).toEqual(['big_spender', 'has_plan']);
    clock.t = T0 + 7 * DAY + HOUR - 1;
    expect(await h.timers.tick()).toBe(0);
    clock.t = T0 + 7 * DAY + HOUR;
    expect(await h.timers.tick()).toBe(1);
    // revenue 65: out
    expect(await h.memberships('u6')).toEqual(['has_plan']);
  });
});
