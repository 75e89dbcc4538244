// Two benchmark reports side by side: does a figure differ by more than its noise?
//   tsx bench/compare.ts before.json after.json     (reports from `npm run bench -- --json`)
//   npm run bench -- --compare=before.json           (this run against a saved report)
// A figure agrees when the two medians differ by no more than the larger of the two
// reports' run-to-run spreads of that figure (±half range, both need 2+ runs): the rule
// the report's noise line states. Pure except for the command-line entry at the bottom.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { figureKey, formatValue, type ResultRow, renderGrid } from './report.ts';

export interface FigureComparison {
  scenario: string;
  figure: string;
  unit: string;
  before: number;
  after: number;
  /** (after − before) / |before|, %. */
  changePct: number;
  /** The larger of the two spreads (±%). */
  allowedPct: number;
  agrees: boolean;
}

export interface Comparison {
  figures: FigureComparison[];
  /** Figures in both reports that cannot be compared (a single run, a count, a zero). */
  skipped: string[];
  /**
   * Of the skipped, those with a single run on either side (the e2e scenario's, its cost per
   * event included): both values and the change, shown without a verdict.
   */
  unjudged: Array<Omit<FigureComparison, 'allowedPct' | 'agrees'>>;
  agreeing: number;
  summary: string;
}

export function compareReports(before: readonly ResultRow[], after: readonly ResultRow[]): Comparison {
  const earlier = new Map(before.map((r) => [figureKey(r.scenario, r.figure), r]));
  const figures: FigureComparison[] = [];
  const skipped: string[] = [];
  const unjudged: Comparison['unjudged'] = [];
  for (const a of after) {
    const key = figureKey(a.scenario, a.figure);
    const b = earlier.get(key);
    if (!b) continue;
    if (
      a.unit === 'count' ||
      a.noisePct === null ||
      b.noisePct === null ||
      !Number.isFinite(a.value) ||
      !Number.isFinite(b.value) ||
      b.value === 0
    ) {
      skipped.push(key);
      if (a.unit !== 'count' && Number.isFinite(a.value) && Number.isFinite(b.value) && b.value !== 0)
        unjudged.push({
          scenario: a.scenario,
          figure: a.figure,
          unit: a.unit,
          before: b.value,
          after: a.value,
          changePct: ((a.value - b.value) / Math.abs(b.value)) * 100,
        });
      continue;
    }
    const changePct = ((a.value - b.value) / Math.abs(b.value)) * 100;
    const allowedPct = Math.max(a.noisePct, b.noisePct);
    figures.push({
      scenario: a.scenario,
      figure: a.figure,
      unit: a.unit,
      before: b.value,
      after: a.value,
      changePct,
      allowedPct,
      agrees: Math.abs(changePct) <= allowedPct,
    });
  }
  const agreeing = figures.filter((f) => f.agrees).length;
  const apart = figures.filter((f) => !f.agrees).map((f) => figureKey(f.scenario, f.figure));
  const summary =
    figures.length === 0
      ? 'comparison: no figure in both reports with 2+ runs'
      : `comparison: ${agreeing} of ${figures.length} figures agree within their noise` +
        (apart.length ? `; apart: ${apart.join(', ')}` : '') +
        (skipped.length ? ` (${skipped.length} not comparable: single run, count or zero)` : '');
  return { figures, skipped, unjudged, agreeing, summary };
}

const COLUMNS = [
  { title: 'scenario', right: false },
  { title: 'figure', right: false },
  { title: 'unit', right: false },
  { title: 'before', right: true },
  { title: 'after', right: true },
  { title: 'change', right: true },
  { title: 'noise', right: true },
  { title: 'agree', right: false },
] as const;

export function renderComparison(c: Comparison): string {
  const cells = c.figures.map((f) => [
    f.scenario,
    f.figure,
    f.unit,
    formatValue(f.before, f.unit),
    formatValue(f.after, f.unit),
    `${f.changePct >= 0 ? '+' : ''}${f.changePct.toFixed(1)}%`,
    `±${f.allowedPct.toFixed(1)}%`,
    f.agrees ? 'yes' : 'APART',
  ]);
  const single =
    c.unjudged.length === 0
      ? ''
      : `\nsingle runs (no spread to judge a change by):\n${renderGrid(
          COLUMNS.slice(0, 6),
          c.unjudged.map((f) => [
            f.scenario,
            f.figure,
            f.unit,
            formatValue(f.before, f.unit),
            formatValue(f.after, f.unit),
            `${f.changePct >= 0 ? '+' : ''}${f.changePct.toFixed(1)}%`,
          ]),
          c.unjudged.map((f) => f.scenario),
        )}`;
  return `${renderGrid(
    COLUMNS,
    cells,
    c.figures.map((f) => f.scenario),
  )}${c.summary}\n${single}`;
}

/** The result rows of a saved `--json` report, or a clear error. */
export function readReportRows(path: string): ResultRow[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: not a readable JSON report (${(err as Error).message})`);
  }
  const results = (parsed as { results?: unknown }).results;
  if (!Array.isArray(results)) throw new Error(`${path}: no "results" array (save one with --json)`);
  return results as ResultRow[];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [a, b] = process.argv.slice(2);
  if (!a || !b) {
    process.stderr.write('usage: tsx bench/compare.ts before.json after.json\n');
    process.exit(64);
  }
  try {
    const c = compareReports(readReportRows(a), readReportRows(b));
    process.stdout.write(renderComparison(c));
    process.exit(c.agreeing === c.figures.length ? 0 : 2);
  } catch (err) {
    process.stderr.write(`compare: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
