// The journey view's model: the flow layout (boxes by depth from the first node, edges with
// their labels) and the editor's form ⇄ the journey JSON the API takes (DESIGN.md, README
// "Journeys"). No DOM here; query/console/journey-model.test.ts runs it in Node.
import {
  filterLogic,
  filterProblems,
  filtersFromLogic,
  fromLogic,
  NotBuildable,
  problems,
  toLogic,
} from './rule-model.js';

export const NODE_TYPES = ['send', 'wait', 'branch', 'split', 'update', 'score', 'list', 'webhook', 'exit'];
export const NODE_LABEL = {
  send: 'Send',
  wait: 'Wait',
  branch: 'Branch',
  split: 'Split',
  update: 'Update traits',
  score: 'Score',
  list: 'List',
  webhook: 'Webhook',
  exit: 'Exit',
};

/**
 * Where a node goes next: [label, target id | undefined, arm], in the order the API names
 * them; the arm is the stats' name of that way (`variant:0`, `yes`, `met`, …).
 */
export function successors(n) {
  switch (n.type) {
    case 'wait':
      return typeof n.for === 'object' && n.for !== null && 'until' in n.for
        ? [
            ['met', n.branches?.met, 'met'],
            ['timeout', n.branches?.timeout, 'timeout'],
          ]
        : [['next', n.next]];
    case 'branch':
      return [
        ['yes', n.yes, 'yes'],
        ['no', n.no, 'no'],
      ];
    case 'split':
      return (n.variants ?? []).map((v, i) => [`variant ${i + 1}`, v.next, `variant:${i}`]);
    case 'send':
    case 'update':
    case 'score':
    case 'list':
    case 'webhook':
      return [['next', n.next]];
    default:
      return [];
  }
}

export const BOX = { w: 200, h: 104, gx: 40, gy: 64, pad: 12 };

/**
 * Boxes laid out by depth (the longest path from the first node, so every edge points down)
 * and edges with their labels. Nodes the first cannot reach (the API refuses them) go last.
 */
export function layout(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map();
  const order = [];
  if (nodes.length > 0) {
    depth.set(nodes[0].id, 0);
    // longest path on a graph that runs forward: relax until nothing moves (bounded, in case
    // a stored graph had a cycle)
    for (let round = 0, moved = true; moved && round <= nodes.length; round++) {
      moved = false;
      for (const n of nodes) {
        const d = depth.get(n.id);
        if (d === undefined) continue;
        for (const [, to] of successors(n))
          if (to !== undefined && byId.has(to) && (depth.get(to) ?? -1) < d + 1 && d + 1 <= nodes.length) {
            depth.set(to, d + 1);
            moved = true;
          }
      }
    }
    // within a level, the order in which a walk from the first node meets them
    const seen = new Set([nodes[0].id]);
    const queue = [nodes[0].id];
    while (queue.length > 0) {
      const id = queue.shift();
      order.push(id);
      for (const [, to] of successors(byId.get(id)))
        if (to !== undefined && byId.has(to) && !seen.has(to)) {
          seen.add(to);
          queue.push(to);
        }
    }
  }
  const last = Math.max(-1, ...depth.values()) + 1;
  for (const n of nodes)
    if (!depth.has(n.id)) {
      depth.set(n.id, last);
      order.push(n.id);
    }
  const levels = [];
  for (const id of order) {
    const d = depth.get(id);
    levels[d] = [...(levels[d] ?? []), id];
  }
  const widest = Math.max(1, ...levels.map((l) => l?.length ?? 0));
  const width = BOX.pad * 2 + widest * BOX.w + (widest - 1) * BOX.gx;
  const boxes = new Map();
  levels.forEach((ids, d) => {
    if (!ids) return;
    const row = ids.length * BOX.w + (ids.length - 1) * BOX.gx;
    const x0 = (width - row) / 2;
    ids.forEach((id, i) => {
      boxes.set(id, { id, depth: d, x: x0 + i * (BOX.w + BOX.gx), y: BOX.pad + d * (BOX.h + BOX.gy) });
    });
  });
  const edges = [];
  for (const n of nodes)
    for (const [label, to, arm] of successors(n)) {
      const a = boxes.get(n.id);
      const b = to === undefined ? undefined : boxes.get(to);
      if (!a || !b) continue;
      const sx = a.x + BOX.w / 2;
      const sy = a.y + BOX.h;
      const tx = b.x + BOX.w / 2;
      const ty = b.y;
      const bend = Math.max(BOX.gy / 2, (ty - sy) / 2);
      edges.push({
        from: n.id,
        to,
        label,
        arm,
        path: `M${sx},${sy} C${sx},${sy + bend} ${tx},${ty - bend} ${tx},${ty}`,
        // the curve's midpoint (its control points are symmetric)
        lx: (sx + tx) / 2,
        ly: (sy + ty) / 2,
      });
    }
  return {
    boxes: nodes.map((n) => boxes.get(n.id)),
    edges,
    width,
    height: BOX.pad * 2 + levels.length * BOX.h + Math.max(0, levels.length - 1) * BOX.gy,
  };
}

