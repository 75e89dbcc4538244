// A seeded interaction history for analytics tests and the history benchmark: people who
// browse (some from campaigns), sign up, add to cart and order, with merged persons whose
// events are spread over two anonymous ids and a userId stitched through identity changes.
import type { NormalizedEvent } from '../schemas/event.ts';
import type { IdentityChange } from '../schemas/identity-change.ts';

/** mulberry32: a small, fast, seedable PRNG; uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const CAMPAIGNS = ['spring_sale', 'retarget', 'newsletter', '=SUM(1,2)', 'brand "x"'];
export const SOURCES = ['google', 'facebook', 'email'];
export const NAMES = ['Page Viewed', 'Signed Up', 'Added To Cart', 'Order Completed'] as const;

export interface Dataset {
  events: NormalizedEvent[];
  changes: IdentityChange[];
}

export interface DatasetOptions {
  seed: number;
  workspaceId: string;
  persons: number;
  /** Start of the period the events are spread over (epoch ms) and its length in days. */
  startMs: number;
  days: number;
  /** Mean events per person. */
  eventsPerPerson: number;
}

const MIN = 60_000;

/**
 * Every event of the whole set has a distinct timestamp (a running millisecond offset on
 * top of a minute grid), so "in order" and "first/last" are never ties.
 */
export function generateDataset(o: DatasetOptions): Dataset {
  const r = rng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const events: NormalizedEvent[] = [];
  const changes: IdentityChange[] = [];
  let seq = 0;
  let version = 0;
  const spanMin = o.days * 24 * 60;
  for (let p = 0; p < o.persons; p++) {
    // identities: 0 anonymous only, 1 userId only, 2 merged (two anon ids + userId), 3 anon + user, no link
    const kind = p % 4;
    const anon1 = `anon-${o.seed}-${p}-a`;
    const anon2 = `anon-${o.seed}-${p}-b`;
    const user = `user-${o.seed}-${p}`;
    const profile = `prof-${o.seed}-${p}`;
    const ids = (phase: number): { userId: string | null; anonymousId: string | null } => {
      if (kind === 0) return { userId: null, anonymousId: anon1 };
      if (kind === 1) return { userId: user, anonymousId: null };
      if (kind === 3)
        return phase < 0.5 ? { userId: null, anonymousId: anon1 } : { userId: user, anonymousId: null };
      if (phase < 0.33) return { userId: null, anonymousId: anon1 };
      if (phase < 0.66) return { userId: null, anonymousId: anon2 };
      return { userId: user, anonymousId: phase < 0.8 ? anon2 : null };
    };
    const at = (iso: number) => new Date(iso).toISOString();
    if (kind === 1 || kind === 2) {
      const change = (profileId: string, identifiers: string[], merged: string[]): IdentityChange => ({
        workspaceId: o.workspaceId,
        profileId,
        identifiers,
        mergedProfileIds: merged,
        version: ++version,
        messageId: `idc-${o.seed}-${version}`,
        occurredAt: at(o.startMs),
      });
      if (kind === 1) changes.push(change(profile, [`user:${user}`], []));
      else {
        // each anonymous id got a profile of its own first; the userId's identify merged them
        changes.push(change(profile, [`anon:${anon1}`], []));
        changes.push(change(`${profile}-b`, [`anon:${anon2}`], []));
        changes.push(
          change(
            profile,
            [`anon:${anon1}`, `anon:${anon2}`, `user:${user}`, `email:${user}@x.io`],
            [`${profile}-b`],
          ),
        );
      }
    }
    const n = Math.max(1, Math.round(o.eventsPerPerson * (0.5 + r())));
    const times: number[] = [];
    for (let i = 0; i < n; i++) times.push(Math.floor(r() * spanMin));
    times.sort((a, b) => a - b);
    let stage = 0;
    for (let i = 0; i < n; i++) {
      const t = o.startMs + times[i]! * MIN + (seq % 60_000);
      seq++;
      // a person moves through the funnel with some probability at each event
      const roll = r();
      let name: (typeof NAMES)[number] = 'Page Viewed';
      if (stage === 0 && roll < 0.3) {
        name = 'Signed Up';
        stage = 1;
      } else if (stage >= 1 && roll < 0.25) name = 'Added To Cart';
      else if (stage >= 1 && roll < 0.45) name = 'Order Completed';
      else if (roll < 0.05) name = 'Signed Up';
      const campaign = name === 'Page Viewed' && r() < 0.5 ? pick(CAMPAIGNS) : undefined;
      const plan = r() < 0.5 ? 'pro' : 'free';
      const revenue = name === 'Order Completed' ? Math.round(r() * 20_000) / 100 : undefined;
      events.push({
        workspaceId: o.workspaceId,
        type: 'track',
        messageId: `m-${o.seed}-${seq}`,
        ...ids(i / n),
        event: name,
        properties: {
          plan,
          ...(revenue === undefined ? {} : { revenue }),
          nested: { tier: plan === 'pro' ? 2 : 1 },
        },
        traits: {},
        context: campaign
          ? { campaign: { name: campaign, source: pick(SOURCES), medium: 'cpc' }, page: { path: '/' } }
          : { page: { path: '/' } },
        integrations: {},
        timestamp: at(t),
        receivedAt: at(t + 5),
      });
    }
  }
  return { events, changes };
}

