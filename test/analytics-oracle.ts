// The analytics answers computed in plain TypeScript from the generated events and identity
// changes, written from DESIGN.md's definitions (not from the SQL), for the tests to compare.
import type { NormalizedEvent } from '../schemas/event.ts';
import type { IdentityChange } from '../schemas/identity-change.ts';
import type { DatasetSend } from './analytics-dataset.ts';

const DAY = 86_400_000;

export interface Ev {
  id: string;
  person: string;
  t: number;
  event: string;
  campaign: string;
  source: string;
  plan: string;
  revenue: number;
}

/** Each event with its person: the latest profile of its userId, else its anonymousId, else a fallback. */
export function resolvePersons(events: NormalizedEvent[], changes: IdentityChange[]): Ev[] {
  const latest = new Map<string, { version: number; profile: string }>();
  for (const c of changes)
    for (const id of c.identifiers) {
      const cur = latest.get(id);
      if (!cur || cur.version < c.version) latest.set(id, { version: c.version, profile: c.profileId });
    }
  const unique = new Map<string, NormalizedEvent>();
  for (const e of events) unique.set(e.messageId, e);
  return [...unique.values()].map((e) => {
    const byUser = e.userId ? latest.get(`user:${e.userId}`) : undefined;
    const byAnon = e.anonymousId ? latest.get(`anon:${e.anonymousId}`) : undefined;
    const person = byUser?.profile ?? byAnon?.profile ?? (e.userId ? `u:${e.userId}` : `a:${e.anonymousId}`);
    const campaign = (e.context.campaign ?? {}) as Record<string, string>;
    return {
      id: e.messageId,
      person,
      t: Date.parse(e.timestamp),
      event: e.event ?? '',
      campaign: campaign.name ?? '',
      source: campaign.source ?? '',
      plan: String(e.properties.plan ?? ''),
      revenue: typeof e.properties.revenue === 'number' ? e.properties.revenue : 0,
    };
  });
}

const byPerson = (evs: Ev[]) => {
  const m = new Map<string, Ev[]>();
  for (const e of [...evs].sort((a, b) => a.t - b.t)) {
    const l = m.get(e.person) ?? [];
    l.push(e);
    m.set(e.person, l);
  }
  return m;
};
const inRange = (e: Ev, from: number, to: number) => e.t >= from && e.t < to;

/** Persons reaching each step: from any step-1 event, later steps in order, each within `window` of it. */
export function funnelOracle(
  evs: Ev[],
  steps: Array<(e: Ev) => boolean>,
  windowMs: number,
  from: number,
  to: number,
): number[] {
  const counts = steps.map(() => 0);
  for (const list of byPerson(evs.filter((e) => inRange(e, from, to))).values()) {
    let best = 0;
    list.forEach((start, i) => {
      if (!steps[0]!(start)) return;
      let level = 1;
      for (let j = i + 1; j < list.length && level < steps.length; j++) {
        const e = list[j]!;
        if (e.t - start.t > windowMs) break;
        if (steps[level]!(e)) level++;
      }
      best = Math.max(best, level);
    });
    for (let k = 0; k < best; k++) counts[k]!++;
  }
  return counts;
}

const weekStart = (t: number) => {
  const day = Math.floor(t / DAY);
  const dow = (day + 3) % 7; // 0 = Monday (1970-01-01 was a Thursday)
  return (day - dow) * DAY;
};

export function retentionOracle(
  evs: Ev[],
  cohortEvent: string,
  returnEvent: string,
  period: 'day' | 'week',
  periods: number,
  from: number,
  to: number,
): Array<{ start: string; size: number; returned: number[] }> {
  const startOf = (t: number) => (period === 'day' ? Math.floor(t / DAY) * DAY : weekStart(t));
  const len = period === 'day' ? DAY : 7 * DAY;
  const cohorts = new Map<number, { size: number; returned: number[] }>();
  for (const list of byPerson(evs.filter((e) => inRange(e, from, to))).values()) {
    const first = list.find((e) => e.event === cohortEvent);
    if (!first) continue;
    const start = startOf(first.t);
    const c = cohorts.get(start) ?? { size: 0, returned: Array.from({ length: periods }, () => 0) };
    c.size++;
    for (let k = 0; k < periods; k++) {
      const lo = start + k * len;
      if (list.some((e) => e.event === returnEvent && e.t >= lo && e.t < lo + len)) c.returned[k]!++;
    }
    cohorts.set(start, c);
  }
  return [...cohorts.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([s, c]) => ({ start: new Date(s).toISOString(), ...c }));
}