const clip = (s, max = 30) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

/** One line saying what a node does. */
export function summary(n) {
  switch (n.type) {
    case 'send': {
      const s = n[n.channel] ?? {};
      return clip(
        `${n.channel}${(s.subject ?? s.title ?? s.body ?? s.url) ? `: ${s.subject ?? s.title ?? s.body ?? s.url}` : ''}`,
      );
    }
    case 'wait':
      if (typeof n.for === 'string') return `for ${n.for}`;
      if (n.for && 'until' in n.for)
        return clip(`until ${'event' in n.for.until ? n.for.until.event : `in segment`} ≤ ${n.for.timeout}`);
      if (n.for && 'untilLocal' in n.for)
        return clip(
          `until ${n.for.untilLocal.time}${n.for.untilLocal.weekdays ? ` ${n.for.untilLocal.weekdays.join(',')}` : ''} local`,
        );
      return 'wait';
    case 'branch':
      return 'on a profile rule';
    case 'split':
      return clip(
        `${(n.variants ?? []).map((v) => v.weight).join(' / ')}${n.holdout ? ` · holdout ${n.holdout}%` : ''}`,
      );
    case 'update':
      return clip(`set ${Object.keys(n.traits ?? {}).join(', ')}`);
    case 'score':
      return clip(`${n.trait} ${n.add > 0 ? '+' : ''}${n.add}`);
    case 'list':
      return clip(`${n.action === 'remove' ? 'remove from' : 'add to'} list ${n.list}`);
    case 'webhook': {
      let host = n.webhook?.url ?? '';
      try {
        host = new URL(host).host;
      } catch {}
      return clip(`webhook → ${host}`);
    }
    case 'exit':
      return 'leave the journey';
    default:
      return String(n.type);
  }
}

// ---- conversion by branch (the stats' `branches` and `holdouts`) ----

/** A rate or a lift as a percent: one decimal below 10% ("4.5%"), whole above ("23%"); null → "—". */
export function percent(x, sign = false) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return '—';
  const p = x * 100;
  const r = Math.abs(p) >= 10 ? Math.round(p) : Math.round(p * 10) / 10;
  return `${sign && r > 0 ? '+' : ''}${r === 0 ? 0 : r}%`;
}

/** An arm's name as the flow labels its edge: `variant:0` → `variant 1`. */
export const armLabel = (arm) => (arm.startsWith('variant:') ? `variant ${Number(arm.slice(8)) + 1}` : arm);

/** Converted of those who went that way, and the rate: `3/10 (30%)`. */
export const armText = (f) => `${f.converted}/${f.entered} (${percent(f.rate)})`;

/**
 * A split's lift over its holdout: `+23% vs holdout (92% confidence)` (`92% conf.` when
 * short, for the flow's box); no lift yet → `—`.
 */
export function liftText(h, short = false) {
  // floor: a confidence just under 1 never reads as certain
  const conf =
    typeof h.confidence === 'number'
      ? ` (${Math.floor(h.confidence * 100)}% ${short ? 'conf.' : 'confidence'})`
      : '';
  return `${percent(h.lift, true)} vs holdout${conf}`;
}

