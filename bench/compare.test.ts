import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareReports, readReportRows, renderComparison } from './compare.ts';
import { buildRows, type Figure } from './report.ts';

const fig = (figure: string, runs: number[], unit = 'events/s'): Figure => ({
  scenario: 's',
  figure,
  unit,
  runs,
});

describe('comparing two benchmark reports', () => {
  it('agrees within the larger spread and marks a figure that moved further', () => {
    const before = buildRows([
      fig('steady', [95, 100, 105]), // ±5%
      fig('moved', [98, 100, 102]), // ±2%
      fig('noisy', [50, 100, 150]), // ±50%
      fig('latency', [10, 11, 12], 'ms'),
    ]);
    const after = buildRows([
      fig('steady', [100, 104, 106]), // +4%, within ±5%
      fig('moved', [109, 110, 111]), // +10%, outside ±2% and ±1%
      fig('noisy', [70, 60, 65]), // −35%, within the old ±50%
      fig('latency', [14, 15, 16], 'ms'), // +36%, outside ±9.1% / ±6.7%
      fig('new', [1, 2, 3]), // only in one report: not compared
    ]);
    const c = compareReports(before, after);
    const by = new Map(c.figures.map((f) => [f.figure, f]));
    expect(by.get('steady')).toMatchObject({ before: 100, after: 104, agrees: true, allowedPct: 5 });
    expect(by.get('steady')!.changePct).toBeCloseTo(4);
    expect(by.get('moved')).toMatchObject({ agrees: false });
    expect(by.get('moved')!.changePct).toBeCloseTo(10);
    expect(by.get('noisy')).toMatchObject({ agrees: true, allowedPct: 50 });
    expect(by.get('latency')).toMatchObject({ agrees: false });
    expect(by.has('new')).toBe(false);
    expect(c.agreeing).toBe(2);
    expect(c.summary).toContain('2 of 4 figures agree');
    expect(c.summary).toContain('s · moved');
    const text = renderComparison(c);
    expect(text).toMatch(/moved\s+events\/s\s+100\s+110\s+\+10\.0%\s+±2\.0%\s+APART/);
    expect(text).toMatch(/steady\s+events\/s\s+100\s+104\s+\+4\.0%\s+±5\.0%\s+yes/);
  });

  it('skips what has no spread to judge by: single runs, counts, zeros', () => {
    const before = buildRows([fig('one run', [100]), fig('errors', [0, 0], 'count'), fig('zero', [0, 0])]);
    const after = buildRows([fig('one run', [300]), fig('errors', [5, 5], 'count'), fig('zero', [1, 1])]);
    const c = compareReports(before, after);
    expect(c.figures).toEqual([]);
    expect(c.skipped).toHaveLength(3);
    expect(c.summary).toContain('no figure in both reports');
    // a single run is still shown, without a verdict (the e2e scenario runs once)
    expect(c.unjudged).toEqual([
      { scenario: 's', figure: 'one run', unit: 'events/s', before: 100, after: 300, changePct: 200 },
    ]);
    expect(renderComparison(c)).toMatch(
      /single runs \(no spread to judge a change by\):[\s\S]*one run\s+events\/s\s+100\s+300\s+\+200\.0%/,
    );
  });

  it('reads a saved --json report, and names what is wrong with a bad one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cdp-compare-'));
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ results: buildRows([fig('x', [1, 2])]) }));
    expect(readReportRows(good)).toHaveLength(1);
    const text = join(dir, 'text.txt');
    writeFileSync(text, 'cdp benchmark — full mode');
    expect(() => readReportRows(text)).toThrow(/not a readable JSON report/);
    const other = join(dir, 'other.json');
    writeFileSync(other, '{"rows": []}');
    expect(() => readReportRows(other)).toThrow(/no "results" array/);
    expect(() => readReportRows(join(dir, 'missing.json'))).toThrow(/not a readable JSON report/);
  });
});
