// Local-time arithmetic for journeys, in an IANA zone: the next occurrence of a local time
// of day (waits until "Tuesday 10:00 in their own zone"), the next tick of a cron
// expression (recurring schedule entries), the instant of a date trait plus an offset at a
// local time (date-trait entries). Pure: every function takes "now" as a parameter.
//
// Daylight saving, pinned by tests: a local time that does not exist (skipped forward, e.g.
// 02:30 in Europe/Berlin on the last Sunday of March) happens as many minutes after the gap
// as it would have been into it (02:30 → 03:30), and a local time that exists twice
// (turned back, e.g. 01:30 in America/New_York on the first Sunday of November) happens at
// its first occurrence only, so a daily wait or schedule fires once on both days.

const formatters = new Map<string, Intl.DateTimeFormat>();

/** A cached formatter of wall-clock parts in `tz` (throws for an unknown zone). */
export function zoneFormatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    if (formatters.size > 1000) formatters.clear();
    formatters.set(tz, f);
  }
  return f;
}

/** Whether `tz` is an IANA zone name this runtime knows. */
export function isTimezone(tz: unknown): tz is string {
  if (typeof tz !== 'string' || tz.length === 0 || tz.length > 64) return false;
  try {
    zoneFormatter(tz);
    return true;
  } catch {
    return false;
  }
}

/** The wall clock at `ms` in `tz`, as if it were UTC (ms), i.e. `ms` plus the zone's offset. */
function wallClock(ms: number, tz: string): number {
  const p: Record<string, number> = {};
  for (const part of zoneFormatter(tz).formatToParts(new Date(ms)))
    if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
}

const offsetAt = (ms: number, tz: string) => wallClock(ms, tz) - Math.floor(ms / 1000) * 1000;

const DAY = 86_400_000;

/**
 * The instant a wall-clock time (given as if UTC, ms) happens in `tz`: the first of two in
 * a fold; in a gap, shifted forward by the gap. Zones change offset at most once a day.
 */
export function localInstant(wall: number, tz: string): number {
  const before = offsetAt(wall - DAY, tz);
  const after = offsetAt(wall + DAY, tz);
  const candidates = [before, after].filter((o) => offsetAt(wall - o, tz) === o).map((o) => wall - o);
  if (candidates.length > 0) return Math.min(...candidates);
  return wall - before; // in the gap: the offset before it carries the time past the gap
}

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** Seconds of the day of `HH:MM` or `HH:MM:SS`; undefined if not a valid time. */
export function parseTimeOfDay(s: unknown): number | undefined {
  if (typeof s !== 'string') return undefined;
  const m = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/.exec(s);
  if (!m) return undefined;
  return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3] ?? 0);
}

/**
 * The first instant strictly after `afterMs` when the local time in `tz` is `time`, on
 * one of `weekdays` (any day when empty or absent).
 */
export function nextLocalTime(
  afterMs: number,
  tz: string,
  spec: { time: string; weekdays?: readonly string[] },
): number {
  const seconds = parseTimeOfDay(spec.time);
  if (seconds === undefined) throw new Error(`not a time of day: ${spec.time}`);
  const days = new Set(spec.weekdays ?? []);
  const today = Math.floor(wallClock(afterMs, tz) / DAY) * DAY;
  // a week and a day: the same weekday next week, whatever a DST change does to today
  for (let d = -1; d <= 8; d++) {
    const date = today + d * DAY;
    if (days.size > 0 && !days.has(WEEKDAYS[new Date(date).getUTCDay()]!)) continue;
    const t = localInstant(date + seconds * 1000, tz);
    if (t > afterMs) return t;
  }
  throw new Error('no weekday matched'); // unreachable with valid weekdays
}

// ---- cron ----------------------------------------------------------------------------

/** A parsed cron expression: the allowed values of each field. */
export interface Cron {
  seconds: number[];
  minutes: number[];
  hours: number[];
  days: Set<number>;
  months: Set<number>;
  weekdays: Set<number>;
  /** Day of month and day of week both restricted: either matches (as in cron). */
  dayOr: boolean;
}

const FIELDS = [
  ['second', 0, 59],
  ['minute', 0, 59],
  ['hour', 0, 23],
  ['day of month', 1, 31],
  ['month', 1, 12],
  ['day of week', 0, 7],
] as const;

/**
 * Parses `minute hour day-of-month month day-of-week` (five fields) or the same with a
 * leading seconds field (six). Each field: `*`, a number, a range `a-b`, a step `*\/n` or
 * `a-b/n`, or a list of these. Day of week 0 or 7 is Sunday. Throws naming the field.
 */
