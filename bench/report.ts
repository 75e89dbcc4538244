// Turns measured figures into result rows (median of the runs, spread, comparison with a
// reference figure, target check) and renders them as a table or JSON. Pure: no I/O.
import { median, spread } from './stats.ts';

export type Target =
  /** value ≥ n (in the row's unit) */
  | { kind: 'atLeast'; value: number }
  /** value ≤ n (in the row's unit) */
  | { kind: 'atMost'; value: number }
  /** value / comparedTo ≥ r */
  | { kind: 'ratioAtLeast'; value: number }
  /** value / comparedTo ≤ r (a cost that may grow at most r-fold) */
  | { kind: 'ratioAtMost'; value: number };

/** One figure as measured by a scenario: one value per run. */
export interface Figure {
  scenario: string;
  figure: string;
  unit: string;
  runs: number[];
  /** Variation inside each run (CV of per-interval throughput, %), median over the runs. */
  jitterPct?: number | null;
  /** The figure this one is compared with (its median is the reference). */
  compareTo?: { scenario: string; figure: string };
  target?: Target;
}

export interface ResultRow {
  scenario: string;
  figure: string;
  unit: string;
  /** Median over the runs. */
  value: number;
  /** `scenario · figure` of the reference, when there is one. */
  comparedTo: string | null;
  /** value / reference's value. */
  ratio: number | null;
  target: Target | null;
  /** True/false when there is a target, null otherwise. */
  pass: boolean | null;
  runs: number[];
  min: number;
  max: number;
  /** Half range across runs relative to the median (±%), null with one run. */
  noisePct: number | null;
  jitterPct: number | null;
}

export const figureKey = (scenario: string, figure: string) => `${scenario} · ${figure}`;

export function ratioOf(value: number, reference: number | undefined): number | null {
  if (reference === undefined || !Number.isFinite(reference) || reference === 0 || !Number.isFinite(value))
    return null;
  return value / reference;
}

export function passes(
  value: number,
  ratio: number | null,
  target: Target | undefined | null,
): boolean | null {
  if (!target) return null;
  if (!Number.isFinite(value)) return false;
  switch (target.kind) {
    case 'atLeast':
      return value >= target.value;
    case 'atMost':
      return value <= target.value;
    case 'ratioAtLeast':
      return ratio !== null && ratio >= target.value;
    case 'ratioAtMost':
      return ratio !== null && ratio <= target.value;
  }
}

export function buildRows(figures: readonly Figure[]): ResultRow[] {
  const medians = new Map<string, number>();
  for (const f of figures) medians.set(figureKey(f.scenario, f.figure), median(f.runs));
  return figures.map((f) => {
    const value = medians.get(figureKey(f.scenario, f.figure))!;
    const refKey = f.compareTo ? figureKey(f.compareTo.scenario, f.compareTo.figure) : null;
    if (refKey !== null && !medians.has(refKey))
      throw new Error(`${figureKey(f.scenario, f.figure)} is compared with unknown figure ${refKey}`);
    const ratio = refKey === null ? null : ratioOf(value, medians.get(refKey));
    const s = spread(f.runs);
    return {
      scenario: f.scenario,
      figure: f.figure,
      unit: f.unit,
      value,
      comparedTo: refKey,
      ratio,
      target: f.target ?? null,
      pass: passes(value, ratio, f.target),
      runs: [...f.runs],
      min: s.min,
      max: s.max,
      noisePct: s.noisePct,
      jitterPct: f.jitterPct ?? null,
    };
  });
}

const THROUGHPUT_UNITS = new Set(['req/s', 'events/s', 'msg/s']);
export const isThroughput = (unit: string) => THROUGHPUT_UNITS.has(unit);

export function formatValue(v: number, unit: string): string {
  if (!Number.isFinite(v)) return '–';
  if (unit === 'ms' || unit === 'µs') {
    const a = Math.abs(v);
    return v.toFixed(a < 10 ? 2 : a < 100 ? 1 : 0);
  }
  if (unit === '%' || unit === '% core') return v.toFixed(0);
  if (unit === 'msg/event') return v.toFixed(2);
  return Math.round(v).toLocaleString('en-US');
}

export function targetLabel(target: Target | null, unit: string): string {
  if (!target) return '';
  switch (target.kind) {
    case 'atLeast':
      return `≥ ${formatValue(target.value, unit)}`;
    case 'atMost':
      return `≤ ${formatValue(target.value, unit)}`;
    case 'ratioAtLeast':
      return `≥ ${Math.round(target.value * 100)}% of ref`;
    case 'ratioAtMost':
      return `≤ ${target.value}× ref`;
  }
}