/** The arms of a node that has some, in the order the flow draws them (the holdout last). */
export function arms(n) {
  const out = successors(n)
    .map((s) => s[2])
    .filter(Boolean);
  return n.type === 'split' && n.holdout ? [...out, 'holdout'] : out;
}

// ---- the editor's form ----

const blankFilters = () => ({ filters: [], whereJson: null });

/** A `where` as form filters, or as JSON text when the filter builder cannot show it. */
function whereForm(where) {
  try {
    return { filters: filtersFromLogic(where), whereJson: null };
  } catch (err) {
    if (!(err instanceof NotBuildable)) throw err;
    return { filters: [], whereJson: JSON.stringify(where, null, 2) };
  }
}

export function newFormNode(type, taken) {
  let i = 1;
  while (taken.includes(`${type}${i}`)) i++;
  const base = { key: `${type}${i}-${Math.random().toString(36).slice(2, 8)}`, id: `${type}${i}`, type };
  switch (type) {
    case 'send':
      return {
        ...base,
        channel: 'email',
        settings: { webhook: {}, email: {}, sms: {}, push: {} },
        purpose: '',
        next: '',
      };
    case 'wait':
      return {
        ...base,
        mode: 'duration',
        duration: 'P1D',
        event: '',
        ...blankFilters(),
        segment: '',
        timeout: 'P3D',
        time: '10:00',
        weekdays: [],
        next: '',
        met: '',
        timeoutNext: '',
      };
    case 'branch':
      return {
        ...base,
        tree: { kind: 'group', op: 'and', negate: false, children: [] },
        ruleJson: null,
        yes: '',
        no: '',
      };
    case 'split':
      return {
        ...base,
        variants: [
          { weight: '1', next: '' },
          { weight: '1', next: '' },
        ],
        holdout: '',
      };
    case 'update':
      return { ...base, traits: '{\n  \n}', next: '' };
    case 'score':
      return { ...base, trait: '', add: '1', next: '' };
    case 'list':
      return { ...base, list: '', action: 'add', next: '' };
    case 'webhook':
      return { ...base, url: '', secret: '', data: '', next: '' };
    default:
      return { ...base };
  }
}

export function blankForm() {
  return {
    name: '',
    entry: {
      kind: 'segment',
      segment: '',
      on: 'enter',
      event: '',
      ...blankFilters(),
      dateTrait: '',
      offset: '',
      at: '09:00',
      broadcastAt: '',
      cron: '',
      tz: '',
      json: '',
    },
    goal: { kind: 'none', event: '', ...blankFilters(), segment: '', within: '' },
    reEntry: 'never',
    everyDays: '30',
    exitOnSegmentExit: '',
    nodes: [],
  };
}

/** A channel's settings as the editor keeps them: without what only answers carry (secretSet, secretFingerprint). */
function writable(settings) {
  const { secretSet: _set, secretFingerprint: _fp, ...rest } = settings ?? {};
  return rest;
}

function nodeForm(n) {
  const f = { ...newFormNode(n.type, []), id: n.id };
  switch (n.type) {
    case 'send':
      f.channel = n.channel;
      // a webhook's signing secret is write-only: the API answers only that it is set
      f.settings = { ...f.settings, [n.channel]: writable(n[n.channel]) };
      f.purpose = n.purpose ?? '';
      if (n.policy) f.policy = n.policy; // kept as it is (campaign policy; not edited here)
      f.next = n.next ?? '';
      break;
    case 'wait':
      if (typeof n.for === 'string')
        Object.assign(f, { mode: 'duration', duration: n.for, next: n.next ?? '' });
      else if ('until' in n.for) {
        Object.assign(f, {
          timeout: n.for.timeout,
          met: n.branches?.met ?? '',
          timeoutNext: n.branches?.timeout ?? '',
        });
        if ('event' in n.for.until)
          Object.assign(f, { mode: 'event', event: n.for.until.event, ...whereForm(n.for.until.where) });
        else Object.assign(f, { mode: 'segment', segment: n.for.until.segment });
      } else if ('untilLocal' in n.for)
        Object.assign(f, {
          mode: 'local',
          time: n.for.untilLocal.time,
          weekdays: n.for.untilLocal.weekdays ?? [],
          next: n.next ?? '',
        });
      break;
    case 'branch':
      try {
        f.tree = fromLogic(n.rule);
      } catch (err) {
        if (!(err instanceof NotBuildable)) throw err;
        f.ruleJson = JSON.stringify(n.rule, null, 2);
      }
      f.yes = n.yes ?? '';
      f.no = n.no ?? '';
      break;
    case 'split':
      f.variants = n.variants.map((v) => ({ weight: String(v.weight), next: v.next ?? '' }));
      f.holdout = n.holdout === undefined ? '' : String(n.holdout);
      break;
    case 'update':
      f.traits = JSON.stringify(n.traits ?? {}, null, 2);
      f.next = n.next ?? '';
      break;
    case 'score':
      Object.assign(f, { trait: n.trait, add: String(n.add), next: n.next ?? '' });
      break;
    case 'list':
      Object.assign(f, { list: n.list, action: n.action, next: n.next ?? '' });
      break;
    case 'webhook':
      Object.assign(f, {
        url: n.webhook?.url ?? '',
        secret: writable(n.webhook).secret ?? '',
        data: n.data === undefined ? '' : JSON.stringify(n.data, null, 2),
        next: n.next ?? '',
      });
      break;
    default:
      break;
  }
  return f;
}