export function trendsOracle(
  evs: Ev[],
  event: string,
  from: number,
  to: number,
  key: (e: Ev) => string,
): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const e of evs) {
    if (e.event !== event || !inRange(e, from, to)) continue;
    const k = key(e);
    const m = out.get(k) ?? new Map<string, number>();
    const t = new Date(Math.floor(e.t / DAY) * DAY).toISOString();
    m.set(t, (m.get(t) ?? 0) + 1);
    out.set(k, m);
  }
  return out;
}

export type Model = 'first_touch' | 'last_touch' | 'linear' | 'time_decay' | 'position_based';

/**
 * Sends as touch events: the `sent` decision of each key, of the profile its profile id
 * belongs to now (the latest identity change naming it as profile or merged profile),
 * named `campaign:<id>` / `journey:<id>:<node>` or `channel:<channel>`, in `campaign`.
 */
export function sendTouches(
  sends: DatasetSend[],
  changes: IdentityChange[],
  by: 'campaign' | 'channel',
): Ev[] {
  const owner = new Map<string, { version: number; profile: string }>();
  for (const c of changes)
    for (const pid of [c.profileId, ...c.mergedProfileIds]) {
      const cur = owner.get(pid);
      if (!cur || cur.version < c.version) owner.set(pid, { version: c.version, profile: c.profileId });
    }
  const name = (s: DatasetSend) => {
    if (by === 'channel') return `channel:${s.channel}`;
    const j = /^(jrn_[^@]*)@\d+\.(.*)$/.exec(s.campaign);
    return j ? `journey:${j[1]}:${j[2]}` : `campaign:${s.campaign}`;
  };
  return sends
    .filter((s) => s.outcome === 'sent')
    .map((s) => ({
      id: `send:${s.key}`,
      person: owner.get(s.profile)?.profile ?? s.profile,
      t: s.t,
      event: '',
      campaign: name(s),
      source: '',
      plan: '',
      revenue: 0,
    }));
}

/** `touch` names an event's touch ('' = none); by default its campaign name. */
export function attributionOracle(
  evs: Ev[],
  o: {
    conversion: string;
    lookbackMs: number;
    halfLifeMs: number;
    from: number;
    to: number;
    touch?: (e: Ev) => string;
  },
): { credit: Map<string, { conversions: number; value: number }>; unattributed: number } {
  const credit = new Map<string, { conversions: number; value: number }>();
  let unattributed = 0;
  const touch = o.touch ?? ((e: Ev) => e.campaign);
  const add = (model: Model, tp: string, w: number, value: number) => {
    const k = `${model}|${tp}`;
    const c = credit.get(k) ?? { conversions: 0, value: 0 };
    c.conversions += w;
    c.value += w * value;
    credit.set(k, c);
  };
  for (const list of byPerson(evs.filter((e) => e.t >= o.from - o.lookbackMs && e.t < o.to)).values()) {
    for (const conv of list) {
      if (conv.event !== o.conversion || conv.t < o.from) continue;
      const touches = list
        .filter((e) => touch(e) !== '' && e.t <= conv.t && e.t >= conv.t - o.lookbackMs)
        .map((e) => ({ ...e, campaign: touch(e) }));
      const n = touches.length;
      if (n === 0) {
        unattributed++;
        continue;
      }
      add('first_touch', touches[0]!.campaign, 1, conv.revenue);
      add('last_touch', touches[n - 1]!.campaign, 1, conv.revenue);
      for (const t of touches) add('linear', t.campaign, 1 / n, conv.revenue);
      const decay = touches.map((t) => 0.5 ** ((conv.t - t.t) / o.halfLifeMs));
      const sum = decay.reduce((a, b) => a + b, 0);
      touches.forEach((t, i) => {
        add('time_decay', t.campaign, decay[i]! / sum, conv.revenue);
      });
      touches.forEach((t, i) => {
        const w = n === 1 ? 1 : n === 2 ? 0.5 : i === 0 || i === n - 1 ? 0.4 : 0.2 / (n - 2);
        add('position_based', t.campaign, w, conv.revenue);
      });
    }
  }
  return { credit, unattributed };
}