export function spreadLabel(row: ResultRow): string {
  if (row.runs.length >= 2 && row.noisePct !== null)
    return `${formatValue(row.min, row.unit)}–${formatValue(row.max, row.unit)} (±${row.noisePct.toFixed(1)}%)`;
  if (row.jitterPct !== null) return `±${row.jitterPct.toFixed(1)}% in-run`;
  return '';
}

const COLUMNS = [
  { title: 'scenario', right: false },
  { title: 'figure', right: false },
  { title: 'unit', right: false },
  { title: 'value', right: true },
  { title: 'spread (runs)', right: true },
  { title: 'compared to', right: false },
  { title: 'ratio', right: true },
  { title: 'target', right: false },
  { title: 'result', right: false },
] as const;

export function rowCells(row: ResultRow): string[] {
  return [
    row.scenario,
    row.figure,
    row.unit,
    formatValue(row.value, row.unit),
    spreadLabel(row),
    row.comparedTo ?? '',
    row.ratio === null ? '' : `${row.ratio.toFixed(2)}×`,
    targetLabel(row.target, row.unit),
    row.pass === null ? '' : row.pass ? 'pass' : 'SHORT',
  ];
}

/** A plain-text table, one line per row, a rule between scenarios. */
export function renderTable(rows: readonly ResultRow[]): string {
  return renderGrid(
    COLUMNS,
    rows.map(rowCells),
    rows.map((r) => r.scenario),
  );
}

/** Aligned columns under a title line and a rule; a blank line where `groups` changes. */
export function renderGrid(
  columns: ReadonlyArray<{ title: string; right: boolean }>,
  cells: ReadonlyArray<readonly string[]>,
  groups: readonly string[],
): string {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (columns[i]!.right ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '─'.repeat(w)).join('  ');
  const out = [line(columns.map((c) => c.title)), rule];
  let last: string | undefined;
  cells.forEach((row, i) => {
    if (last !== undefined && groups[i] !== last) out.push('');
    last = groups[i];
    out.push(line(row));
  });
  return `${out.join('\n')}\n`;
}

export interface NoiseBand {
  /** Where the band comes from: repeated runs, or (one run) per-interval variation inside it. */
  source: 'runs' | 'within-run' | 'none';
  /** Largest ±% over the throughput rows. */
  maxPct: number | null;
  /** Median ±% over the throughput rows. */
  medianPct: number | null;
  /** The throughput row with the largest noise. */
  worst: string | null;
}

/** How much throughput figures moved between runs (or within a run when there was only one). */
export function noiseBand(rows: readonly ResultRow[]): NoiseBand {
  const tp = rows.filter((r) => isThroughput(r.unit));
  const fromRuns = tp.filter((r) => r.noisePct !== null);
  const pick = fromRuns.length > 0 ? fromRuns : tp.filter((r) => r.jitterPct !== null);
  if (pick.length === 0) return { source: 'none', maxPct: null, medianPct: null, worst: null };
  const source = fromRuns.length > 0 ? 'runs' : 'within-run';
  const val = (r: ResultRow) => (source === 'runs' ? r.noisePct! : r.jitterPct!);
  const worst = pick.reduce((a, b) => (val(b) > val(a) ? b : a));
  return {
    source,
    maxPct: val(worst),
    medianPct: median(pick.map(val)),
    worst: figureKey(worst.scenario, worst.figure),
  };
}

export function describeNoise(band: NoiseBand, runs: number): string {
  if (band.source === 'none' || band.maxPct === null || band.medianPct === null)
    return 'noise band: unknown (no throughput figures)';
  if (band.source === 'runs')
    return (
      `noise band: across ${runs} runs throughput moved ±${band.medianPct.toFixed(1)}% (median over figures), ` +
      `worst ±${band.maxPct.toFixed(1)}% (${band.worst}); a difference between two reports is real only ` +
      'when it is larger than both spreads of that figure'
    );
  return (
    `noise band: one run only; per-interval throughput varied ±${band.medianPct.toFixed(1)}% (median CV) and up to ` +
    `±${band.maxPct.toFixed(1)}% (${band.worst}) inside the run; use the full mode (3 runs) to compare reports`
  );
}
