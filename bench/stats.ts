// Pure statistics used by the benchmark: percentiles of latency samples, the median and
// spread of repeated runs, and the jitter of throughput within one run. No I/O.

/** Ascending copy (numbers, not strings, are compared). */
export function sorted(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

/**
 * Nearest-rank percentile of values already sorted ascending: the smallest value such that
 * at least p% of the samples are less than or equal to it. p in [0, 100]; NaN when empty.
 */
export function percentileOfSorted(ascending: ArrayLike<number>, p: number): number {
  const n = ascending.length;
  if (n === 0) return Number.NaN;
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} is outside 0..100`);
  const rank = Math.max(1, Math.ceil((p / 100) * n));
  return ascending[Math.min(n, rank) - 1]!;
}

export function percentile(values: ArrayLike<number>, p: number): number {
  return percentileOfSorted(sorted(values), p);
}

/** Median (mean of the two middle values for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  const s = sorted(values);
  const n = s.length;
  if (n === 0) return Number.NaN;
  const mid = n >> 1;
  return n % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

export interface Spread {
  min: number;
  max: number;
  /**
   * Half the range relative to the median, in percent: "±x%" around the median. Null with
   * fewer than two runs (one run says nothing about run-to-run noise).
   */
  noisePct: number | null;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { min: Number.NaN, max: Number.NaN, noisePct: null };
  const min = Math.min(...values);
  const max = Math.max(...values);
  const m = median(values);
  const noisePct = values.length < 2 || m === 0 ? null : ((max - min) / 2 / Math.abs(m)) * 100;
  return { min, max, noisePct };
}

/** Coefficient of variation in percent (population standard deviation / mean); null below two samples. */
export function cvPct(values: readonly number[]): number | null {
  if (values.length < 2) return null;
  const m = mean(values);
  if (m === 0) return null;
  let sq = 0;
  for (const v of values) sq += (v - m) ** 2;
  return (Math.sqrt(sq / values.length) / Math.abs(m)) * 100;
}

/** Latency summary of one measurement, in the unit of the samples. */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarizeLatencies(samples: ArrayLike<number>): LatencySummary {
  const s = sorted(samples);
  let sum = 0;
  for (const v of s) sum += v;
  return {
    count: s.length,
    p50: percentileOfSorted(s, 50),
    p90: percentileOfSorted(s, 90),
    p99: percentileOfSorted(s, 99),
    max: s.length ? s[s.length - 1]! : Number.NaN,
    mean: s.length ? sum / s.length : Number.NaN,
  };
}
