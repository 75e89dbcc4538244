import { describe, expect, it } from 'vitest';
import { normalizedEventCheck } from '../schemas/event.ts';
import { compileRule } from '../schemas/rules.ts';
import {
  type EventList,
  generateStream,
  pack,
  planBatches,
  prepareBatches,
  prng,
  segmentDefinitions,
  TOUCHING_SEGMENTS,
  TRACK_EVENTS,
  TRAIT_KEYS,
  unpack,
  zipfIndex,
} from './processor-events.ts';
import { buildRows } from './report.ts';
import type { Measurement } from './scenario.ts';
import { DURABLE_SCENARIO, figures, parseRedisInfo, scenarioName } from './scenarios/processor.ts';

const opts = { seed: 7, count: 3000, initialPeople: 500, startMs: Date.UTC(2026, 5, 1), idPrefix: 't' };
const events = (list: EventList) =>
  Array.from({ length: list.length }, (_, i) => JSON.parse(`{"workspaceId":"ws",${unpack(list.bodies, i)}`));

describe('the processor workload', () => {
  it('is the same for the same seed, and another for another seed', () => {
    const a = generateStream(opts);
    const b = generateStream(opts);
    expect(a.events.bodies.buf.equals(b.events.bodies.buf)).toBe(true);
    expect(a.history.bodies.buf.equals(b.history.bodies.buf)).toBe(true);
    expect(a.events.keys.buf.equals(b.events.keys.buf)).toBe(true);
    expect(a.stats).toEqual(b.stats);
    const c = generateStream({ ...opts, seed: 8 });
    expect(c.events.bodies.buf.equals(a.events.bodies.buf)).toBe(false);
  });

  it('makes valid normalised events of about 400 bytes in a realistic mix', () => {
    const s = generateStream(opts);
    const all = [...events(s.history), ...events(s.events)];
    for (const e of all) expect(normalizedEventCheck.Check(e)).toBe(true);
    expect(new Set(all.map((e) => e.messageId)).size).toBe(all.length);
    expect(s.stats.meanBytes).toBeGreaterThan(350);
    expect(s.stats.meanBytes).toBeLessThan(550);
    const n = opts.count;
    expect(s.stats.track / n).toBeGreaterThan(0.5);
    expect(s.stats.page / n).toBeGreaterThan(0.2);
    expect(s.stats.identify / n).toBeGreaterThan(0.03);
    expect(s.stats.signups).toBeGreaterThan(0);
    expect(s.stats.deviceJoins).toBeGreaterThan(0);
    // the history has one event per known person; sign-ups identify with both ids
    expect(s.history.length).toBe(opts.initialPeople);
    const signups = events(s.events).filter((e) => e.type === 'identify' && e.anonymousId && e.userId);
    expect(signups.length).toBeGreaterThan(0);
    // only identify sets traits, and only the ones segments may rely on
    for (const e of all)
      for (const k of Object.keys(e.traits)) expect(TRAIT_KEYS as readonly string[]).toContain(k);
    for (const e of all.filter((x) => x.type === 'track'))
      expect(TRACK_EVENTS as readonly string[]).toContain(e.event);
  });

  it('sends events from a few hot and many cold people', () => {
    const s = generateStream({ ...opts, count: 20_000 });
    const per = new Map<string, number>();
    for (let i = 0; i < s.events.length; i++) {
      const k = unpack(s.events.keys, i);
      per.set(k, (per.get(k) ?? 0) + 1);
    }
    const counts = [...per.values()].sort((a, b) => b - a);
    expect(counts[0]! / s.events.length).toBeLessThan(0.05);
    expect(counts[0]!).toBeGreaterThan(10 * counts[Math.floor(counts.length / 2)]!);
  });

  it('draws Zipf-like indexes inside the range, the head most often', () => {
    const rand = prng(1);
    const hits = new Array(1000).fill(0);
    for (let i = 0; i < 100_000; i++) hits[zipfIndex(rand(), 1000)]++;
    expect(hits.every((h) => h >= 0)).toBe(true);
    expect(hits[0]).toBeGreaterThan(hits[100]! * 3);
    expect(zipfIndex(0.999999, 10)).toBe(9);
    expect(zipfIndex(0, 10)).toBe(0);
    expect(zipfIndex(0.5, 1)).toBe(0);
  });

  it('packs strings back to back', () => {
    const p = pack(['a', '', 'ünï', 'xyz']);
    expect([0, 1, 2, 3].map((i) => unpack(p, i))).toEqual(['a', '', 'ünï', 'xyz']);
  });

  it('cuts batches as a consumer gets them: one partition each, every event once, in order', () => {
    const s = generateStream(opts);
    const plan = planBatches(s.events, 'ws', 4, 100);
    const seen = plan.flatMap((b) => [...b.events]);
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: s.events.length }, (_, i) => i));
    for (const b of plan) expect(b.events.length).toBeLessThanOrEqual(100);
    // an identity always lands on the same partition, and its events keep their order
    const partitionOf = new Map<string, number>();
    const lastOf = new Map<number, number>();
    for (const b of plan) {
      for (const i of b.events) {
        const k = unpack(s.events.keys, i);
        expect(partitionOf.get(k) ?? b.partition).toBe(b.partition);
        partitionOf.set(k, b.partition);
        expect(i).toBeGreaterThan(lastOf.get(b.partition) ?? -1);
        lastOf.set(b.partition, i);
      }
    }
  });

  it('prepares messages with workspace keys, consecutive offsets and the event as value', () => {
    const s = generateStream(opts);
    const prepared = prepareBatches(s.events, 'ws-1', 'cdp.events', 4, 100);
    expect(prepared.events).toBe(s.events.length);
    const next = new Map<number, number>();
    let total = 0;
    for (let i = 0; i < prepared.length; i++) {
      const b = prepared.batch(i);
      for (const m of b.messages) {
        expect(m.partition).toBe(b.partition);
        expect(Number(m.offset)).toBe(next.get(b.partition) ?? 0);
        next.set(b.partition, Number(m.offset) + 1);
        const e = JSON.parse(m.value!.toString());
        expect(e.workspaceId).toBe('ws-1');
        expect(m.key).toBe(`ws-1:${e.userId ?? e.anonymousId}`);
        total++;
      }
    }
    expect(total).toBe(s.events.length);
  });
});

