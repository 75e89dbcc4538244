// The processor benchmark's workload, built up front and deterministic in its seed: a
// stream of normalised events as ingest puts them on cdp.events, cut into the batches a
// Kafka consumer hands the processor, and the segment definitions of a workspace. Pure:
// no I/O, no clock, no Math.random.
//
// The stream models a site's traffic: new anonymous visitors keep arriving; returning
// people are picked with a Zipf-like (1/(rank + k)) popularity; about half of the
// visitors sign up at some point (an identify that gives their anonymous profile a userId,
// email and traits); known users now and then show up on a new device (anonymous events
// under a new anonymousId, then an identify that merges the two profiles). Events are
// track (named, with properties), page and identify, about 400 bytes of JSON each.
import type { IncomingMessage } from '../runtime/kafka/index.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import type { SegmentDefinition } from '../schemas/segment.ts';
import { rng as prng } from '../test/analytics-dataset.ts';

// the seedable PRNG (mulberry32) the test datasets use
export { prng };

/**
 * An index in [0, n) where index k is picked with probability ∝ 1/(k + offset): a Zipf
 * curve (s = 1) flattened at the head so the hottest of 10,000 people sends ~1.5% of the
 * events, not 10%. Inverse-CDF of the continuous 1/x density, so O(1).
 */
export function zipfIndex(u: number, n: number, offset = 20): number {
  if (n <= 1) return 0;
  const lo = Math.log(offset);
  const hi = Math.log(n + offset);
  const k = Math.floor(Math.exp(lo + u * (hi - lo))) - offset;
  return Math.min(n - 1, Math.max(0, k));
}

/** Event names the stream sends (track). Segments that must not match use other names. */
export const TRACK_EVENTS = [
  'Product Viewed',
  'Product Added',
  'Checkout Started',
  'Order Completed',
  'Signed In',
] as const;
const TRACK_WEIGHTS = [0.5, 0.18, 0.1, 0.08, 0.14];
/** Traits identify calls set. Segments that must not match read other keys. */
export const TRAIT_KEYS = ['email', 'plan', 'logins', 'company'] as const;
const PLANS = ['free', 'free', 'free', 'pro', 'team'] as const;
const PRODUCTS = [
  ['sku-10482', 129.99, 'Footwear'],
  ['sku-20931', 18.5, 'Accessories'],
  ['sku-33307', 249.0, 'Outerwear'],
  ['sku-41220', 34.95, 'Gear'],
  ['sku-58814', 89.0, 'Bags'],
] as const;
const PAGES = [
  ['Home', '/'],
  ['Pricing', '/pricing'],
  ['Trail Running', '/c/trail-running'],
  ['Blog', '/blog/how-to-choose-trail-shoes'],
  ['Cart', '/cart'],
] as const;
const COMPANIES = ['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Stark'] as const;

export interface StreamOptions {
  seed: number;
  count: number;
  /** Event time (ms) of the first event; each later one is `spacingMs` later. */
  startMs: number;
  spacingMs?: number;
  /** Unique per benchmark run: messageIds are `${idPrefix}-${i}` (history: `${idPrefix}-h${i}`). */
  idPrefix: string;
  /** People who visited before the stream starts (40% of them signed up), each with one history event. */
  initialPeople?: number;
  /** Share of events from a brand-new anonymous visitor. */
  newVisitorShare?: number;
}

/** Strings stored back to back in one buffer (off the JS heap: a large pool of strings would make every GC slower). */
export interface Packed {
  buf: Buffer;
  /** End offset of string i; it starts where string i - 1 ends. */
  ends: Uint32Array;
}

export function pack(strings: readonly string[]): Packed {
  const parts = strings.map((x) => Buffer.from(x));
  const ends = new Uint32Array(parts.length);
  let at = 0;
  parts.forEach((b, i) => {
    at += b.length;
    ends[i] = at;
  });
  return { buf: Buffer.concat(parts, at), ends };
}

export const packedStart = (p: Packed, i: number) => (i === 0 ? 0 : p.ends[i - 1]!);
export const unpack = (p: Packed, i: number) => p.buf.toString('utf8', packedStart(p, i), p.ends[i]);

/** Events in order: each one's JSON without its leading `{"workspaceId":"…",`, its key identity, its time. */
export interface EventList {
  length: number;
  bodies: Packed;
  /** userId ?? anonymousId: what the Kafka key names. */
  keys: Packed;
  times: Float64Array;
}

