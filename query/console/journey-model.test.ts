// The journey view's model in Node: the flow layout (depth from the first node, every edge
// pointing down, labels), and the editor's form ⇄ journey JSON: a stored journey opens in
// the form and saves back as it was, and what the form makes is accepted by the server's check.
import { describe, expect, it } from 'vitest';
import { checkJourneyInput } from '../../schemas/journey.ts';
import {
  BOX,
  blankForm,
  errorTarget,
  layout,
  newFormNode,
  summary,
  toForm,
  toJourney,
} from './journey-model.js';

const onboarding = {
  name: 'Onboarding',
  entry: { event: 'Signed Up', where: { '==': [{ var: 'plan' }, 'pro'] } },
  goal: { event: 'Order Completed' },
  reEntry: { everyDays: 30 },
  exitOnSegmentExit: 'seg_a',
  nodes: [
    {
      id: 'welcome',
      type: 'send',
      channel: 'email',
      email: { subject: 'Hi', text: 'Welcome' },
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
    {
      id: 'tip',
      type: 'wait',
      for: { until: { event: 'Activated', where: { '>': [{ var: 'n' }, 2] } }, timeout: 'P3D' },
      branches: { met: 'done', timeout: 'nudge' },
    },
    {
      id: 'nudge',
      type: 'split',
      variants: [
        { weight: 1, next: 'push' },
        { weight: 3, next: 'sms' },
      ],
      holdout: 10,
    },
    { id: 'push', type: 'send', channel: 'push', push: { title: 'T', body: 'B' } },
    { id: 'sms', type: 'update', traits: { nurture: 'sms', score: 3 } },
    { id: 'done', type: 'exit' },
  ],
};

describe('the flow layout', () => {
  it('puts each node at its longest distance from the first, so every edge points down', () => {
    const g = layout(onboarding.nodes);
    const depth = Object.fromEntries(g.boxes.map((b) => [b.id, b.depth]));
    // done is reached from check (2) and from tip (3): it goes below both
    expect(depth).toEqual({ welcome: 0, wait: 1, check: 2, tip: 3, nudge: 4, done: 4, push: 5, sms: 5 });
    const box = Object.fromEntries(g.boxes.map((b) => [b.id, b]));
    for (const e of g.edges) expect(box[e.to]!.y, `${e.from} → ${e.to}`).toBeGreaterThan(box[e.from]!.y);
    expect(g.edges.map((e) => `${e.from}-${e.label}-${e.to}`).sort()).toEqual(
      [
        'welcome-next-wait',
        'wait-next-check',
        'check-yes-done',
        'check-no-tip',
        'tip-met-done',
        'tip-timeout-nudge',
        'nudge-variant 1-push',
        'nudge-variant 2-sms',
      ].sort(),
    );
    // no two boxes overlap, and all lie inside the drawing
    for (const a of g.boxes) {
      expect(a.x).toBeGreaterThanOrEqual(0);
      expect(a.x + BOX.w).toBeLessThanOrEqual(g.width);
      expect(a.y + BOX.h).toBeLessThanOrEqual(g.height);
      for (const b of g.boxes)
        if (a !== b) expect(Math.abs(a.x - b.x) >= BOX.w || Math.abs(a.y - b.y) >= BOX.h).toBe(true);
    }
  });

  it('draws a graph it cannot walk (a cycle, an unknown target, an unreachable node) without hanging', () => {
    const g = layout([
      { id: 'a', type: 'send', channel: 'sms', next: 'b' },
      { id: 'b', type: 'update', traits: {}, next: 'a' },
      { id: 'c', type: 'exit' },
      { id: 'd', type: 'branch', yes: 'nowhere' },
    ]);
    expect(g.boxes.map((b) => b.id)).toEqual(['a', 'b', 'c', 'd']);
    expect(g.edges.every((e) => e.to !== 'nowhere')).toBe(true);
    expect(layout([]).boxes).toEqual([]);
  });

  it('says what each node does in one line', () => {
    expect(onboarding.nodes.map((n) => summary(n))).toEqual([
      'email: Hi',
      'for P2D',
      'on a profile rule',
      'until Activated ≤ P3D',
      '1 / 3 · holdout 10%',
      'push: T',
      'set nurture, score',
      'leave the journey',
    ]);
  });
});

describe('the editor form', () => {
  it('opens a stored journey and saves it back unchanged; the server accepts it', () => {
    const form = toForm(onboarding);
    expect(form.nodes[2].tree.kind).toBe('group'); // the branch rule is in the visual builder
    expect(form.entry.filters).toHaveLength(1); // the entry filter in the filter builder
    const { body, problems } = toJourney(form);
    expect(problems).toEqual([]);
    expect(body).toEqual(onboarding);
    expect(() => checkJourneyInput(structuredClone(body))).not.toThrow();
  });

  it('keeps what the form cannot show as JSON: a hand-written rule and filter, another entry', () => {
    const j = {
      name: 'Hand-written',
      entry: { segment: 'seg_a', on: 'exit' },
      nodes: [
        { id: 'b', type: 'branch', rule: { if: [{ var: 'traits.x' }, true, false] }, yes: 'w' },
        {
          id: 'w',
          type: 'wait',
          for: { until: { event: 'E', where: { '+': [1, 2] } }, timeout: 'PT1H' },
          branches: { met: 'x' },
        },
        { id: 'x', type: 'exit' },
      ],
    };
    const form = toForm(j);
    expect(form.nodes[0].ruleJson).toContain('"if"');
    expect(form.nodes[1].whereJson).toContain('"+"');
    expect(toJourney(form).body).toEqual({ ...j, reEntry: 'never' });
    const other = toForm({ ...j, entry: { anniversary: 'signup' } });
    expect(other.entry.kind).toBe('json');
    expect(toJourney(other).body.entry).toEqual({ anniversary: 'signup' });
  });

  it('opens and saves the entries by time and a wait until a local time; the server accepts them', () => {
    const nodes = [
      {
        id: 'tue',
        type: 'wait',
        for: { untilLocal: { time: '10:00', weekdays: ['tue', 'thu'] } },
        next: 'x',
      },
      { id: 'x', type: 'exit' },
    ];
    for (const entry of [
      { dateTrait: 'renewal_date', at: '09:00', offset: '-P14D' },
      { dateTrait: 'birthday', at: '08:30' },
      { broadcast: { segment: 'seg_a', at: '2026-12-24T09:00:00Z' } },
      { schedule: { cron: '0 9 * * 1', segment: 'seg_a', tz: 'Europe/Berlin' } },
      { schedule: { cron: '*/5 * * * *', segment: 'seg_a' } },
    ]) {
      const j = { name: 'By time', entry, nodes, reEntry: 'after_exit' };
      const form = toForm(j);
      expect(form.entry.kind).toBe(Object.keys(entry)[0]);
      expect(form.nodes[0].mode).toBe('local');
      const { body, problems } = toJourney(form);
      expect(problems).toEqual([]);
      expect(body).toEqual(j);
      expect(() => checkJourneyInput(structuredClone(body))).not.toThrow();
    }
  });

  it('builds a journey from nothing that the server accepts', () => {
    const form = blankForm();
    form.name = 'Built';
    Object.assign(form.entry, { kind: 'event', event: 'Signed Up' });
    form.entry.filters = [{ field: 'plan', op: 'in_list', type: 'text', value: 'pro, team' }];
    const send = newFormNode('send', []);
    send.settings.email = { subject: 'Hi {{ traits.name }}', text: 'Welcome', html: '' };
    const wait = newFormNode('wait', ['send1']);
    const branch = newFormNode('branch', ['send1', 'wait1']);
    branch.tree.children = [{ kind: 'trait', field: 'plan', op: '==', type: 'text', value: 'pro' }];
    const split = newFormNode('split', []);
    const exit = newFormNode('exit', []);
    Object.assign(send, { next: 'wait1' });
    Object.assign(wait, {
      mode: 'event',
      event: 'Activated',
      timeout: 'P1D',
      met: 'exit1',
      timeoutNext: 'branch1',
    });
    Object.assign(branch, { yes: 'split1', no: 'exit1' });
    split.variants[0].next = 'exit1';
    form.nodes = [send, wait, branch, split, exit];
    const { body, problems } = toJourney(form);
    expect(problems).toEqual([]);
    expect(body.entry).toEqual({ event: 'Signed Up', where: { in: [{ var: 'plan' }, ['pro', 'team']] } });
    expect((body.nodes as Array<Record<string, unknown>>)[0]).toEqual({
      id: 'send1',
      type: 'send',
      channel: 'email',
      email: { subject: 'Hi {{ traits.name }}', text: 'Welcome' },
      next: 'wait1',
    });
    expect(() => checkJourneyInput(structuredClone(body))).not.toThrow();
  });

  it('names the field of what is missing, as the API does', () => {
    const form = blankForm();
    const branch = newFormNode('branch', []);
    const split = newFormNode('split', []);
    split.variants[1].weight = '0';
    split.holdout = '120';
    const update = newFormNode('update', []);
    update.traits = '[1]';
    form.nodes = [branch, split, update];
    expect(toJourney(form).problems).toEqual([
      'name: give the journey a name',
      'entry.segment: choose a segment',
      'nodes[0].rule: add at least one condition',
      'nodes[1].variants[1].weight: a number above 0',
      'nodes[1].holdout: a percent from 0 to 100',
      'nodes[2].traits: a JSON object of trait names and values',
    ]);
    expect(toJourney(blankForm()).problems).toContain('nodes: add at least one step');
  });

  it('finds the part of the form an API error names', () => {
    expect(errorTarget('nodes[2].next: no node "x"')).toEqual({ node: 2 });
    expect(errorTarget('entry.where: unknown operator "regex"')).toEqual({ part: 'entry' });
    expect(errorTarget('goal.segment: no segment s')).toEqual({ part: 'goal' });
    expect(errorTarget('exitOnSegmentExit: no segment s')).toEqual({ part: 'rules' });
    expect(errorTarget('journey is archived')).toBeUndefined();
  });
});
