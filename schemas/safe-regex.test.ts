// Definition patterns on RE2: JavaScript's meaning for what they say, linear time on any
// value (the patterns below take V8's backtracking engine seconds to hours on these values),
// and a clear refusal at save time for what a linear-time engine cannot do.
import { describe, expect, it } from 'vitest';
import { checkSubmission } from '../ingest/form-submission.ts';
import type { NormalizedEvent } from './event.ts';
import { checkFormInput, type FormDefinition } from './form.ts';
import { backtrackSafe, linearRegExp, patternError, safeTest } from './safe-regex.ts';
import { checkTrackingPlanInput, compilePlan, PLAN_ID, type TrackingPlanInput } from './tracking-plan.ts';

// catastrophic on a backtracking engine: each extra character about doubles the time
const HOSTILE = ['^(\\w|\\d)*$', '^(a|a)*$', '^(\\d*)*x$', '^\\d*\\d*\\d*\\d*\\d*\\d*x$'];
const VALUE = `${'1'.repeat(5000)}!`;
/** Far above RE2's time on 5,001 characters (well under a millisecond), far below V8's. */
const BOUND_MS = 1000;

const timed = <T>(f: () => T): [T, number] => {
  const t = performance.now();
  const out = f();
  return [out, performance.now() - t];
};