/** A stored journey as the editor's form. */
export function toForm(j) {
  const f = blankForm();
  f.name = j.name;
  const e = j.entry;
  if ('segment' in e && 'on' in e) Object.assign(f.entry, { kind: 'segment', segment: e.segment, on: e.on });
  else if ('event' in e) Object.assign(f.entry, { kind: 'event', event: e.event, ...whereForm(e.where) });
  else if ('dateTrait' in e)
    Object.assign(f.entry, { kind: 'dateTrait', dateTrait: e.dateTrait, offset: e.offset ?? '', at: e.at });
  else if ('broadcast' in e && e.broadcast && typeof e.broadcast === 'object')
    Object.assign(f.entry, { kind: 'broadcast', segment: e.broadcast.segment, broadcastAt: e.broadcast.at });
  else if ('schedule' in e && e.schedule && typeof e.schedule === 'object')
    Object.assign(f.entry, {
      kind: 'schedule',
      segment: e.schedule.segment,
      cron: e.schedule.cron,
      tz: e.schedule.tz ?? '',
    });
  else Object.assign(f.entry, { kind: 'json', json: JSON.stringify(e, null, 2) });
  if (j.goal && 'event' in j.goal)
    Object.assign(f.goal, { kind: 'event', event: j.goal.event, ...whereForm(j.goal.where) });
  else if (j.goal && 'segment' in j.goal) Object.assign(f.goal, { kind: 'segment', segment: j.goal.segment });
  f.goal.within = j.goal?.within ?? '';
  if (j.reEntry && typeof j.reEntry === 'object') {
    f.reEntry = 'days';
    f.everyDays = String(j.reEntry.everyDays);
  } else f.reEntry = j.reEntry ?? 'never';
  f.exitOnSegmentExit = j.exitOnSegmentExit ?? '';
  f.nodes = j.nodes.map(nodeForm);
  return f;
}

const number = (s) => (String(s).trim() === '' ? Number.NaN : Number(s));

/** Filters (or their JSON) as a `where`, with the problems found on the way. */
function whereOf(f, at, out) {
  if (f.whereJson !== null) {
    try {
      return JSON.parse(f.whereJson);
    } catch (err) {
      out.push(`${at}.where: not JSON (${err.message})`);
      return undefined;
    }
  }
  out.push(...filterProblems(f.filters, `${at}.where`));
  return filterLogic(f.filters);
}

const withNext = (obj, key, v) => (v ? { ...obj, [key]: v } : obj);

/**
 * The journey JSON of a form, and what keeps it from being one (each naming its field as
 * the API would). The server checks the rest (graph, durations, templates, segments).
 */
