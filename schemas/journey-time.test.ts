import { describe, expect, it } from 'vitest';
import {
  dateTraitInstant,
  isTimezone,
  nextCronTime,
  nextLocalTime,
  parseCron,
  parseDayOffset,
  parseTimeOfDay,
  traitDate,
} from './journey-time.ts';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

describe('nextLocalTime', () => {
  it.each([
    {
      description: 'Tuesday 10:00 in Berlin before DST starts (CET, +01:00)',
      after: '2026-03-20T12:00:00Z', // a Friday
      tz: 'Europe/Berlin',
      spec: { time: '10:00', weekdays: ['tue'] },
      want: '2026-03-24T09:00:00.000Z',
    },
    {
      description: 'Tuesday 10:00 in Berlin across the change to CEST (+02:00)',
      after: '2026-03-27T12:00:00Z',
      tz: 'Europe/Berlin',
      spec: { time: '10:00', weekdays: ['tue'] },
      want: '2026-03-31T08:00:00.000Z',
    },
    {
      description: '02:30 does not exist in Berlin on 2026-03-29: 03:30 CEST, as far past the gap',
      after: '2026-03-28T12:00:00Z',
      tz: 'Europe/Berlin',
      spec: { time: '02:30' },
      want: '2026-03-29T01:30:00.000Z',
    },
    {
      description: 'the day after the gap, 02:30 CEST again',
      after: '2026-03-29T01:30:00Z',
      tz: 'Europe/Berlin',
      spec: { time: '02:30' },
      want: '2026-03-30T00:30:00.000Z',
    },
    {
      description: '02:30 exists twice in Berlin on 2026-10-25: the first (CEST)',
      after: '2026-10-24T12:00:00Z',
      tz: 'Europe/Berlin',
      spec: { time: '02:30' },
      want: '2026-10-25T00:30:00.000Z',
    },
    {
      description: 'after the first 02:30 of the fold, not the second: the next day (CET)',
      after: '2026-10-25T00:30:00Z',
      tz: 'Europe/Berlin',
      spec: { time: '02:30' },
      want: '2026-10-26T01:30:00.000Z',
    },
    {
      description: '02:30 does not exist in New York on 2026-03-08: 03:30 EDT',
      after: '2026-03-07T12:00:00Z',
      tz: 'America/New_York',
      spec: { time: '02:30' },
      want: '2026-03-08T07:30:00.000Z',
    },
    {
      description: '01:30 exists twice in New York on 2026-11-01: the first (EDT)',
      after: '2026-10-31T12:00:00Z',
      tz: 'America/New_York',
      spec: { time: '01:30' },
      want: '2026-11-01T05:30:00.000Z',
    },
    {
      description: 'then the next day in EST, not the fold’s second 01:30',
      after: '2026-11-01T05:30:00Z',
      tz: 'America/New_York',
      spec: { time: '01:30' },
      want: '2026-11-02T06:30:00.000Z',
    },
    {
      description: '10:00 on a DST day that is not in a gap or fold: New York, 2026-11-01',
      after: '2026-11-01T05:00:00Z',
      tz: 'America/New_York',
      spec: { time: '10:00', weekdays: ['sun'] },
      want: '2026-11-01T15:00:00.000Z',
    },
    {
      description: 'a quarter-hour zone (Kathmandu, +05:45)',
      after: '2026-06-01T00:00:00Z',
      tz: 'Asia/Kathmandu',
      spec: { time: '10:00' },
      want: '2026-06-01T04:15:00.000Z',
    },
    {
      description: 'strictly after: exactly at the time waits for the next day',
      after: '2026-06-01T10:00:00Z',
      tz: 'UTC',
      spec: { time: '10:00' },
      want: '2026-06-02T10:00:00.000Z',
    },
    {
      description: 'seconds, and the weekday of the local date (Monday in Auckland is Sunday in UTC)',
      after: '2026-06-07T20:00:00Z', // Sunday in UTC, Monday 08:00 in Auckland
      tz: 'Pacific/Auckland',
      spec: { time: '09:00:30', weekdays: ['mon'] },
      want: '2026-06-07T21:00:30.000Z',
    },
    {
      description: 'several weekdays: the nearest',
      after: '2026-06-03T12:00:00Z', // a Wednesday
      tz: 'UTC',
      spec: { time: '08:00', weekdays: ['mon', 'fri'] },
      want: '2026-06-05T08:00:00.000Z',
    },
  ])('$description', ({ after, tz, spec, want }) => {
    expect(iso(nextLocalTime(at(after), tz, spec))).toBe(want);
  });
});

