// Conversion by branch and a holdout's lift, from a journey's stats hash (run-state.lua):
// `arm:<node>:<arm>` runs that left a split, branch or wait-until that way, and
// `conv:<node>:<arm>` of those, the ones that reached the goal within its window of
// entering (also after their run had ended, so a holdout is measured as the treatment is).

export interface ArmFigures {
  entered: number;
  converted: number;
  /** converted / entered; null when no one went this way. */
  rate: number | null;
}

export interface HoldoutLift {
  /** Everyone who went on past the split (every variant together). */
  treatment: ArmFigures;
  holdout: ArmFigures;
  /** (treatment rate − holdout rate) / holdout rate; null while the holdout rate is 0 or unknown. */
  lift: number | null;
  /** treatment rate − holdout rate, in rate units (0.05 = 5 points); null while either is unknown. */
  difference: number | null;
  /**
   * 1 − the two-sided p-value of a two-proportion z-test that the rates differ; null while
   * either group is empty. Read it as evidence, not proof: it assumes independent people.
   */
  confidence: number | null;
}

const figures = (entered: number, converted: number): ArmFigures => ({
  entered,
  converted,
  rate: entered > 0 ? converted / entered : null,
});

/** The standard normal CDF (Abramowitz & Stegun 7.1.26 for erf; error below 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly =
    t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** Two-proportion z-test: 1 − two-sided p that the two rates differ; null when undefined. */
export function differenceConfidence(a: ArmFigures, b: ArmFigures): number | null {
  if (a.entered === 0 || b.entered === 0) return null;
  const pooled = (a.converted + b.converted) / (a.entered + b.entered);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / a.entered + 1 / b.entered));
  if (se === 0) return 0;
  const z = (a.converted / a.entered - b.converted / b.entered) / se;
  return 1 - 2 * (1 - normalCdf(Math.abs(z)));
}

/** Per node, per arm: runs that went that way and conversions among them. */
export function armFigures(raw: Record<string, string>): Record<string, Record<string, ArmFigures>> {
  const count = new Map<string, { entered: number; converted: number }>();
  for (const [field, value] of Object.entries(raw)) {
    const kind = field.startsWith('arm:') ? 'entered' : field.startsWith('conv:') ? 'converted' : undefined;
    if (!kind) continue;
    const rest = field.slice(kind === 'entered' ? 4 : 5);
    const c = count.get(rest) ?? { entered: 0, converted: 0 };
    c[kind] = Number(value) || 0;
    count.set(rest, c);
  }
  const out: Record<string, Record<string, ArmFigures>> = {};
  for (const [key, c] of count) {
    // node ids have no ':' (schemas/journey.ts NodeId); arms may (`variant:1`)
    const at = key.indexOf(':');
    if (at <= 0) continue;
    const node = key.slice(0, at);
    out[node] ??= {};
    out[node][key.slice(at + 1)] = figures(c.entered, c.converted);
  }
  return out;
}

/** The lift of each split that has a holdout arm: every variant against the holdout. */
export function holdoutLifts(arms: Record<string, Record<string, ArmFigures>>): Record<string, HoldoutLift> {
  const out: Record<string, HoldoutLift> = {};
  for (const [node, byArm] of Object.entries(arms)) {
    const held = byArm.holdout;
    if (!held) continue;
    let entered = 0;
    let converted = 0;
    for (const [arm, f] of Object.entries(byArm))
      if (arm.startsWith('variant:')) {
        entered += f.entered;
        converted += f.converted;
      }
    const treatment = figures(entered, converted);
    const holdout = figures(held.entered, held.converted);
    const difference =
      treatment.rate !== null && holdout.rate !== null ? treatment.rate - holdout.rate : null;
    out[node] = {
      treatment,
      holdout,
      lift: difference !== null && holdout.rate ? difference / holdout.rate : null,
      difference,
      confidence: differenceConfidence(treatment, holdout),
    };
  }
  return out;
}