export function toJourney(f) {
  const out = [];
  const body = { name: f.name.trim() };
  if (!body.name) out.push('name: give the journey a name');
  switch (f.entry.kind) {
    case 'segment':
      if (!f.entry.segment) out.push('entry.segment: choose a segment');
      body.entry = { segment: f.entry.segment, on: f.entry.on };
      break;
    case 'event': {
      if (!f.entry.event.trim()) out.push('entry.event: the event name is required');
      const where = whereOf(f.entry, 'entry', out);
      body.entry =
        where === undefined ? { event: f.entry.event.trim() } : { event: f.entry.event.trim(), where };
      break;
    }
    case 'dateTrait':
      if (!f.entry.dateTrait.trim()) out.push('entry.dateTrait: the trait is required');
      body.entry = { dateTrait: f.entry.dateTrait.trim(), at: f.entry.at.trim() };
      if (f.entry.offset.trim()) body.entry.offset = f.entry.offset.trim();
      break;
    case 'broadcast':
      if (!f.entry.segment) out.push('entry.broadcast.segment: choose a segment');
      body.entry = { broadcast: { segment: f.entry.segment, at: f.entry.broadcastAt.trim() } };
      break;
    case 'schedule':
      if (!f.entry.segment) out.push('entry.schedule.segment: choose a segment');
      body.entry = { schedule: { cron: f.entry.cron.trim(), segment: f.entry.segment } };
      if (f.entry.tz.trim()) body.entry.schedule.tz = f.entry.tz.trim();
      break;
    default:
      try {
        body.entry = JSON.parse(f.entry.json);
      } catch (err) {
        out.push(`entry: not JSON (${err.message})`);
      }
  }
  if (f.goal.kind === 'event') {
    if (!f.goal.event.trim()) out.push('goal.event: the event name is required');
    const where = whereOf(f.goal, 'goal', out);
    body.goal = where === undefined ? { event: f.goal.event.trim() } : { event: f.goal.event.trim(), where };
  } else if (f.goal.kind === 'segment') {
    if (!f.goal.segment) out.push('goal.segment: choose a segment');
    body.goal = { segment: f.goal.segment };
  }
  if (body.goal && f.goal.within.trim()) body.goal.within = f.goal.within.trim();
  body.reEntry = f.reEntry === 'days' ? { everyDays: number(f.everyDays) } : f.reEntry;
  if (f.reEntry === 'days' && !Number.isInteger(body.reEntry.everyDays))
    out.push('reEntry.everyDays: a whole number of days');
  if (f.exitOnSegmentExit) body.exitOnSegmentExit = f.exitOnSegmentExit;
  if (f.nodes.length === 0) out.push('nodes: add at least one step');
  body.nodes = f.nodes.map((n, i) => nodeBody(n, `nodes[${i}]`, out));
  return { body, problems: out };
}