export interface EventStream {
  /** One event per person known before the stream (an identify for those signed up, else a page). */
  history: EventList;
  events: EventList;
  stats: {
    track: number;
    page: number;
    identify: number;
    /** People in history and stream (each is one profile once merged). */
    people: number;
    /** Identifies that give an anonymous visitor a userId (sign-ups). */
    signups: number;
    /** Identifies that join a known user's new device (merges two profiles). */
    deviceJoins: number;
    /** Events from people not seen before (new anonymous visitors). */
    newVisitors: number;
    /** Mean JSON size of a stream event, bytes (with a workspace id of 16 characters). */
    meanBytes: number;
  };
}

interface Person {
  anon: string;
  userId: string | null;
  willSignUp: boolean;
  /** On a new device: anonymous there until an identify joins it. */
  newDevice: boolean;
  logins: number;
  plan: string;
  company: string;
  ip: string;
}

/** A UUID-shaped id from the PRNG. */
function uuidFrom(rand: () => number): string {
  const h = () =>
    Math.floor(rand() * 2 ** 32)
      .toString(16)
      .padStart(8, '0');
  const [a, b, c, d] = [h(), h(), h(), h()];
  return `${a}-${b.slice(0, 4)}-4${b.slice(5)}-a${c.slice(1, 4)}-${c.slice(4)}${d}`;
}

function pickWeighted<T>(rand: () => number, items: readonly T[], weights: readonly number[]): T {
  let u = rand();
  for (let i = 0; i < items.length; i++) {
    u -= weights[i]!;
    if (u < 0) return items[i]!;
  }
  return items[items.length - 1]!;
}

class ListBuilder {
  bodies: string[] = [];
  keys: string[] = [];
  times: number[] = [];
  bytes = 0;
  add(ev: Omit<NormalizedEvent, 'workspaceId'>, t: number): void {
    const body = JSON.stringify(ev).slice(1);
    this.bodies.push(body);
    this.keys.push(ev.userId ?? ev.anonymousId!);
    this.times.push(t);
    this.bytes += body.length + 32; // `{"workspaceId":"<16 chars>",`
  }
  build(): EventList {
    return {
      length: this.bodies.length,
      bodies: pack(this.bodies),
      keys: pack(this.keys),
      times: Float64Array.from(this.times),
    };
  }
}

