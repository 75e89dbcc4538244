// Journey definitions: what is accepted, and the error that names the field otherwise.
import { describe, expect, it } from 'vitest';
import {
  checkJourneyInput,
  IDENTIFY_SIGNAL,
  type JourneyDefinition,
  journeyEventNames,
  journeySignalsOf,
  parseIsoDuration,
} from './journey.ts';

const base = {
  name: 'Onboarding',
  entry: { segment: 'seg_1', on: 'enter' },
  nodes: [
    {
      id: 'welcome',
      type: 'send',
      channel: 'webhook',
      webhook: { url: 'https://x.example/h' },
      next: 'wait',
    },
    { id: 'wait', type: 'wait', for: 'P2D', next: 'check' },
    {
      id: 'check',
      type: 'branch',
      rule: { '==': [{ var: 'traits.activated' }, true] },
      yes: 'done',
      no: 'tip',
    },
    { id: 'tip', type: 'send', channel: 'webhook', webhook: { url: 'https://x.example/t' } },
    { id: 'done', type: 'exit' },
  ],
};
const withNodes = (nodes: unknown[]) => ({ ...base, nodes });

describe('journey definitions', () => {
  it('accepts a graph that runs forward and returns it', () => {
    expect(checkJourneyInput(base).nodes).toHaveLength(5);
  });

  it.each([
    [
      'a missing target',
      withNodes([{ id: 'a', type: 'wait', for: 'PT1M', next: 'nope' }]),
      'nodes[0].next: no node "nope"',
    ],
    [
      'a cycle',
      withNodes([
        { id: 'a', type: 'wait', for: 'PT1M', next: 'b' },
        { id: 'b', type: 'wait', for: 'PT1M', next: 'a' },
      ]),
      'nodes: a cycle a → b → a',
    ],
    [
      'an unreachable node',
      withNodes([
        { id: 'a', type: 'exit' },
        { id: 'b', type: 'exit' },
      ]),
      'nodes[1]: "b" cannot be reached',
    ],
    [
      'a twice-used id',
      withNodes([
        { id: 'a', type: 'exit' },
        { id: 'a', type: 'exit' },
      ]),
      'nodes[1].id: "a" is used twice',
    ],
    [
      'a bad duration',
      withNodes([{ id: 'a', type: 'wait', for: '2 days' }]),
      'nodes[0].for: not an ISO 8601 duration',
    ],
    [
      'a bad rule',
      withNodes([{ id: 'a', type: 'branch', rule: { regex: ['x'] } }]),
      'nodes[0].rule: unknown operator "regex"',
    ],
    [
      'event_count in a branch',
      withNodes([{ id: 'a', type: 'branch', rule: { '>': [{ event_count: ['X', '7d'] }, 1] } }]),
      'nodes[0].rule: event_count is not available',
    ],
    [
      'a send without its settings',
      withNodes([{ id: 'a', type: 'send', channel: 'email' }]),
      'nodes[0].email: the email settings are required',
    ],
    [
      'a wait until without a timeout',
      withNodes([{ id: 'a', type: 'wait', for: { until: { event: 'X' } } }]),
      'nodes[0].for',
    ],
    ['an unknown field', { ...base, extra: 1 }, 'extra: unknown field'],
    [
      'an unknown entry kind',
      { ...base, entry: { cron: '* * * * *' } },
      'entry: {segment, on}, {event, where?}, {dateTrait, offset?, at}, {broadcast: {segment, at}} or {schedule: {cron, tz?, segment}}',
    ],
    [
      'a wait until a time of day that is not one',
      withNodes([{ id: 'a', type: 'wait', for: { untilLocal: { time: '25:00' } } }]),
      'nodes[0].for.untilLocal.time: not a time of day',
    ],
    [
      'a wait until an unknown weekday',
      withNodes([{ id: 'a', type: 'wait', for: { untilLocal: { time: '10:00', weekdays: ['funday'] } } }]),
      'nodes[0].for.untilLocal.weekdays',
    ],
    [
      'a wait until a local time with branches',
      withNodes([{ id: 'a', type: 'wait', for: { untilLocal: { time: '10:00' } }, branches: {} }]),
      'nodes[0].branches: a wait until a local time has "next"',
    ],
    [
      'a broadcast time without a zone',
      { ...base, entry: { broadcast: { segment: 's', at: '2026-12-24T09:00:00' } } },
      'entry.broadcast.at: not an ISO 8601 date-time with a zone',
    ],
    ['a broadcast without a time', { ...base, entry: { broadcast: { segment: 's' } } }, 'entry.broadcast.at'],
    [
      'a schedule with a bad cron field',
      { ...base, entry: { schedule: { cron: '61 * * * *', segment: 's' } } },
      'entry.schedule.cron: minute: "61" is outside 0-59',
    ],
    [
      'a schedule in an unknown zone',
      { ...base, entry: { schedule: { cron: '0 9 * * 1', tz: 'Mars/Olympus', segment: 's' } } },
      'entry.schedule.tz: not an IANA time zone',
    ],
    [
      'a schedule without an audience',
      { ...base, entry: { schedule: { cron: '0 9 * * 1' } } },
      'entry.schedule.segment',
    ],
    [
      'a date-trait offset in hours',
      { ...base, entry: { dateTrait: 'renewal_date', offset: 'PT1H', at: '09:00' } },
      'entry.offset: whole days or weeks',
    ],
    [
      'a date-trait time that is not one',
      { ...base, entry: { dateTrait: 'renewal_date', at: '9am' } },
      'entry.at: not a time of day',
    ],
    ['an unknown node type', withNodes([{ id: 'a', type: 'loop' }]), 'nodes[0].type: one of wait, branch'],
    ['a bad entry segment', { ...base, entry: { segment: 'seg_1', on: 'join' } }, 'entry.on'],
    ['no nodes', withNodes([]), 'nodes'],
  ])('refuses %s, naming the field', (_what, body, message) => {
    expect(() => checkJourneyInput(body)).toThrow(message);
  });

  it('accepts waits until a local time and date-trait, broadcast and schedule entries', () => {
    const wait = { id: 'w', type: 'wait', for: { untilLocal: { time: '10:00', weekdays: ['tue'] } } };
    for (const entry of [
      { dateTrait: 'renewal_date', offset: '-P14D', at: '09:00' },
      { broadcast: { segment: 's', at: '2026-12-24T09:00:00+01:00' } },
      { schedule: { cron: '0 9 * * 1-5', tz: 'Europe/Berlin', segment: 's' } },
      { schedule: { cron: '*/10 * * * * *', segment: 's' } },
    ])
      expect(checkJourneyInput({ ...base, entry, nodes: [wait] }).entry).toEqual(entry);
  });

  it('parses ISO 8601 durations without months or years, up to 10 years', () => {
    expect(parseIsoDuration('PT2S')).toBe(2000);
    expect(parseIsoDuration('PT0.5S')).toBe(500);
    expect(parseIsoDuration('P1DT12H')).toBe(36 * 3_600_000);
    expect(parseIsoDuration('P1W')).toBe(7 * 86_400_000);
    for (const bad of ['P', 'PT', 'P1M', 'P1Y', '2d', '', 'PT0S', 'P99999D', 'P1DT'])
      expect(parseIsoDuration(bad)).toBeUndefined();
  });

  it('lists the event names live journeys react to, per workspace', () => {
    const def = (status: JourneyDefinition['status'], version: number, event: string): JourneyDefinition => ({
      ...(checkJourneyInput({
        ...base,
        entry: { event },
        goal: { event: 'Order Completed' },
        nodes: [{ id: 'w', type: 'wait', for: { until: { event: `${event} Again` }, timeout: 'P1D' } }],
      }) as JourneyDefinition),
      id: 'jrn_1',
      workspaceId: 'ws',
      version,
      status,
      createdAt: '',
      updatedAt: '',
    });
    const names = journeyEventNames([def('active', 2, 'B')], [def('active', 1, 'A'), def('active', 2, 'B')]);
    expect([...names].sort()).toEqual(
      ['A', 'A Again', 'B', 'B Again', 'Order Completed'].map((e) => `ws\u0000${e}`).sort(),
    );
    expect(journeyEventNames([def('draft', 1, 'A')], [def('draft', 1, 'A')]).size).toBe(0);
  });

  it('signals an identify that sets a trait a live date-trait journey reads, with only those traits', () => {
    const dated: JourneyDefinition = {
      ...(checkJourneyInput({
        ...base,
        entry: { dateTrait: 'renewal_date', offset: '-P14D', at: '09:00' },
      }) as JourneyDefinition),
      id: 'jrn_2',
      workspaceId: 'ws',
      version: 1,
      status: 'active',
      createdAt: '',
      updatedAt: '',
    };
    const names = journeyEventNames([dated], [dated]);
    expect([...names]).toEqual(['ws\u0000$trait:renewal_date']);
    const e = {
      workspaceId: 'ws',
      properties: {},
      context: {},
      traits: { renewal_date: '2027-01-20', plan: 'pro' },
    };
    expect(journeySignalsOf({ ...e, type: 'identify' }, names)).toEqual([
      { event: IDENTIFY_SIGNAL, properties: { renewal_date: '2027-01-20' } },
    ]);
    expect(journeySignalsOf({ ...e, type: 'identify', traits: { plan: 'pro' } }, names)).toEqual([]);
    expect(journeySignalsOf({ ...e, workspaceId: 'other', type: 'identify' }, names)).toEqual([]);
    // a track event is signalled by its name; its own properties set no trait
    expect(journeySignalsOf({ ...e, type: 'track', event: '$trait:renewal_date' }, names)).toHaveLength(1);
    expect(journeySignalsOf({ ...e, type: 'track', event: 'Renewed' }, names)).toEqual([]);
    // but the traits any call sets in context.traits do (an identify's own traits win)
    expect(
      journeySignalsOf({ ...e, type: 'page', context: { traits: { renewal_date: '2027-02-01' } } }, names),
    ).toEqual([{ event: IDENTIFY_SIGNAL, properties: { renewal_date: '2027-02-01' } }]);
    expect(
      journeySignalsOf(
        { ...e, type: 'identify', context: { traits: { renewal_date: '2027-02-01' } } },
        names,
      ),
    ).toEqual([{ event: IDENTIFY_SIGNAL, properties: { renewal_date: '2027-01-20' } }]);
  });
});

describe('local-time broadcasts', () => {
  const entry = (broadcast: unknown) => ({
    name: 'x',
    entry: { broadcast },
    nodes: [{ id: 'a', type: 'exit' }],
  });
  it('takes a local date-time without a zone, and refuses one with a zone or none at all', () => {
    expect(() =>
      checkJourneyInput(entry({ segment: 's', at: '2026-12-24T09:00', localTime: true })),
    ).not.toThrow();
    expect(() =>
      checkJourneyInput(entry({ segment: 's', at: '2026-12-24T09:00:30', localTime: true })),
    ).not.toThrow();
    for (const at of ['2026-12-24T09:00Z', '2026-12-24', '2026-02-30T09:00', '2026-12-24T25:00'])
      expect(() => checkJourneyInput(entry({ segment: 's', at, localTime: true }))).toThrow(
        'entry.broadcast.at: with localTime, a local date-time without a zone such as "2026-12-24T09:00"',
      );
    // without localTime, a zone is required as before
    expect(() => checkJourneyInput(entry({ segment: 's', at: '2026-12-24T09:00' }))).toThrow(/with a zone/);
  });
});