function nodeBody(n, at, out) {
  const id = n.id.trim();
  switch (n.type) {
    case 'send': {
      const settings = {};
      for (const [k, v] of Object.entries(n.settings[n.channel] ?? {}))
        if (typeof v === 'string' && v !== '') settings[k] = v;
      let b = { id, type: 'send', channel: n.channel, [n.channel]: settings };
      if (n.purpose.trim()) b.purpose = n.purpose.trim();
      if (n.policy) b.policy = n.policy;
      b = withNext(b, 'next', n.next);
      return b;
    }
    case 'wait': {
      if (n.mode === 'duration')
        return withNext({ id, type: 'wait', for: n.duration.trim() }, 'next', n.next);
      if (n.mode === 'local') {
        const untilLocal = { time: n.time.trim() };
        if (n.weekdays.length > 0) untilLocal.weekdays = n.weekdays;
        return withNext({ id, type: 'wait', for: { untilLocal } }, 'next', n.next);
      }
      let until;
      if (n.mode === 'event') {
        if (!n.event.trim()) out.push(`${at}.for.until.event: the event name is required`);
        const where = whereOf(n, `${at}.for.until`, out);
        until = where === undefined ? { event: n.event.trim() } : { event: n.event.trim(), where };
      } else {
        if (!n.segment) out.push(`${at}.for.until.segment: choose a segment`);
        until = { segment: n.segment };
      }
      const branches = withNext(withNext({}, 'met', n.met), 'timeout', n.timeoutNext);
      const b = { id, type: 'wait', for: { until, timeout: n.timeout.trim() } };
      return Object.keys(branches).length > 0 ? { ...b, branches } : b;
    }
    case 'branch': {
      let rule;
      if (n.ruleJson !== null) {
        try {
          rule = JSON.parse(n.ruleJson);
        } catch (err) {
          out.push(`${at}.rule: not JSON (${err.message})`);
        }
      } else {
        const issues = problems(n.tree, `${at}.rule`);
        out.push(...issues);
        if (issues.length === 0) rule = toLogic(n.tree);
      }
      return withNext(withNext({ id, type: 'branch', rule: rule ?? null }, 'yes', n.yes), 'no', n.no);
    }
    case 'split': {
      const variants = n.variants.map((v, i) => {
        const weight = number(v.weight);
        if (!(weight > 0)) out.push(`${at}.variants[${i}].weight: a number above 0`);
        return withNext({ weight }, 'next', v.next);
      });
      const b = { id, type: 'split', variants };
      if (String(n.holdout).trim() !== '') {
        b.holdout = number(n.holdout);
        if (!(b.holdout >= 0 && b.holdout <= 100)) out.push(`${at}.holdout: a percent from 0 to 100`);
      }
      return b;
    }
    case 'update': {
      let traits = {};
      try {
        traits = JSON.parse(n.traits);
        if (traits === null || typeof traits !== 'object' || Array.isArray(traits)) {
          out.push(`${at}.traits: a JSON object of trait names and values`);
          traits = {};
        }
      } catch (err) {
        out.push(`${at}.traits: not JSON (${err.message})`);
      }
      return withNext({ id, type: 'update', traits }, 'next', n.next);
    }
    case 'score': {
      const add = number(n.add);
      if (!n.trait.trim()) out.push(`${at}.trait: the trait is required`);
      if (!Number.isFinite(add) || add === 0) out.push(`${at}.add: points to add, a number other than 0`);
      return withNext({ id, type: 'score', trait: n.trait.trim(), add }, 'next', n.next);
    }
    case 'list':
      if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(n.list.trim()))
        out.push(`${at}.list: a list id (letters, digits, _ . : -)`);
      return withNext({ id, type: 'list', list: n.list.trim(), action: n.action }, 'next', n.next);
    case 'webhook': {
      if (!n.url.trim()) out.push(`${at}.webhook.url: the URL is required`);
      const b = { id, type: 'webhook', webhook: { url: n.url.trim() } };
      if (n.secret.trim()) b.webhook.secret = n.secret.trim();
      if (n.data.trim()) {
        let data;
        try {
          data = JSON.parse(n.data);
        } catch (err) {
          out.push(`${at}.data: not JSON (${err.message})`);
        }
        if (data !== null && typeof data === 'object' && !Array.isArray(data)) b.data = data;
        else if (data !== undefined) out.push(`${at}.data: a JSON object of names and values`);
      }
      return withNext(b, 'next', n.next);
    }
    default:
      return { id, type: n.type };
  }
}

/**
 * Which part of the form an API error names: `nodes[2].next: …` → {node: 2}; `entry.where: …`
 * → {part: 'entry'}; undefined when it names no part.
 */
export function errorTarget(message) {
  const m = /^nodes\[(\d+)\]/.exec(message);
  if (m) return { node: Number(m[1]) };
  const p = /^(name|entry|goal|reEntry|exitOnSegmentExit)\b/.exec(message);
  return p ? { part: p[1] === 'exitOnSegmentExit' || p[1] === 'reEntry' ? 'rules' : p[1] } : undefined;
}

/** Successor fields of a form node, as [field, label] (for the "then" selects). */
export function formSuccessors(n) {
  switch (n.type) {
    case 'wait':
      return n.mode === 'event' || n.mode === 'segment'
        ? [
            ['met', 'When it happens in time, go to'],
            ['timeoutNext', 'On timeout, go to'],
          ]
        : [['next', 'Then go to']];
    case 'branch':
      return [
        ['yes', 'If the rule holds (yes), go to'],
        ['no', 'Otherwise (no), go to'],
      ];
    case 'send':
    case 'update':
    case 'score':
    case 'list':
    case 'webhook':
      return [['next', 'Then go to']];
    default:
      return [];
  }
}