/** A decision of the activation ledger for the attribution tests. */
export interface DatasetSend {
  key: string;
  profile: string;
  t: number;
  campaign: string;
  channel: string;
  outcome: 'sent' | 'suppressed' | 'failed';
  attempt: number;
}

export const SEND_CAMPAIGNS = [
  'cmp_welcome',
  'cmp_promo',
  'jrn_nurture@1.mail',
  'jrn_nurture@2.mail',
  'jrn_nurture@2.push',
];

/**
 * Messages to the dataset's profiles (merged-away ones too, before their merge) and to a
 * profile no identifier links: sent, suppressed, failed then sent again under the same
 * key. No send shares a millisecond with an event, so "first" and "last" are never ties.
 */
export function generateSends(d: Dataset, o: { seed: number; startMs: number; days: number }): DatasetSend[] {
  const r = rng(o.seed + 1);
  const taken = new Set(d.events.map((e) => Date.parse(e.timestamp)));
  const profiles = [
    ...new Set(d.changes.flatMap((c) => [c.profileId, ...c.mergedProfileIds])),
    `prof-${o.seed}-unlinked`,
  ];
  const sends: DatasetSend[] = [];
  let n = 0;
  for (const profile of profiles) {
    const count = Math.floor(r() * 5);
    for (let i = 0; i < count; i++) {
      let t = o.startMs + Math.floor(r() * o.days * 86_400_000);
      while (taken.has(t)) t++;
      taken.add(t);
      const campaign = SEND_CAMPAIGNS[Math.floor(r() * SEND_CAMPAIGNS.length)]!;
      const channel = campaign.endsWith('push') ? 'push' : r() < 0.8 ? 'email' : 'sms';
      const key = `sk-${o.seed}-${++n}`;
      const roll = r();
      if (roll < 0.15) sends.push({ key, profile, t, campaign, channel, outcome: 'suppressed', attempt: 1 });
      else if (roll < 0.3) {
        // a failure, then the retry that went out (one send under one key)
        sends.push({ key, profile, t, campaign, channel, outcome: 'failed', attempt: 1 });
        let t2 = t + 1000;
        while (taken.has(t2)) t2++;
        taken.add(t2);
        sends.push({ key, profile, t: t2, campaign, channel, outcome: 'sent', attempt: 2 });
      } else sends.push({ key, profile, t, campaign, channel, outcome: 'sent', attempt: 1 });
    }
  }
  return sends;
}
