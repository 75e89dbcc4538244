import { describe, expect, it } from 'vitest';
import { batchBodies, fillSlots, ID_SLOT, singleBodies } from './events.ts';
import { parseResponse } from './load.ts';
import {
  buildRows,
  describeNoise,
  type Figure,
  formatValue,
  noiseBand,
  passes,
  ratioOf,
  renderTable,
  spreadLabel,
  targetLabel,
} from './report.ts';
import { cvPct, median, percentile, spread, summarizeLatencies } from './stats.ts';

describe('stats', () => {
  it('takes nearest-rank percentiles', () => {
    const v = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted on purpose
    expect(percentile(v, 50)).toBe(50);
    expect(percentile(v, 99)).toBe(99);
    expect(percentile(v, 100)).toBe(100);
    expect(percentile(v, 0)).toBe(1);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
    expect(() => percentile([1], 101)).toThrow(RangeError);
  });

  it('sorts numerically, not as strings', () => {
    expect(percentile([10, 9, 100, 2], 50)).toBe(9);
    expect(median([10, 9, 100, 2])).toBe(9.5);
  });

  it('takes the median of odd and even counts', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  it('reports the spread of runs as ± half range around the median', () => {
    expect(spread([90, 100, 110])).toEqual({ min: 90, max: 110, noisePct: 10 });
    expect(spread([42]).noisePct).toBeNull();
  });

  it('gives the coefficient of variation in percent', () => {
    expect(cvPct([10, 10, 10])).toBe(0);
    expect(cvPct([9, 11])).toBeCloseTo(10);
    expect(cvPct([5])).toBeNull();
  });

  it('summarises latencies', () => {
    const s = summarizeLatencies(Float64Array.from([4, 1, 3, 2]));
    expect(s).toMatchObject({ count: 4, p50: 2, p99: 4, max: 4, mean: 2.5 });
  });
});

describe('comparison and targets', () => {
  it('computes ratios only against a usable reference', () => {
    expect(ratioOf(60, 100)).toBeCloseTo(0.6);
    expect(ratioOf(60, 0)).toBeNull();
    expect(ratioOf(60, undefined)).toBeNull();
    expect(ratioOf(60, Number.NaN)).toBeNull();
  });

  it('checks absolute and relative targets', () => {
    expect(passes(50_000, null, { kind: 'atLeast', value: 50_000 })).toBe(true);
    expect(passes(49_999, null, { kind: 'atLeast', value: 50_000 })).toBe(false);
    expect(passes(3, null, { kind: 'atMost', value: 0 })).toBe(false);
    expect(passes(1, 0.6, { kind: 'ratioAtLeast', value: 0.6 })).toBe(true);
    expect(passes(1, 0.59, { kind: 'ratioAtLeast', value: 0.6 })).toBe(false);
    expect(passes(1, null, { kind: 'ratioAtLeast', value: 0.6 })).toBe(false);
    expect(passes(1, 2, { kind: 'ratioAtMost', value: 2 })).toBe(true);
    expect(passes(1, 2.01, { kind: 'ratioAtMost', value: 2 })).toBe(false);
    expect(passes(1, null, { kind: 'ratioAtMost', value: 2 })).toBe(false);
    expect(targetLabel({ kind: 'ratioAtMost', value: 2 }, 'µs')).toBe('≤ 2× ref');
    expect(passes(Number.NaN, null, { kind: 'atLeast', value: 1 })).toBe(false);
    expect(passes(1, null, null)).toBeNull();
  });

  const figs: Figure[] = [
    { scenario: 'ingest/bare', figure: 'single: throughput', unit: 'req/s', runs: [10_000, 9_000, 11_000] },
    {
      scenario: 'ingest/kafkajs',
      figure: 'single: throughput',
      unit: 'req/s',
      runs: [5_000, 7_000, 6_500],
      compareTo: { scenario: 'ingest/bare', figure: 'single: throughput' },
      target: { kind: 'ratioAtLeast', value: 0.6 },
    },
    {
      scenario: 'ingest/kafkajs',
      figure: 'batch×100: throughput',
      unit: 'events/s',
      runs: [61_000],
      jitterPct: 4.2,
      target: { kind: 'atLeast', value: 50_000 },
    },
    { scenario: 'ingest/kafkajs', figure: 'single: p99', unit: 'ms', runs: [3.456, 2.5, 12] },
  ];

  it('builds rows from the median of the runs, compared with the reference median', () => {
    const rows = buildRows(figs);
    expect(rows[0]).toMatchObject({ value: 10_000, comparedTo: null, ratio: null, pass: null });
    expect(rows[1]).toMatchObject({
      value: 6_500,
      comparedTo: 'ingest/bare · single: throughput',
      min: 5_000,
      max: 7_000,
      pass: true,
    });
    expect(rows[1]!.ratio).toBeCloseTo(0.65);
    expect(rows[1]!.noisePct).toBeCloseTo((1000 / 6500) * 100);
    expect(rows[2]).toMatchObject({ value: 61_000, pass: true, noisePct: null, jitterPct: 4.2 });
  });

  it('refuses a comparison with a figure that was not measured', () => {
    expect(() =>
      buildRows([
        { scenario: 'a', figure: 'x', unit: 'req/s', runs: [1], compareTo: { scenario: 'b', figure: 'x' } },
      ]),
    ).toThrow(/unknown figure b · x/);
  });

  it('renders a table with aligned columns, a rule between scenarios and pass/SHORT', () => {
    const rows = buildRows([
      ...figs,
      {
        scenario: 'ingest/rdkafka',
        figure: 'batch×100: throughput',
        unit: 'events/s',
        runs: [40_000, 41_000, 39_000],
        target: { kind: 'atLeast', value: 50_000 },
      },
    ]);
    const text = renderTable(rows);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^scenario\s+figure\s+unit\s+value\s+spread \(runs\)\s+compared to\s+ratio\s+target\s+result$/,
    );
    expect(lines[1]).toMatch(/^─+/);
    expect(text).toContain('≥ 60% of ref');
    expect(text).toContain('≥ 50,000');
    expect(text).toMatch(
      /ingest\/kafkajs\s+single: throughput\s+req\/s\s+6,500\s+5,000–7,000 \(±15\.4%\).*0\.65×.*pass/,
    );
    expect(text).toMatch(/ingest\/rdkafka .*40,000 .*SHORT$/m);
    expect(text).toContain('±4.2% in-run');
    // a blank line separates scenarios; values are right-aligned under their header
    expect(lines.filter((l) => l === '')).toHaveLength(2);
    const end = lines[0]!.indexOf('value') + 'value'.length;
    for (const l of lines.filter((x) => x.startsWith('ingest/'))) {
      expect(l[end - 1]).toMatch(/\d/);
      expect(l[end]).toBe(' ');
    }
  });

  it('formats values by unit', () => {
    expect(formatValue(1234567.4, 'events/s')).toBe('1,234,567');
    expect(formatValue(3.456, 'ms')).toBe('3.46');
    expect(formatValue(34.56, 'ms')).toBe('34.6');
    expect(formatValue(345.6, 'ms')).toBe('346');
    expect(formatValue(Number.NaN, 'ms')).toBe('–');
    expect(formatValue(99.6, '% core')).toBe('100');
  });

  it('labels the spread from runs, or from inside a single run', () => {
    const [bare, , batch] = buildRows(figs);
    expect(spreadLabel(bare!)).toBe('9,000–11,000 (±10.0%)');
    expect(spreadLabel(batch!)).toBe('±4.2% in-run');
  });

  it('derives the noise band from repeated runs when there are any', () => {
    const band = noiseBand(buildRows(figs));
    expect(band.source).toBe('runs');
    expect(band.maxPct).toBeCloseTo((1000 / 6500) * 100);
    expect(band.worst).toBe('ingest/kafkajs · single: throughput');
    expect(describeNoise(band, 3)).toMatch(/across 3 runs/);
    const single = noiseBand(buildRows([figs[2]!]));
    expect(single).toMatchObject({ source: 'within-run', maxPct: 4.2 });
    expect(noiseBand([]).source).toBe('none');
  });
});