/** The history and the stream of events, in the order they happen. Same options, same events. */
export function generateStream(opts: StreamOptions): EventStream {
  const rand = prng(opts.seed);
  const spacing = opts.spacingMs ?? 1;
  const newShare = opts.newVisitorShare ?? 0.03;
  const stats = {
    track: 0,
    page: 0,
    identify: 0,
    people: 0,
    signups: 0,
    deviceJoins: 0,
    newVisitors: 0,
    meanBytes: 0,
  };
  let users = 0;
  const person = (signedUp: boolean): Person => {
    stats.people++;
    return {
      anon: uuidFrom(rand),
      userId: signedUp ? `user-${String(++users).padStart(7, '0')}` : null,
      willSignUp: rand() < 0.5,
      newDevice: false,
      logins: signedUp ? 1 + Math.floor(rand() * 8) : 0,
      plan: PLANS[Math.floor(rand() * PLANS.length)]!,
      company: COMPANIES[Math.floor(rand() * COMPANIES.length)]!,
      ip: `203.0.113.${Math.floor(rand() * 254) + 1}`,
    };
  };
  const context = (p: Person) => ({
    library: { name: 'analytics.js', version: '1.70.0' },
    locale: 'en-US',
    ip: p.ip,
  });
  const identifyTraits = (p: Person) => ({
    email: `${p.userId}@example.com`,
    plan: p.plan,
    logins: p.logins,
    company: p.company,
  });

  // history: each known person's last visit, in the month before the stream
  const people: Person[] = Array.from({ length: opts.initialPeople ?? 20_000 }, () => person(rand() < 0.4));
  const history = new ListBuilder();
  people.forEach((p, i) => {
    const t = opts.startMs - 30 * 86_400_000 + Math.floor((i * 30 * 86_400_000) / people.length);
    const iso = new Date(t).toISOString();
    history.add(
      {
        type: p.userId ? 'identify' : 'page',
        messageId: `${opts.idPrefix}-h${i}`,
        userId: p.userId,
        anonymousId: p.anon,
        properties: p.userId ? {} : { path: '/', referrer: 'https://www.google.com/' },
        traits: p.userId ? identifyTraits(p) : {},
        context: context(p),
        integrations: {},
        timestamp: iso,
        receivedAt: iso,
        ...(p.userId ? {} : { name: 'Home' }),
      },
      t,
    );
  });

  const stream = new ListBuilder();
  for (let i = 0; i < opts.count; i++) {
    const t = opts.startMs + Math.floor(i * spacing);
    const iso = new Date(t).toISOString();
    let p: Person;
    if (rand() < newShare) {
      p = person(false);
      people.push(p);
      stats.newVisitors++;
    } else p = people[zipfIndex(rand(), people.length, 50)]!;

    let type: 'track' | 'page' | 'identify';
    if (p.userId === null) {
      type = p.willSignUp && rand() < 0.15 ? 'identify' : rand() < 0.65 ? 'track' : 'page';
      if (type === 'identify') {
        p.userId = `user-${String(++users).padStart(7, '0')}`;
        stats.signups++;
      }
    } else if (p.newDevice) {
      // the new device's anonymous events came first; now the person signs in on it
      type = rand() < 0.4 ? 'identify' : rand() < 0.5 ? 'track' : 'page';
      if (type === 'identify') {
        p.newDevice = false;
        stats.deviceJoins++;
      }
    } else if (rand() < 0.01) {
      p.anon = uuidFrom(rand);
      p.newDevice = true;
      type = 'page';
    } else {
      const r = rand();
      type = r < 0.08 ? 'identify' : r < 0.7 ? 'track' : 'page';
    }

    const properties: Record<string, unknown> = {};
    let traits: Record<string, unknown> = {};
    let event: string | undefined;
    let name: string | undefined;
    if (type === 'track') {
      event = pickWeighted(rand, TRACK_EVENTS, TRACK_WEIGHTS);
      const [sku, price, category] = PRODUCTS[Math.floor(rand() * PRODUCTS.length)]!;
      if (event === 'Order Completed') {
        const qty = 1 + Math.floor(rand() * 3);
        properties.order_id = `ord-${i}`;
        properties.revenue = Math.round(price * qty * 100) / 100;
        properties.currency = 'USD';
      } else if (event === 'Signed In') {
        properties.method = rand() < 0.7 ? 'password' : 'google';
      } else {
        properties.product_id = sku;
        properties.price = price;
        properties.category = category;
      }
      stats.track++;
    } else if (type === 'page') {
      const [title, path] = PAGES[Math.floor(rand() * PAGES.length)]!;
      name = title;
      properties.path = path;
      properties.referrer = 'https://www.google.com/';
      stats.page++;
    } else {
      p.logins++;
      if (rand() < 0.1) p.plan = PLANS[Math.floor(rand() * PLANS.length)]!;
      traits = identifyTraits(p);
      stats.identify++;
    }

    const ev: Omit<NormalizedEvent, 'workspaceId'> = {
      type,
      messageId: `${opts.idPrefix}-${i}`,
      // a known person on a new device is anonymous there until the identify
      userId: p.newDevice ? null : p.userId,
      anonymousId: p.anon,
      properties,
      traits,
      context: context(p),
      integrations: {},
      timestamp: iso,
      receivedAt: iso,
    };
    if (event) ev.event = event;
    if (name) ev.name = name;
    stream.add(ev, t);
  }
  stats.meanBytes = opts.count > 0 ? stream.bytes / opts.count : 0;
  return { history: history.build(), events: stream.build(), stats };
}

/** FNV-1a of a string, unsigned 32 bits (stands in for Kafka's partitioner). */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Cuts a list the way a consumer of a partitioned topic with a backlog receives it: each
 * event goes to the partition of its key, and batches of up to `batchSize` messages of one
 * partition are handed out partition by partition, round robin. Returns event indexes per
 * batch, with each batch's partition.
 */
export function planBatches(
  list: EventList,
  workspaceId: string,
  partitions: number,
  batchSize: number,
): Array<{ partition: number; events: Uint32Array }> {
  const queues: number[][] = Array.from({ length: partitions }, () => []);
  for (let i = 0; i < list.length; i++)
    queues[hash32(`${workspaceId}:${unpack(list.keys, i)}`) % partitions]!.push(i);
  const out: Array<{ partition: number; events: Uint32Array }> = [];
  const at = new Array<number>(partitions).fill(0);
  for (let left = list.length; left > 0; ) {
    for (let p = 0; p < partitions; p++) {
      const q = queues[p]!;
      if (at[p]! >= q.length) continue;
      const events = Uint32Array.from(q.slice(at[p], at[p]! + batchSize));
      at[p]! += events.length;
      left -= events.length;
      out.push({ partition: p, events });
    }
  }
  return out;
}

