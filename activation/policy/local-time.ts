// Calendar arithmetic in a profile's time zone (IANA, e.g. Europe/Berlin): the bounds of
// the local day (frequency caps count per local day) and quiet hours. Pure; tested directly.
import { isTimezone, zoneFormatter } from '../../schemas/journey-time.ts';

/** The zone to use for a profile: its `timezone` trait when it is a valid IANA name, else the fallback. */
export function profileTimezone(traits: Record<string, unknown>, fallback: string): string {
  return isTimezone(traits.timezone) ? traits.timezone : fallback;
}

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

export function localParts(ms: number, tz: string): LocalParts {
  const p: Record<string, number> = {};
  for (const part of zoneFormatter(tz).formatToParts(new Date(ms)))
    if (part.type !== 'literal') p[part.type] = Number(part.value);
  return {
    year: p.year!,
    month: p.month!,
    day: p.day!,
    hour: p.hour!,
    minute: p.minute!,
    second: p.second!,
  };
}

/** Offset of the zone from UTC at an instant, ms (local = utc + offset). */
function offsetAt(ms: number, tz: string): number {
  const l = localParts(ms, tz);
  const asUtc = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/** The instant a local wall-clock time occurs (the earlier one across a DST fold). */
function instantOf(year: number, month: number, day: number, minutes: number, tz: string): number {
  const guess = Date.UTC(year, month - 1, day, 0, minutes);
  const first = guess - offsetAt(guess, tz);
  return guess - offsetAt(first, tz);
}

/** [start, end) of the local calendar day containing `ms`. */
export function localDayBounds(ms: number, tz: string): [number, number] {
  const l = localParts(ms, tz);
  const start = instantOf(l.year, l.month, l.day, 0, tz);
  const next = new Date(Date.UTC(l.year, l.month - 1, l.day + 1));
  const end = instantOf(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), 0, tz);
  return [start, end];
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/**
 * When a send at `ms` may go out under quiet hours `start`–`end` (local, `end` exclusive;
 * a window may wrap midnight): `ms` itself outside the window, else the window's end.
 */
export function quietHoursRelease(ms: number, tz: string, quiet: { start: string; end: string }): number {
  const start = minutesOf(quiet.start);
  const end = minutesOf(quiet.end);
  if (start === end) return ms;
  const l = localParts(ms, tz);
  const now = l.hour * 60 + l.minute;
  const inside = start < end ? now >= start && now < end : now >= start || now < end;
  if (!inside) return ms;
  // the end on the local day it falls on
  const dayOffset = start < end || now < end ? 0 : 1;
  const d = new Date(Date.UTC(l.year, l.month - 1, l.day + dayOffset));
  return instantOf(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), end, tz);
}