describe('definition patterns', () => {
  it('match as JavaScript would for what the pattern says', () => {
    expect(safeTest('^ord_[0-9]+$', 'ord_12')).toBe(true);
    expect(safeTest('^ord_[0-9]+$', 'ord_12x')).toBe(false);
    expect(safeTest('^(?:[A-Z]{3}-\\d{2})$', 'ABC-12')).toBe(true);
    expect(safeTest('^(?:[A-Z]{3}-\\d{2})$', 'abc-12')).toBe(false);
    expect(safeTest('^(?:[A-Z]{3}-\\d{2})$', 'abc-12', 'i')).toBe(true);
    expect(safeTest('^\\p{Lu}', 'Émile')).toBe(true);
    expect(safeTest('^(?<year>\\d{4})-\\d{2}$', '2026-12')).toBe(true);
    expect(safeTest('colou?r', 'the color red')).toBe(true); // unanchored: anywhere
    expect(safeTest('^a.c$', 'a\nc')).toBe(false);
    expect(safeTest('^x$', 'x\n')).toBe(false); // `$` is the end, not before a newline
  });

  it('take linear time on values that make a backtracking engine run for hours', () => {
    for (const p of HOSTILE) {
      expect(patternError(p), p).toBeUndefined(); // accepted: RE2 makes them harmless
      const [matched, ms] = timed(() => safeTest(p, VALUE));
      expect(matched, p).toBe(false);
      expect(ms, p).toBeLessThan(BOUND_MS);
    }
  });

  it('refuse at save what a linear-time engine cannot do, naming it', () => {
    const refused: Array<[string, RegExp]> = [
      ['(a)\\1', /^a backreference \(\\1\) is not supported \(patterns run on a linear-time engine, RE2/],
      ['(?<x>a)\\k<x>', /^a named backreference/],
      ['foo(?=bar)', /^a lookahead \(\(\?=\)/],
      ['foo(?!bar)', /^a lookahead \(\(\?!\)/],
      ['(?<=\\$)\\d+', /^a lookbehind \(\(\?<=\)/],
      ['(?<!x)y', /^a lookbehind \(\(\?<!\)/],
      ['a{1001}', /^not supported by the linear-time engine \(RE2\): /],
      ['[', /^not a valid regular expression: /],
      ['a)', /^not a valid regular expression: /],
    ];
    for (const [p, why] of refused) expect(patternError(p), p).toMatch(why);
    // the same characters where they mean nothing special are fine
    for (const ok of ['\\\\1', '[(?=]', '\\(?=x\\)', '(?:a|b)', '(?<name>a)'])
      expect(patternError(ok), ok).toBeUndefined();
  });

  it('run on V8 only when no input can make it backtrack, and mean the same there', () => {
    const v8 = [
      '^ord_[0-9]+$',
      '^[A-Z]{3}$',
      '^sku-[0-9]{5}$',
      '^(?:[A-Z]{3}-\\d{2})$',
      '^\\d{3,}$',
      '^a*?$',
      '^(?<y>\\d{4})-\\d{2}$',
      '^[\\]|+*]x+$',
      '^\\(a\\)+$',
    ];
    const re2 = [
      'ord_[0-9]+', // unanchored: one attempt per position
      '^a+b+$', // two varying quantifiers
      '^\\d+\\d+x$',
      '^(ab)+$', // a repeated group
      '^(?:a|b)$', // alternation
      '^(\\w|\\d)*$',
      '^\\d{1,3}\\d?$',
      '^x{2}(?:y)?$z*',
    ];
    for (const p of v8) expect(backtrackSafe(p), p).toBe(true);
    for (const p of re2) expect(backtrackSafe(p), p).toBe(false);
    // the V8 ones answer as RE2 would, on matching and failing values
    for (const [p, values] of [
      ['^ord_[0-9]+$', ['ord_1', 'ord_', 'ord_12a', `ord_${'1'.repeat(5000)}!`]],
      ['^\\d{3,}$', ['12', '123', `${'1'.repeat(5000)}x`]],
      ['^[\\]|+*]x+$', [']x', '|xx', 'ax']],
    ] as const)
      for (const v of values) {
        const [got, ms] = timed(() => safeTest(p, v));
        expect(got, `${p} ${v.slice(0, 20)}`).toBe(new RegExp(p, 'u').test(v));
        expect(ms).toBeLessThan(BOUND_MS);
      }
  });

  it('keep working when more distinct patterns were compiled than the process keeps', () => {
    expect(safeTest('^first[0-9]$', 'first1')).toBe(true);
    for (let i = 0; i < 1100; i++) expect(safeTest(`^p${i}$`, `p${i}`)).toBe(true);
    // the first was freed to make room: it compiles again rather than failing
    expect(safeTest('^first[0-9]$', 'first1')).toBe(true);
    const engine = linearRegExp('^held[0-9]$', 'u');
    for (let i = 0; i < 1100; i++) safeTest(`^q${i}$`, `q${i}`);
    expect(engine.test('held7')).toBe(true); // ajv's handle outlives the eviction
  });
});

describe('where definition patterns run', () => {
  it('a tracking plan checks a hostile pattern in linear time', () => {
    const input: TrackingPlanInput = {
      mode: 'flag',
      events: {
        'Order Completed': {
          properties: {
            type: 'object',
            properties: { order_id: { type: 'string', pattern: HOSTILE[0]! } },
            patternProperties: { '^(a|a)*$': { type: 'number' } },
          },
        },
      },
    };
    checkTrackingPlanInput(input);
    const plan = compilePlan({
      ...input,
      id: PLAN_ID,
      workspaceId: 'ws',
      version: 1,
      createdAt: '2026-01-01T00:00:00Z',
      updatedAt: '2026-01-01T00:00:00Z',
    });
    const event = (properties: Record<string, unknown>): NormalizedEvent => ({
      workspaceId: 'ws',
      type: 'track',
      event: 'Order Completed',
      messageId: 'm1',
      userId: 'u1',
      anonymousId: null,
      properties,
      traits: {},
      context: {},
      integrations: {},
      timestamp: '2026-01-01T00:00:00Z',
      receivedAt: '2026-01-01T00:00:00Z',
    });
    expect(plan.check(event({ order_id: 'A1' }))).toBeUndefined();
    const [violations, ms] = timed(() => plan.check(event({ order_id: VALUE, [`${'a'.repeat(3000)}!`]: 1 })));
    expect(violations?.map((v) => v.keyword)).toEqual(['pattern']);
    expect(ms).toBeLessThan(BOUND_MS);
    // a plan whose pattern needs backtracking is refused when saved
    expect(() =>
      checkTrackingPlanInput({
        mode: 'flag',
        events: { E: { properties: { type: 'object', properties: { x: { pattern: '(a)\\1' } } } } },
      }),
    ).toThrow(/properties\.x\.pattern.*: a backreference/);
  });

  it('a form field checks a hostile pattern in linear time', () => {
    const input = checkFormInput({
      name: 'Codes',
      fields: [{ name: 'code', label: 'Code', type: 'text', pattern: '(\\w|\\d)*', maxLength: 5000 }],
      success: { message: 'Thanks' },
    });
    const form = {
      ...input,
      id: 'frm_1',
      workspaceId: 'ws1',
      version: 1,
      status: 'active',
      createdAt: '2026-01-01T00:00:00Z',
      updatedAt: '2026-01-01T00:00:00Z',
    } as FormDefinition;
    expect(checkSubmission(form, new Map([['code', 'abc123']])).errors).toEqual({});
    const [out, ms] = timed(() => checkSubmission(form, new Map([['code', `${'1'.repeat(4998)}!`]])));
    expect(out.errors).toEqual({ code: 'does not match the expected format' });
    expect(ms).toBeLessThan(BOUND_MS);
    expect(() =>
      checkFormInput({
        name: 'Look',
        fields: [{ name: 'code', label: 'Code', type: 'text', pattern: '\\d+(?=x)' }],
        success: { message: 'Thanks' },
      }),
    ).toThrow(/fields\[0\]\.pattern: a lookahead/);
  });
});
