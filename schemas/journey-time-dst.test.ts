// Daylight saving for waits until a local time (and date-trait entries), beyond the plain
// gap and fold days of journey-time.test.ts: arriving inside the repeated hour or just
// before the gap, the southern hemisphere, a 30-minute change (Lord Howe) and changes at
// midnight (Santiago). The rule everywhere: a time that does not exist that day happens
// as far past the gap (02:30 → 03:30), one that exists twice happens at the first only,
// so a daily wait fires once on both days.
import { describe, expect, it } from 'vitest';
import { dateTraitInstant, nextLocalTime, traitDate } from './journey-time.ts';

const iso = (ms: number) => new Date(ms).toISOString();

describe('waits until a local time across daylight saving', () => {
  it.each([
    // Europe/Berlin, 2026-10-25: 03:00 CEST turns back to 02:00 CET (02:00–03:00 twice)
    {
      description: 'fold: arriving in the first pass of the repeated hour, its first 02:30',
      after: '2026-10-25T00:10:00Z', // 02:10 CEST
      tz: 'Europe/Berlin',
      time: '02:30',
      want: '2026-10-25T00:30:00.000Z', // 02:30 CEST
    },
    {
      description: 'fold: arriving in the second pass, after the first 02:30: the next day, not the second',
      after: '2026-10-25T01:10:00Z', // 02:10 CET, the first 02:30 (CEST) already past
      tz: 'Europe/Berlin',
      time: '02:30',
      want: '2026-10-26T01:30:00.000Z', // 02:30 CET on Monday
    },
    {
      description: 'fold: a time after the repeated hour waits it out (an hour longer in real time)',
      after: '2026-10-25T00:40:00Z', // 02:40 CEST
      tz: 'Europe/Berlin',
      time: '03:00',
      want: '2026-10-25T02:00:00.000Z', // 03:00 CET, 2 h 20 min later
    },
    // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (02:00–03:00 does not exist)
    {
      description: 'gap: a minute before it, 02:00 happens at 03:00 CEST, a minute later',
      after: '2026-03-29T00:59:00Z', // 01:59 CET
      tz: 'Europe/Berlin',
      time: '02:00',
      want: '2026-03-29T01:00:00.000Z',
    },
    {
      description: 'gap: arriving after it but before the shifted 02:30 (03:30 CEST): that day, once',
      after: '2026-03-29T01:10:00Z', // 03:10 CEST
      tz: 'Europe/Berlin',
      time: '02:30',
      want: '2026-03-29T01:30:00.000Z',
    },
    {
      description: 'gap: arriving after the shifted 02:30: the next day’s 02:30 CEST',
      after: '2026-03-29T01:40:00Z', // 03:40 CEST
      tz: 'Europe/Berlin',
      time: '02:30',
      want: '2026-03-30T00:30:00.000Z',
    },
    {
      description: 'gap: a weekly Sunday 02:30 on the Sunday of the change',
      after: '2026-03-23T12:00:00Z',
      tz: 'Europe/Berlin',
      time: '02:30',
      weekdays: ['sun'],
      want: '2026-03-29T01:30:00.000Z',
    },
    // Australia/Sydney: forward on 2026-10-04 at 02:00 AEST, back on 2026-04-05 at 03:00 AEDT
    {
      description: 'southern hemisphere gap (Sydney, October): 02:30 → 03:30 AEDT',
      after: '2026-10-03T12:00:00Z',
      tz: 'Australia/Sydney',
      time: '02:30',
      want: '2026-10-03T16:30:00.000Z',
    },
    {
      description: 'southern hemisphere fold (Sydney, April): the first 02:30 (AEDT)',
      after: '2026-04-04T12:00:00Z',
      tz: 'Australia/Sydney',
      time: '02:30',
      want: '2026-04-04T15:30:00.000Z',
    },
    // Australia/Lord_Howe changes by 30 minutes: 02:00 → 02:30 in October, 02:00 → 01:30 in April
    {
      description: 'a 30-minute gap (Lord Howe): 02:15 happens at 02:45 (+11:00)',
      after: '2026-10-03T12:00:00Z',
      tz: 'Australia/Lord_Howe',
      time: '02:15',
      want: '2026-10-03T15:45:00.000Z',
    },
    {
      description: 'a 30-minute fold (Lord Howe): 01:45 at its first (+11:00)',
      after: '2026-04-04T10:00:00Z',
      tz: 'Australia/Lord_Howe',
      time: '01:45',
      want: '2026-04-04T14:45:00.000Z',
    },
    // America/Santiago changes at midnight: 2026-09-06 00:00 → 01:00, 2026-04-05 00:00 → 2026-04-04 23:00
    {
      description: 'a gap at midnight (Santiago): 00:30 happens at 01:30 (−03:00)',
      after: '2026-09-05T12:00:00Z',
      tz: 'America/Santiago',
      time: '00:30',
      want: '2026-09-06T04:30:00.000Z',
    },
    {
      description: 'a gap at midnight: Sunday 00:00 happens at 01:00 that Sunday',
      after: '2026-09-05T12:00:00Z',
      tz: 'America/Santiago',
      time: '00:00',
      weekdays: ['sun'],
      want: '2026-09-06T04:00:00.000Z',
    },
    {
      description: 'a fold before midnight (Santiago): Saturday 23:30 at its first (−03:00)',
      after: '2026-04-04T12:00:00Z',
      tz: 'America/Santiago',
      time: '23:30',
      want: '2026-04-05T02:30:00.000Z',
    },
  ])('$description', ({ after, tz, time, weekdays, want }) => {
    expect(iso(nextLocalTime(Date.parse(after), tz, { time, ...(weekdays ? { weekdays } : {}) }))).toBe(want);
  });

  it('a daily wait fires once on each day around both changes (each the next after the last)', () => {
    const fired: string[] = [];
    let t = Date.parse('2026-10-23T12:00:00Z');
    for (let i = 0; i < 4; i++) {
      t = nextLocalTime(t, 'Europe/Berlin', { time: '02:30' });
      fired.push(iso(t));
    }
    // Saturday CEST, Sunday's first 02:30 (CEST) only, then CET
    expect(fired).toEqual([
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z',
      '2026-10-26T01:30:00.000Z',
      '2026-10-27T01:30:00.000Z',
    ]);
    fired.length = 0;
    t = Date.parse('2026-03-27T12:00:00Z');
    for (let i = 0; i < 3; i++) {
      t = nextLocalTime(t, 'Europe/Berlin', { time: '02:30' });
      fired.push(iso(t));
    }
    // Saturday CET, Sunday at 03:30 CEST (past the gap), Monday CEST
    expect(fired).toEqual([
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:30:00.000Z',
      '2026-03-30T00:30:00.000Z',
    ]);
  });
});

describe('date-trait entries on a day of change', () => {
  it('at a time in the gap: as far past it; at a time of the fold: the first', () => {
    expect(iso(dateTraitInstant(traitDate('2026-03-29')!, 0, '02:30', 'Europe/Berlin'))).toBe(
      '2026-03-29T01:30:00.000Z',
    );
    expect(iso(dateTraitInstant(traitDate('2026-10-25')!, 0, '02:30', 'Europe/Berlin'))).toBe(
      '2026-10-25T00:30:00.000Z',
    );
    // an offset landing on the change: 2026-04-12 minus 14 days is the gap's Sunday
    expect(iso(dateTraitInstant(traitDate('2026-04-12')!, -14, '02:15', 'Europe/Berlin'))).toBe(
      '2026-03-29T01:15:00.000Z',
    );
  });
});
