// Segment and identity changes stay bounded in bytes however large the profile: a change
// that fits goes as it is; a huge profile's change keeps the contact traits and what else
// fits, flagged; a huge identifier list is split over parts that together hold every one.
import { describe, expect, it } from 'vitest';
import { type IdentityChange, identityChangeCheck, serializeIdentityChange } from './identity-change.ts';
import { type SegmentChange, segmentChangeCheck, serializeSegmentChange } from './segment-change.ts';

const change = (traits: Record<string, unknown>): SegmentChange => ({
  workspaceId: 'ws',
  profileId: 'p1',
  segmentId: 's1',
  segmentVersion: 1,
  type: 'entered',
  epoch: 1,
  messageId: 'm1',
  occurredAt: '2026-05-01T00:00:00.000Z',
  userId: 'u1',
  traits,
});

describe('segment change size', () => {
  it('a change that fits goes whole, unflagged', () => {
    const c = change({ plan: 'pro', email: 'a@b.c' });
    expect(serializeSegmentChange(c, 4096)).toBe(JSON.stringify(c));
  });

  it('a huge profile keeps the contact traits first, then what fits; flagged', () => {
    const traits: Record<string, unknown> = {};
    for (let i = 0; i < 50; i++) traits[`blob_${i}`] = 'é'.repeat(1000); // 2,000 bytes each in UTF-8
    traits.email = 'a@b.c';
    traits.plan = 'pro';
    const text = serializeSegmentChange(change(traits), 10_000);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(10_000);
    const out = JSON.parse(text) as SegmentChange;
    expect(segmentChangeCheck.Check(out)).toBe(true);
    expect(out.traitsTruncated).toBe(true);
    expect(out.traits.email).toBe('a@b.c');
    expect(out.traits.plan).toBe('pro');
    const blobs = Object.keys(out.traits).filter((k) => k.startsWith('blob_'));
    expect(blobs.length).toBeGreaterThan(2);
    expect(blobs.length).toBeLessThan(5);
  });

  it('one trait larger than the budget is left out, the rest kept', () => {
    const text = serializeSegmentChange(change({ huge: 'x'.repeat(50_000), name: 'Ada' }), 4096);
    const out = JSON.parse(text) as SegmentChange;
    expect(out.traits).toEqual({ name: 'Ada' });
    expect(out.traitsTruncated).toBe(true);
  });
});

describe('identity change size', () => {
  const base: IdentityChange = {
    workspaceId: 'ws',
    profileId: 'p1',
    identifiers: ['user:u1'],
    mergedProfileIds: ['p2'],
    version: 7,
    messageId: 'm1',
    occurredAt: '2026-05-01T00:00:00.000Z',
  };

  it('a change that fits is one message, as it was', () => {
    expect(serializeIdentityChange(base, 4096)).toEqual([JSON.stringify(base)]);
  });

  it('a huge identifier list is split over parts holding every identifier once', () => {
    const identifiers = Array.from(
      { length: 100 },
      (_, i) => `anon:${String(i).padStart(3, '0')}${'a'.repeat(500)}`,
    );
    const texts = serializeIdentityChange({ ...base, identifiers }, 8 * 1024);
    expect(texts.length).toBeGreaterThan(5);
    const parts = texts.map((t) => JSON.parse(t) as IdentityChange);
    for (const [i, p] of parts.entries()) {
      expect(Buffer.byteLength(texts[i]!)).toBeLessThanOrEqual(8 * 1024);
      expect(identityChangeCheck.Check(p)).toBe(true);
      expect(p).toMatchObject({ profileId: 'p1', version: 7, part: i + 1, parts: texts.length });
    }
    expect(parts.flatMap((p) => p.identifiers)).toEqual(identifiers);
    expect(parts.flatMap((p) => p.mergedProfileIds)).toEqual(['p2']);
  });
});