export interface Batch {
  topic: string;
  partition: number;
  messages: IncomingMessage[];
}

/** A workspace's batches, ready to hand out: the bytes are built up front, the message objects per batch. */
export interface PreparedBatches {
  length: number;
  events: number;
  /** Batch i as the consumer gives it (message values are views of one buffer). */
  batch(i: number): Batch;
}

export function prepareBatches(
  list: EventList,
  workspaceId: string,
  topic: string,
  partitions: number,
  batchSize: number,
): PreparedBatches {
  const head = Buffer.from(`{"workspaceId":${JSON.stringify(workspaceId)},`);
  const values = Buffer.allocUnsafe(list.length * head.length + list.bodies.buf.length);
  const ends = new Uint32Array(list.length);
  let at = 0;
  for (let i = 0; i < list.length; i++) {
    at += head.copy(values, at);
    at += list.bodies.buf.copy(values, at, packedStart(list.bodies, i), list.bodies.ends[i]);
    ends[i] = at;
  }
  const plan = planBatches(list, workspaceId, partitions, batchSize);
  const firstOffset = new Uint32Array(plan.length);
  const next = new Array<number>(partitions).fill(0);
  plan.forEach((b, i) => {
    firstOffset[i] = next[b.partition]!;
    next[b.partition]! += b.events.length;
  });
  return {
    length: plan.length,
    events: list.length,
    batch(i) {
      const b = plan[i]!;
      const messages: IncomingMessage[] = [];
      b.events.forEach((e, j) => {
        messages.push({
          topic,
          partition: b.partition,
          offset: String(firstOffset[i]! + j),
          key: `${workspaceId}:${unpack(list.keys, e)}`,
          value: values.subarray(e === 0 ? 0 : ends[e - 1], ends[e]),
          headers: {},
          timestamp: list.times[e]!,
        });
      });
      return { topic, partition: b.partition, messages };
    },
  };
}

/** Segments that read what the stream sends, the same in every workspace size. */
export const TOUCHING_SEGMENTS: ReadonlyArray<{ id: string; rule: unknown }> = [
  { id: 'pro-plan', rule: { '==': [{ var: 'traits.plan' }, 'pro'] } },
  { id: 'frequent', rule: { '>=': [{ var: 'traits.logins' }, 5] } },
  { id: 'bought-7d', rule: { '>=': [{ event_count: ['Order Completed', '7d'] }, 1] } },
  {
    id: 'browsing-1h',
    rule: { '>=': [{ event_count: ['Product Viewed', '1h', { '>': [{ var: 'price' }, 50] }] }, 3] },
  },
  { id: 'pro-buyer', rule: { and: [{ in_segment: 'pro-plan' }, { in_segment: 'bought-7d' }] } },
];

/**
 * `total` segments of one workspace: the TOUCHING_SEGMENTS, then rules the stream never
 * makes true or changes — two in three compare traits no event sets, one in three counts
 * an event name no event has (each its own name and window, so each is its own counted
 * condition, as distinct real segments would be).
 */
export function segmentDefinitions(workspaceId: string, total: number): SegmentDefinition[] {
  const at = '2026-01-01T00:00:00.000Z';
  const def = (id: string, rule: unknown): SegmentDefinition => ({
    id,
    workspaceId,
    name: id,
    rule,
    version: 1,
    status: 'active',
    createdAt: at,
    updatedAt: at,
  });
  const out = TOUCHING_SEGMENTS.slice(0, total).map((s) => def(s.id, s.rule));
  for (let i = 0; out.length < total; i++) {
    const id = `other-${String(i).padStart(5, '0')}`;
    const v = { var: `traits.attr_${i % 997}` };
    switch (i % 3) {
      case 0:
        out.push(def(id, { '==': [v, `value-${i}`] }));
        break;
      case 1:
        out.push(
          def(id, {
            and: [{ '>=': [v, i] }, { in: [{ var: `traits.tier_${i % 101}` }, ['gold', 'silver']] }],
          }),
        );
        break;
      default:
        out.push(def(id, { '>=': [{ event_count: [`Never Sent ${i}`, `${1 + (i % 30)}d`] }, 2] }));
    }
  }
  return out;
}
