// Times and durations of analytics bodies, checked strictly (no Date.parse leniency).
import { InputError } from './sql-params.ts';

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
export const DAY_MS = 86_400_000;

/** Epoch ms of an ISO 8601 timestamp between 1970 and 2299; a date alone is midnight UTC. */
export function parseTime(s: string, field: string): number {
  const m = ISO.exec(s);
  if (!m) throw new InputError(field, 'expected an ISO 8601 timestamp such as 2026-01-31T00:00:00Z');
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', zone] = m;
  const parts = [y, mo, d, h, mi, sec].map(Number) as [number, number, number, number, number, number];
  const ms = Number(frac.padEnd(3, '0').slice(0, 3) || 0);
  let t = Date.UTC(parts[0], parts[1] - 1, parts[2], parts[3], parts[4], parts[5], ms);
  const check = new Date(t);
  if (
    check.getUTCFullYear() !== parts[0] ||
    check.getUTCMonth() !== parts[1] - 1 ||
    check.getUTCDate() !== parts[2] ||
    parts[3] > 23 ||
    parts[4] > 59 ||
    parts[5] > 59
  )
    throw new InputError(field, 'not a valid date and time');
  if (zone && zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const z = zone.slice(1).replace(':', '');
    t -= sign * (Number(z.slice(0, 2)) * 60 + Number(z.slice(2))) * 60_000;
  }
  if (parts[0] < 1970 || parts[0] > 2299) throw new InputError(field, 'must be between 1970 and 2299');
  return t;
}

export function parseDuration(s: string, field: string, maxMs = 400 * DAY_MS): number {
  const m = /^(\d{1,6})([smhdw])$/.exec(s);
  if (!m) throw new InputError(field, 'expected a duration such as 30d (s, m, h, d, w)');
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  if (ms <= 0) throw new InputError(field, 'must be longer than 0');
  if (ms > maxMs) throw new InputError(field, `must be at most ${Math.round(maxMs / DAY_MS)}d`);
  return ms;
}

export function parseRange(
  body: { from: string; to: string },
  maxDays: number,
): { fromMs: number; toMs: number } {
  const fromMs = parseTime(body.from, 'from');
  const toMs = parseTime(body.to, 'to');
  if (toMs <= fromMs) throw new InputError('to', 'must be after from');
  if (toMs - fromMs > maxDays * DAY_MS) throw new InputError('to', `the range is at most ${maxDays} days`);
  return { fromMs, toMs };
}

/** Start (epoch ms) of the UTC period holding `t`: hour, day, or ISO week (Monday). */
export function periodStart(t: number, interval: 'hour' | 'day' | 'week'): number {
  if (interval === 'hour') return Math.floor(t / 3_600_000) * 3_600_000;
  const day = Math.floor(t / DAY_MS);
  if (interval === 'day') return day * DAY_MS;
  // 1970-01-01 was a Thursday: day 4 was the first Monday
  return (Math.floor((day + 3) / 7) * 7 - 3) * DAY_MS;
}

export const PERIOD_MS = { hour: 3_600_000, day: DAY_MS, week: 7 * DAY_MS } as const;

/** The same bucketing in SQL over an epoch-ms Int64 expression. */
export function periodStartSql(ts: string, interval: 'hour' | 'day' | 'week'): string {
  if (interval === 'hour') return `intDiv(${ts}, 3600000) * 3600000`;
  if (interval === 'day') return `intDiv(${ts}, 86400000) * 86400000`;
  return `(intDiv(intDiv(${ts}, 86400000) + 3, 7) * 7 - 3) * 86400000`;
}
