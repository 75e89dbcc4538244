import { describe, expect, it } from 'vitest';
import { localDayBounds, profileTimezone, quietHoursRelease } from './local-time.ts';

const at = (iso: string) => Date.parse(iso);

describe('local time', () => {
  it.each([
    { tz: 'UTC', now: '2026-03-10T15:00:00Z', start: '2026-03-10T00:00:00Z', end: '2026-03-11T00:00:00Z' },
    {
      tz: 'America/New_York',
      now: '2026-03-10T02:00:00Z', // still 9 March, 22:00 local
      start: '2026-03-09T04:00:00Z',
      end: '2026-03-10T04:00:00Z',
    },
    {
      tz: 'Asia/Tokyo',
      now: '2026-03-10T16:00:00Z',
      start: '2026-03-10T15:00:00Z',
      end: '2026-03-11T15:00:00Z',
    },
    // the day clocks go forward in Berlin is 23 hours long
    {
      tz: 'Europe/Berlin',
      now: '2026-03-29T12:00:00Z',
      start: '2026-03-28T23:00:00Z',
      end: '2026-03-29T22:00:00Z',
    },
  ])('day bounds in $tz', ({ tz, now, start, end }) => {
    expect(localDayBounds(at(now), tz)).toEqual([at(start), at(end)]);
  });

  it.each([
    { what: 'outside the window', now: '2026-03-10T12:00:00Z', release: '2026-03-10T12:00:00Z' },
    { what: 'late evening', now: '2026-03-10T22:30:00Z', release: '2026-03-11T08:00:00Z' },
    { what: 'early morning', now: '2026-03-11T05:00:00Z', release: '2026-03-11T08:00:00Z' },
    { what: 'at the end', now: '2026-03-11T08:00:00Z', release: '2026-03-11T08:00:00Z' },
  ])('quiet hours 21:00-08:00 UTC, $what', ({ now, release }) => {
    expect(quietHoursRelease(at(now), 'UTC', { start: '21:00', end: '08:00' })).toBe(at(release));
  });

  it('quiet hours in the profile zone', () => {
    // 23:30 in Berlin (CET, +1) is quiet; the release is 08:00 Berlin = 07:00Z
    expect(
      quietHoursRelease(at('2026-01-10T22:30:00Z'), 'Europe/Berlin', { start: '21:00', end: '08:00' }),
    ).toBe(at('2026-01-11T07:00:00Z'));
    // a window within one day
    expect(quietHoursRelease(at('2026-01-10T13:00:00Z'), 'UTC', { start: '12:00', end: '14:00' })).toBe(
      at('2026-01-10T14:00:00Z'),
    );
  });

  it('falls back for a missing or invalid timezone trait', () => {
    expect(profileTimezone({ timezone: 'Europe/Paris' }, 'UTC')).toBe('Europe/Paris');
    expect(profileTimezone({ timezone: 'Mars/Base' }, 'UTC')).toBe('UTC');
    expect(profileTimezone({}, 'Asia/Tokyo')).toBe('Asia/Tokyo');
  });
});
