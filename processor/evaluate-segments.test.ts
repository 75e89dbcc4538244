import { describe, expect, it } from 'vitest';
import type { ProfileState } from '../profiles/apply-event.ts';
import { createLogger } from '../runtime/log.ts';
import type { SegmentDefinition } from '../schemas/segment.ts';
import { segmentDef } from '../test/fixtures.ts';
import { evaluateSegments } from './evaluate-segments.ts';
import { SegmentRegistry } from './segment-registry.ts';

const def = (id: string, rule: unknown, version = 1): SegmentDefinition => segmentDef(id, rule, { version });

const state = (traits: Record<string, unknown>, epochs: Record<string, number> = {}): ProfileState => ({
  profileId: 'p1',
  duplicate: false,
  created: false,
  firstSeenAt: null,
  lastSeenAt: null,
  identityVersion: 0,
  revision: '1',
  complete: true,
  traits,
  epochs,
  identities: [],
  merged: [],
  conflicts: [],
  refused: [],
  limited: [],
  times: {},
});

function segments(...defs: SegmentDefinition[]) {
  const r = new SegmentRegistry(createLogger({ level: 'silent', name: 'test' }));
  r.replace(defs);
  return r.forWorkspace('ws');
}

describe('evaluateSegments', () => {
  const pro = def('pro', { '==': [{ var: 'traits.plan' }, 'pro'] }, 3);
  const vip = def('vip', { and: [{ in_segment: ['pro'] }, { '>': [{ var: 'traits.seats' }, 10] }] });

  it.each([
    {
      description: 'entry on a trait match',
      traits: { plan: 'pro' },
      epochs: {},
      want: [['pro', 0, 'entered']],
    },
    { description: 'no change while still a member', traits: { plan: 'pro' }, epochs: { pro: 1 }, want: [] },
    {
      description: 'exit when the trait changes',
      traits: { plan: 'free' },
      epochs: { pro: 1 },
      want: [['pro', 1, 'exited']],
    },
    {
      description: 're-entry moves the epoch on',
      traits: { plan: 'pro' },
      epochs: { pro: 2 },
      want: [['pro', 2, 'entered']],
    },
    {
      description: 'in_segment sees this round’s entry',
      traits: { plan: 'pro', seats: 20 },
      epochs: {},
      want: [
        ['pro', 0, 'entered'],
        ['vip', 0, 'entered'],
      ],
    },
    {
      description: 'in_segment exits with its dependency',
      traits: { plan: 'free', seats: 20 },
      epochs: { pro: 1, vip: 1 },
      want: [
        ['pro', 1, 'exited'],
        ['vip', 1, 'exited'],
      ],
    },
  ])('$description', ({ traits, epochs, want }) => {
    // vip listed first: evaluation must still settle pro before it
    const got = evaluateSegments(
      segments(vip, pro),
      state(traits, epochs as Record<string, number>),
      null,
      0,
    ).transitions;
    expect(got.map((t) => [t.segmentId, t.fromEpoch, t.type])).toEqual(want);
    for (const t of got) expect(t.segmentVersion).toBe(t.segmentId === 'pro' ? 3 : 1);
  });
});

describe('windowed counts', () => {
  const twoIn20s = def('two', { '>=': [{ event_count: ['Order', '20s'] }, 2] });
  const noneIn7d = def('lapsed', { '==': [{ event_count: ['Order', '7d'] }, 0] });
  const [a] = segments(twoIn20s);
  const condId = a!.rule.counts[0]!.condition.id;
  const withTimes = (times: number[], epochs: Record<string, number> = {}) => ({
    ...state({}, epochs),
    times: { [condId]: times },
  });

  it.each([
    {
      description: 'two events inside the window: entry',
      times: [0, 5_000],
      now: 10_000,
      epochs: {},
      want: 'entered',
      deadline: 20_000,
    },
    {
      description: 'one of them just left (t = now - window): exit',
      times: [0, 5_000],
      now: 20_000,
      epochs: { two: 1 },
      want: 'exited',
      deadline: 25_000,
    },
    {
      description: 'a millisecond before it leaves: still a member',
      times: [0, 5_000],
      now: 19_999,
      epochs: { two: 1 },
      want: null,
      deadline: 20_000,
    },
    {
      description: 'nothing counted: no deadline',
      times: [],
      now: 0,
      epochs: {},
      want: null,
      deadline: null,
    },
  ])('$description', ({ times, now, epochs, want, deadline }) => {
    const r = evaluateSegments(
      segments(twoIn20s),
      withTimes(times, epochs as Record<string, number>),
      null,
      now,
    );
    expect(r.transitions.map((t) => t.type)[0] ?? null).toBe(want);
    expect(r.nextDeadline).toBe(deadline);
  });

  it('"has not done X in 7 days" flips back when the last event leaves the window', () => {
    const day = 86_400_000;
    const segs = segments(noneIn7d);
    const id = segs[0]!.rule.counts[0]!.condition.id;
    const s = (times: number[], epochs: Record<string, number>) => ({
      ...state({}, epochs),
      times: { [id]: times },
    });
    expect(evaluateSegments(segs, s([], {}), null, 0).transitions[0]?.type).toBe('entered');
    const after = evaluateSegments(segs, s([day], { lapsed: 1 }), null, day + 1);
    expect(after.transitions[0]?.type).toBe('exited');
    expect(after.nextDeadline).toBe(8 * day);
    expect(evaluateSegments(segs, s([day], { lapsed: 2 }), null, 8 * day).transitions[0]?.type).toBe(
      'entered',
    );
  });
});