describe('cron', () => {
  it.each([
    {
      description: 'weekdays at 09:00 in Berlin, over a weekend and the change to CEST',
      cron: '0 9 * * 1-5',
      after: '2026-03-27T09:00:00Z', // Friday 10:00 CET
      tz: 'Europe/Berlin',
      want: '2026-03-30T07:00:00.000Z',
    },
    {
      description: 'a daily 02:30 on the day it does not exist: 03:30 CEST, once',
      cron: '30 2 * * *',
      after: '2026-03-28T12:00:00Z',
      tz: 'Europe/Berlin',
      want: '2026-03-29T01:30:00.000Z',
    },
    {
      description: 'a daily 01:30 on the day it exists twice in New York: the first only',
      cron: '30 1 * * *',
      after: '2026-11-01T05:30:00Z',
      tz: 'America/New_York',
      want: '2026-11-02T06:30:00.000Z',
    },
    {
      description: 'every two seconds (six fields)',
      cron: '*/2 * * * * *',
      after: '2026-06-01T12:00:01.500Z',
      tz: 'UTC',
      want: '2026-06-01T12:00:02.000Z',
    },
    {
      description: 'day of month or day of week when both are set (the 13th, or a Friday)',
      cron: '0 0 13 * 5',
      after: '2026-06-06T00:00:00Z', // a Saturday
      tz: 'UTC',
      want: '2026-06-12T00:00:00.000Z',
    },
    {
      description: 'day of week 7 is Sunday; lists and ranges with steps',
      cron: '0 8-18/5 * * 7',
      after: '2026-06-07T09:00:00Z', // a Sunday
      tz: 'UTC',
      want: '2026-06-07T13:00:00.000Z',
    },
    {
      description: 'February 29th: the next leap year',
      cron: '0 0 29 2 *',
      after: '2026-03-01T00:00:00Z',
      tz: 'UTC',
      want: '2028-02-29T00:00:00.000Z',
    },
  ])('$description', ({ cron, after, tz, want }) => {
    expect(iso(nextCronTime(at(after), parseCron(cron), tz))).toBe(want);
  });

  it('an expression that never matches has no next time', () => {
    expect(nextCronTime(at('2026-01-01T00:00:00Z'), parseCron('0 0 31 2 *'), 'UTC')).toBeUndefined();
  });

  it.each([
    ['* * *', 'five fields'],
    ['61 * * * *', 'minute: "61" is outside 0-59'],
    ['* 24 * * *', 'hour: "24" is outside 0-23'],
    ['* * 0 * *', 'day of month: "0" is outside 1-31'],
    ['* * * 13 *', 'month: "13" is outside 1-12'],
    ['* * * * 8', 'day of week: "8" is outside 0-7'],
    ['5-1 * * * *', 'minute: "5-1" is outside'],
    ['*/0 * * * *', 'minute: "*/0" is outside'],
    ['mon * * * *', 'minute: "mon" is not'],
    ['1,,2 * * * *', 'minute: "" is not'],
  ])('refuses %s naming the field', (expr, msg) => {
    expect(() => parseCron(expr)).toThrow(msg);
  });
});

describe('date traits', () => {
  it('renewal date minus 14 days at 09:00 local, across a DST change', () => {
    // 2026-04-10 minus 14 days is 2026-03-27, still CET in Berlin
    expect(iso(dateTraitInstant(traitDate('2026-04-10')!, -14, '09:00', 'Europe/Berlin'))).toBe(
      '2026-03-27T08:00:00.000Z',
    );
    expect(iso(dateTraitInstant(traitDate('2026-04-10T23:00:00Z')!, 0, '09:00', 'Europe/Berlin'))).toBe(
      '2026-04-10T07:00:00.000Z',
    );
  });

  it.each([
    ['2026-04-10', '2026-04-10T00:00:00.000Z'],
    ['2026-04-10T15:00:00+02:00', '2026-04-10T00:00:00.000Z'],
    ['2026-02-30', undefined],
    ['10/04/2026', undefined],
    [20260410, undefined],
  ])('traitDate(%s)', (v, want) => {
    expect(iso(traitDate(v))).toBe(want);
  });

  it.each([
    ['-P14D', -14],
    ['P2W', 14],
    ['P1W2D', 9],
    ['P0D', 0],
    ['PT1H', undefined],
    ['P', undefined],
    ['-P9999D', undefined],
    [14, undefined],
  ])('parseDayOffset(%s)', (v, want) => {
    expect(parseDayOffset(v)).toBe(want);
  });
});

describe('time of day and zones', () => {
  it.each([
    ['10:00', 36_000],
    ['23:59:59', 86_399],
    ['24:00', undefined],
    ['9:00', undefined],
    ['10:60', undefined],
  ])('parseTimeOfDay(%s)', (v, want) => {
    expect(parseTimeOfDay(v)).toBe(want);
  });

  it('isTimezone accepts IANA names only', () => {
    expect(isTimezone('Europe/Berlin')).toBe(true);
    expect(isTimezone('Mars/Olympus')).toBe(false);
    expect(isTimezone('')).toBe(false);
    expect(isTimezone(3)).toBe(false);
  });
});