export function parseCron(expr: string): Cron {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 5 && parts.length !== 6)
    throw new Error('five fields (minute hour day month weekday) or six (with seconds first)');
  const fields = parts.length === 5 ? ['0', ...parts] : parts;
  const sets = fields.map((f, i) => {
    const [name, lo, hi] = FIELDS[i]!;
    const out = new Set<number>();
    for (const item of f.split(',')) {
      const m = /^(\*|(\d{1,2})(?:-(\d{1,2}))?)(?:\/(\d{1,2}))?$/.exec(item);
      if (!m) throw new Error(`${name}: "${item}" is not *, a number, a range or a step`);
      const from = m[1] === '*' ? lo : Number(m[2]);
      const to = m[1] === '*' ? hi : m[3] !== undefined ? Number(m[3]) : m[4] ? hi : from;
      const step = m[4] ? Number(m[4]) : 1;
      if (from < lo || to > hi || from > to || step < 1)
        throw new Error(`${name}: "${item}" is outside ${lo}-${hi}`);
      for (let v = from; v <= to; v += step) out.add(v);
    }
    return { out, all: f === '*' };
  });
  const [s, mi, h, dom, mon, dow] = sets as [
    (typeof sets)[0],
    (typeof sets)[0],
    (typeof sets)[0],
    (typeof sets)[0],
    (typeof sets)[0],
    (typeof sets)[0],
  ];
  if (dow.out.has(7)) dow.out.add(0);
  const sorted = (x: Set<number>) => [...x].sort((a, b) => a - b);
  return {
    seconds: sorted(s.out),
    minutes: sorted(mi.out),
    hours: sorted(h.out),
    days: dom.out,
    months: mon.out,
    weekdays: dow.out,
    dayOr: !dom.all && !dow.all,
  };
}

/** The first instant strictly after `afterMs` the cron expression names, in local time of `tz`. */
export function nextCronTime(afterMs: number, cron: Cron, tz: string): number | undefined {
  const wallNow = wallClock(afterMs, tz);
  const today = Math.floor(wallNow / DAY) * DAY;
  // five years of days: enough for any expression that can match (e.g. Feb 29)
  for (let d = -1; d <= 366 * 5; d++) {
    const date = today + d * DAY;
    const day = new Date(date);
    const dom = cron.days.has(day.getUTCDate());
    const dow = cron.weekdays.has(day.getUTCDay());
    if (!cron.months.has(day.getUTCMonth() + 1)) continue;
    if (cron.dayOr ? !dom && !dow : !dom || !dow) continue;
    for (const h of cron.hours)
      for (const m of cron.minutes)
        for (const s of cron.seconds) {
          const wall = date + (h * 3600 + m * 60 + s) * 1000;
          // wall times well before now cannot be after it, whatever DST does (saves work)
          if (wall < wallNow - 3 * 3_600_000) continue;
          const t = localInstant(wall, tz);
          if (t > afterMs) return t;
        }
  }
  return undefined;
}

// ---- date traits ---------------------------------------------------------------------

/** A calendar date from a trait: `YYYY-MM-DD` or an ISO date-time (its date part); as UTC midnight ms. */
export function traitDate(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:$|T)/.exec(value);
  if (!m) return undefined;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  const back = new Date(ms);
  return back.getUTCDate() === Number(m[3]) && back.getUTCMonth() === Number(m[2]) - 1 ? ms : undefined;
}

/**
 * A local date-time without a zone (`2026-12-24T09:00`, seconds optional) as wall-clock ms
 * (as if UTC: localInstant places it in a zone); undefined if not one.
 */
export function localDateTime(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2})?)$/.exec(value);
  if (!m) return undefined;
  const day = traitDate(m[1]);
  const seconds = parseTimeOfDay(m[2]);
  return day === undefined || seconds === undefined ? undefined : day + seconds * 1000;
}

/**
 * A signed day offset `P14D`, `-P14D`, `P2W`, `-P1W` (whole days and weeks only: a date
 * trait entry is a calendar date); days, undefined if not one.
 */
export function parseDayOffset(s: unknown): number | undefined {
  if (typeof s !== 'string') return undefined;
  const m = /^(-)?P(?:(\d{1,4})W)?(?:(\d{1,5})D)?$/.exec(s);
  if (!m || (m[2] === undefined && m[3] === undefined)) return undefined;
  const days = Number(m[2] ?? 0) * 7 + Number(m[3] ?? 0);
  return days > 3650 ? undefined : m[1] ? -days : days;
}

/** When a person enters by a date trait: the trait's date plus `offsetDays`, at `at` local time in `tz`. */
export function dateTraitInstant(dateMs: number, offsetDays: number, at: string, tz: string): number {
  const seconds = parseTimeOfDay(at);
  if (seconds === undefined) throw new Error(`not a time of day: ${at}`);
  return localInstant(dateMs + offsetDays * DAY + seconds * 1000, tz);
}
