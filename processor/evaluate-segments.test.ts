import { describe, expect, it } from 'vitest';
import { createLogger } from '../runtime/log.ts';
import type { SegmentDefinition } from '../schemas/segment.ts';
import type { ProfileState } from './apply-event.ts';
import { evaluateSegments } from './evaluate-segments.ts';
import { SegmentRegistry } from './segment-registry.ts';

const def = (id: string, rule: unknown, version = 1): SegmentDefinition => ({
  id,
  workspaceId: 'ws',
  name: id,
  rule,
  version,
  status: 'active',
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
});

const state = (traits: Record<string, unknown>, epochs: Record<string, number> = {}): ProfileState => ({
  profileId: 'p1',
  duplicate: false,
  created: false,
  firstSeenAt: null,
  lastSeenAt: null,
  traits,
  epochs,
  identities: [],
  merged: [],
  conflicts: [],
  limited: [],
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
    const got = evaluateSegments(segments(vip, pro), state(traits, epochs as Record<string, number>), null);
    expect(got.map((t) => [t.segmentId, t.fromEpoch, t.type])).toEqual(want);
    for (const t of got) expect(t.segmentVersion).toBe(t.segmentId === 'pro' ? 3 : 1);
  });
});