describe('the segments of a workspace', () => {
  it('has the touching rules plus rules the events never make true or change', () => {
    for (const n of [0, 3, 10, 1000]) expect(segmentDefinitions('ws', n)).toHaveLength(n);
    const defs = segmentDefinitions('ws', 2000);
    expect(new Set(defs.map((d) => d.id)).size).toBe(2000);
    expect(defs.slice(0, TOUCHING_SEGMENTS.length).map((d) => d.id)).toEqual(
      TOUCHING_SEGMENTS.map((s) => s.id),
    );
    const conditions = new Set<string>();
    for (const d of defs.slice(TOUCHING_SEGMENTS.length)) {
      const rule = compileRule(d.rule);
      for (const t of rule.traits) expect(TRAIT_KEYS as readonly string[]).not.toContain(t);
      for (const c of rule.counts) {
        expect(TRACK_EVENTS as readonly string[]).not.toContain(c.condition.event);
        conditions.add(c.condition.id);
      }
      expect(rule.readsEvent || rule.readsProfile || rule.segments.size > 0).toBe(false);
      expect(
        rule.evaluate({
          traits: {},
          profile: { id: 'p', firstSeenAt: null, lastSeenAt: null },
          event: null,
          segments: [],
          counts: {},
        }),
      ).toBe(false);
    }
    // one in three counts its own never-sent event
    expect(conditions.size).toBe(Math.ceil((2000 - TOUCHING_SEGMENTS.length) / 3));
    // the touching ones read what identify and track set
    const touching = defs.slice(0, TOUCHING_SEGMENTS.length).map((d) => compileRule(d.rule));
    expect(
      touching.some((r) => [...r.traits].some((t) => (TRAIT_KEYS as readonly string[]).includes(t))),
    ).toBe(true);
    expect(
      touching.some((r) =>
        r.counts.some((c) => (TRACK_EVENTS as readonly string[]).includes(c.condition.event)),
      ),
    ).toBe(true);
  });
});

describe('the processor report', () => {
  it('reads INFO fields', () => {
    const info = parseRedisInfo('# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.25\r\n\r\n');
    expect(info.get('used_cpu_sys')).toBe('1.500000');
    expect(info.get('used_cpu_user')).toBe('2.25');
    expect(info.has('# CPU')).toBe(false);
  });

  const m = (segments: number, cpuUsPerEvent: number): Measurement => ({
    scenario: scenarioName(segments),
    load: 'batch×500',
    run: 1,
    opsPerSec: 10,
    eventsPerSec: 5000,
    p50Ms: 50,
    p99Ms: 80,
    maxMs: 90,
    errors: 0,
    errorSamples: [],
    abandoned: 0,
    serverCpuPct: 60,
    generatorCpuPct: 0,
    cpuUsPerEvent,
    machineBusyPct: 50,
    jitterPct: 5,
    details: {
      redisCpuUsPerEvent: 80,
      profileBytes: 1000,
      usedMemoryPerNewProfile: 1300,
      dedupBytesPerEvent: 120,
    },
  });

  it('compares bigger workspaces with 10 segments, and checks 10,000 against the 2× target', () => {
    const figs = figures([m(0, 40), m(10, 50), m(1000, 60), m(10_000, 120)]);
    const cost = figs.find((f) => f.scenario === scenarioName(10_000) && f.figure === 'CPU per event')!;
    expect(cost.compareTo).toEqual({ scenario: scenarioName(10), figure: 'CPU per event' });
    expect(cost.target).toEqual({ kind: 'ratioAtMost', value: 2 });
    const perCore = figs.find((f) => f.scenario === scenarioName(0) && f.figure === 'events/s per core')!;
    expect(perCore.runs).toEqual([25_000]);
    expect(perCore.target).toEqual({ kind: 'atLeast', value: 25_000 });
    expect(figs.filter((f) => f.unit === 'B').every((f) => f.scenario === scenarioName(10))).toBe(true);
    // without the 10-segment figures there is nothing to compare with
    const alone = figures([m(10_000, 120)]);
    expect(alone.every((f) => !f.compareTo && f.target?.kind !== 'ratioAtMost')).toBe(true);
  });

  it('sets the Redis-fsynced run beside the plain one: each of its figures compared with no segments', () => {
    const durable = { ...m(0, 44), scenario: DURABLE_SCENARIO, eventsPerSec: 2500 };
    const rows = buildRows(figures([m(0, 40), durable]));
    const of = (figure: string) => rows.find((r) => r.scenario === DURABLE_SCENARIO && r.figure === figure)!;
    expect(of('throughput')).toMatchObject({ value: 2500, comparedTo: `${scenarioName(0)} · throughput` });
    expect(of('throughput').ratio).toBeCloseTo(0.5);
    expect(of('CPU per event').ratio).toBeCloseTo(1.1);
    expect(rows.filter((r) => r.scenario === DURABLE_SCENARIO).every((r) => r.target === null)).toBe(true);
  });
});