describe('load generator pieces', () => {
  it('parses responses with content-length, chunked bodies and partial reads', () => {
    const ok = Buffer.from(
      'HTTP/1.1 200 OK\r\nContent-Length: 16\r\nConnection: keep-alive\r\n\r\n{"success":true}',
    );
    expect(parseResponse(ok)).toEqual({ length: ok.length, status: 200, close: false });
    expect(parseResponse(ok.subarray(0, ok.length - 1))).toBeNull();
    expect(parseResponse(ok.subarray(0, 20))).toBeNull();
    const two = Buffer.concat([ok, ok]);
    expect(parseResponse(two)?.length).toBe(ok.length);
    const chunked = Buffer.from(
      'HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n0\r\n\r\n',
    );
    expect(parseResponse(chunked)).toEqual({ length: chunked.length, status: 503, close: true });
  });

  it('builds ~400-byte events with one fillable id slot each', () => {
    const [one] = singleBodies(1, 'n0nce');
    expect(one!.length).toBeGreaterThan(350);
    expect(one!.length).toBeLessThan(500);
    expect(one!.split(ID_SLOT)).toHaveLength(2);
    const [batch] = batchBodies(1, 100, 'n0nce');
    expect((JSON.parse(fillSlots(batch!)) as { batch: unknown[] }).batch).toHaveLength(100);
    expect(batch!.split(ID_SLOT)).toHaveLength(101);
  });
});
