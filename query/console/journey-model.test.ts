// The journey view's model in Node: the flow layout (depth from the first node, every edge
// pointing down, labels), and the editor's form ⇄ journey JSON: a stored journey opens in
// the form and saves back as it was, and what the form makes is accepted by the server's check.
import { describe, expect, it } from 'vitest';
import { checkJourneyInput } from '../../schemas/journey.ts';
import {
  armLabel,
  arms,
  armText,
  BOX,
  blankForm,
  errorTarget,
  layout,
  liftText,
  NODE_TYPES,
  newFormNode,
  percent,
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

describe('conversion by branch', () => {
  it('names each arm as its edge is labelled, the holdout last', () => {
    const [, , check, tip, nudge] = onboarding.nodes;
    expect(arms(check)).toEqual(['yes', 'no']);
    expect(arms(tip)).toEqual(['met', 'timeout']);
    expect(arms(nudge)).toEqual(['variant:0', 'variant:1', 'holdout']);
    expect(arms({ ...nudge, holdout: undefined })).toEqual(['variant:0', 'variant:1']);
    expect(arms(onboarding.nodes[0])).toEqual([]);
    // each edge knows the stats' name of its way; `next` is no arm
    expect(
      Object.fromEntries(layout(onboarding.nodes).edges.map((e) => [`${e.from}-${e.to}`, e.arm])),
    ).toEqual({
      'welcome-wait': undefined,
      'wait-check': undefined,
      'check-done': 'yes',
      'check-tip': 'no',
      'tip-done': 'met',
      'tip-nudge': 'timeout',
      'nudge-push': 'variant:0',
      'nudge-sms': 'variant:1',
    });
    expect(['variant:0', 'variant:11', 'holdout', 'yes'].map(armLabel)).toEqual([
      'variant 1',
      'variant 12',
      'holdout',
      'yes',
    ]);
  });

  it('shows rates and a lift compactly; no lift yet is a dash', () => {
    expect([0, 0.045, 0.0999, 0.1, 0.2345, 1, 2.5, null].map((x) => percent(x))).toEqual([
      '0%',
      '4.5%',
      '10%',
      '10%',
      '23%',
      '100%',
      '250%',
      '—',
    ]);
    expect(armText({ entered: 10, converted: 3, rate: 0.3 })).toBe('3/10 (30%)');
    expect(armText({ entered: 0, converted: 0, rate: null })).toBe('0/0 (—)');
    expect(liftText({ lift: 0.2345, confidence: 0.9249 })).toBe('+23% vs holdout (92% confidence)');
    expect(liftText({ lift: -0.5, confidence: 0.9999 })).toBe('-50% vs holdout (99% confidence)');
    expect(liftText({ lift: 0, confidence: 0 })).toBe('0% vs holdout (0% confidence)');
    expect(liftText({ lift: null, confidence: 0.4 })).toBe('— vs holdout (40% confidence)');
    expect(liftText({ lift: null, confidence: null })).toBe('— vs holdout');
    expect(liftText({ lift: 3.912, confidence: 0.951 }, true)).toBe('+391% vs holdout (95% conf.)');
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

  it('opens and saves score, list and webhook steps and a goal window; the server accepts them', () => {
    const j = {
      name: 'Actions',
      entry: { event: 'Trial Started' },
      goal: { segment: 'seg_paid', within: 'P7D' },
      reEntry: 'never',
      nodes: [
        { id: 'points', type: 'score', trait: 'engagement', add: 10, next: 'less' },
        { id: 'less', type: 'score', trait: 'engagement', add: -2.5, next: 'vip' },
        { id: 'vip', type: 'list', list: 'vip', action: 'add', next: 'off' },
        { id: 'off', type: 'list', list: 'trial.2026', action: 'remove', next: 'crm' },
        {
          id: 'crm',
          type: 'webhook',
          webhook: { url: 'https://crm.example.com/hooks/lead', secret: 'whsec_c2VjcmV0' },
          data: { stage: 'lead', tags: ['trial'] },
          next: 'ping',
        },
        { id: 'ping', type: 'webhook', webhook: { url: 'https://ops.example.com:8443/p' } },
      ],
    };
    const form = toForm(j);
    expect(form.goal.within).toBe('P7D');
    expect(form.nodes.map((n: { type: string }) => n.type)).toEqual([
      'score',
      'score',
      'list',
      'list',
      'webhook',
      'webhook',
    ]);
    const { body, problems } = toJourney(form);
    expect(problems).toEqual([]);
    expect(body).toEqual(j);
    expect(() => checkJourneyInput(structuredClone(body))).not.toThrow();
    expect(j.nodes.map((n) => summary(n))).toEqual([
      'engagement +10',
      'engagement -2.5',
      'add to list vip',
      'remove from list trial.2026',
      'webhook → crm.example.com',
      'webhook → ops.example.com:8443',
    ]);
    // every step in a chain: the flow draws their edges
    expect(layout(j.nodes).edges.map((e) => `${e.from}-${e.to}`)).toEqual([
      'points-less',
      'less-vip',
      'vip-off',
      'off-crm',
      'crm-ping',
    ]);
    // the adders offer them; new ones the form fills in are accepted
    for (const t of ['score', 'list', 'webhook']) expect(NODE_TYPES).toContain(t);
    const f = blankForm();
    Object.assign(f, { name: 'New' });
    Object.assign(f.entry, { kind: 'event', event: 'E' });
    Object.assign(f.goal, { kind: 'event', event: 'Upgraded', within: ' PT12H ' });
    const score = Object.assign(newFormNode('score', []), { trait: 'engagement', add: '5', next: 'list1' });
    const list = Object.assign(newFormNode('list', []), { list: 'vip', next: 'webhook1' });
    const hook = Object.assign(newFormNode('webhook', []), { url: 'https://h.example.com/x' });
    f.nodes = [score, list, hook];
    const built = toJourney(f);
    expect(built.problems).toEqual([]);
    expect(built.body.goal).toEqual({ event: 'Upgraded', within: 'PT12H' });
    expect(built.body.nodes).toEqual([
      { id: 'score1', type: 'score', trait: 'engagement', add: 5, next: 'list1' },
      { id: 'list1', type: 'list', list: 'vip', action: 'add', next: 'webhook1' },
      { id: 'webhook1', type: 'webhook', webhook: { url: 'https://h.example.com/x' } },
    ]);
    expect(() => checkJourneyInput(structuredClone(built.body))).not.toThrow();
    // no goal: no window
    f.goal.kind = 'none';
    expect(toJourney(f).body.goal).toBeUndefined();
  });

  it('names the field of a score, list or webhook step that is missing or wrong', () => {
    const form = blankForm();
    Object.assign(form, { name: 'x' });
    Object.assign(form.entry, { kind: 'event', event: 'E' });
    const score = Object.assign(newFormNode('score', []), { add: '0' });
    const list = Object.assign(newFormNode('list', []), { list: 'v i p' });
    const hook = Object.assign(newFormNode('webhook', []), { data: '[1]' });
    const hook2 = Object.assign(newFormNode('webhook', ['webhook1']), { url: 'https://x', data: '{' });
    form.nodes = [score, list, hook, hook2];
    expect(toJourney(form).problems).toEqual([
      'nodes[0].trait: the trait is required',
      'nodes[0].add: points to add, a number other than 0',
      'nodes[1].list: a list id (letters, digits, _ . : -)',
      'nodes[2].webhook.url: the URL is required',
      'nodes[2].data: a JSON object of names and values',
      expect.stringMatching(/^nodes\[3\]\.data: not JSON/),
    ]);
  });

  it('finds the part of the form an API error names', () => {
    expect(errorTarget('nodes[2].next: no node "x"')).toEqual({ node: 2 });
    expect(errorTarget('entry.where: unknown operator "regex"')).toEqual({ part: 'entry' });
    expect(errorTarget('goal.segment: no segment s')).toEqual({ part: 'goal' });
    expect(errorTarget('exitOnSegmentExit: no segment s')).toEqual({ part: 'rules' });
    expect(errorTarget('journey is archived')).toBeUndefined();
  });
});
