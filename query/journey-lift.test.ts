import { describe, expect, it } from 'vitest';
import { armFigures, differenceConfidence, holdoutLifts, normalCdf } from './journey-lift.ts';

describe('journey lift', () => {
  it('normalCdf matches known values', () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalCdf(1.959964)).toBeCloseTo(0.975, 6);
    expect(normalCdf(-1.644854)).toBeCloseTo(0.05, 6);
    expect(normalCdf(3)).toBeCloseTo(0.99865, 5);
  });

  it('confidence of a difference: a two-proportion z-test', () => {
    // 200/1000 vs 150/1000: z ≈ 2.94, two-sided p ≈ 0.0033
    const c = differenceConfidence(
      { entered: 1000, converted: 200, rate: 0.2 },
      { entered: 1000, converted: 150, rate: 0.15 },
    );
    expect(c).toBeCloseTo(0.9967, 3);
    expect(
      differenceConfidence({ entered: 0, converted: 0, rate: null }, { entered: 5, converted: 1, rate: 0.2 }),
    ).toBe(null);
    // no one converted anywhere: no evidence of a difference
    expect(
      differenceConfidence({ entered: 5, converted: 0, rate: 0 }, { entered: 5, converted: 0, rate: 0 }),
    ).toBe(0);
  });

  it('arms by node from the stats hash; lift of every variant against the holdout', () => {
    const arms = armFigures({
      entered: '30',
      'arm:s:variant:0': '10',
      'arm:s:variant:1': '10',
      'arm:s:holdout': '10',
      'conv:s:variant:0': '3',
      'conv:s:variant:1': '1',
      'conv:s:holdout': '1',
      'arm:b:yes': '4',
      'now:s': '0',
    });
    expect(arms.s!['variant:0']).toEqual({ entered: 10, converted: 3, rate: 0.3 });
    expect(arms.b!.yes).toEqual({ entered: 4, converted: 0, rate: 0 });
    const lift = holdoutLifts(arms);
    expect(Object.keys(lift)).toEqual(['s']);
    expect(lift.s!.treatment).toEqual({ entered: 20, converted: 4, rate: 0.2 });
    expect(lift.s!.lift).toBeCloseTo(1, 10);
    expect(lift.s!.difference).toBeCloseTo(0.1, 10);
    // a holdout that converted no one: the lift is unknown, not infinite
    expect(
      holdoutLifts(armFigures({ 'arm:s:holdout': '3', 'arm:s:variant:0': '3', 'conv:s:variant:0': '1' })).s!
        .lift,
    ).toBe(null);
  });
});
