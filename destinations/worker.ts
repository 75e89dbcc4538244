// One destination's delivery: its own consumer group on the events (or segment-changes)
// topic, so its lag is its own; a lane per partition that batches the mapped items and
// delivers them in order (order per profile, since a profile's messages share a partition);
// a circuit breaker and a token bucket of its own; failed deliveries parked in its own
// Redis retry set (retry-set.ts) and tried by its own poller, dead letters after the
// configured attempts (a batch refused whole for its content split until only the items at
// fault are); a ledger row per item and outcome on cdp.activation-ledger. A webhook's signing
// secret and a built-in's token are opened from their sealed form (CDP_SECRETS_KEY).
//
// A batch's offsets are committed once each of its items was delivered, parked for a retry
// or dead-lettered (the ledger rows and dead letters acknowledged by Kafka, the park by
// Redis): a crash redelivers what was under way, with the same `webhook-id` for the same
// items. What a lane holds is bounded (`inFlightItems`): past it, the consumer waits.
import { createHash } from 'node:crypto';
import type { GuardPolicy } from '../activation/webhook/address-guard.ts';
import { sendWebhook, type WebhookResult } from '../activation/webhook/send-webhook.ts';
import { superviseConsumer } from '../runtime/consume.ts';
import { errorMessage, realSleep } from '../runtime/errors.ts';
import { deadLetter as deadLetterMessage } from '../runtime/kafka/dead-letter.ts';
import type {
  Admin,
  IncomingMessage,
  KafkaClient,
  OutgoingMessage,
  Producer,
  TopicSpec,
} from '../runtime/kafka/index.ts';
import { sendOrDeadLetter } from '../runtime/kafka/send-bounded.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import { type Keyring, open as openSealed, UnreadableSecret } from '../runtime/secrets-key.ts';
import {
  applyMapping,
  DESTINATION_DEFAULTS,
  type DeliveryItem,
  type DestinationDefinition,
  DestinationError,
  deliveryBody,
  destinationAad,
  destinationGroup,
  MAX_BATCH_EVENTS,
  MAX_BODY_BYTES,
  passesFilter,
  signingSecretOf,
} from '../schemas/destination.ts';
import { REPLAY_HEADER } from '../schemas/topics.ts';
import { sendAudience } from './ads-audience.ts';
import { type BreakerOptions, CircuitBreaker } from './circuit-breaker.ts';
import { type BuiltinResult, HUBSPOT_MAX_BATCH, sendHubspot } from './hubspot.ts';
import { TokenBucket } from './rate-limit.ts';
import { type Delivery, type ItemMeta, retrySet } from './retry-set.ts';
import { SALESFORCE_MAX_BATCH, sendSalesforce } from './salesforce.ts';

/** Header naming the destination on its dead letters. */
export const DESTINATION_HEADER = 'cdp-destination-id';
export const DLQ_STAGE = 'destination.deliver';
/**
 * Statuses that refuse a batch for what is in it (HubSpot's 400 for one invalid property
 * value, a Salesforce INVALID_FIELD, a 413, a 422): the batch is split in halves, and each
 * half tried on its own (split again if refused again), so only the bad records are
 * dead-lettered. Other final statuses (404, 401, ...) say nothing about the records.
 */
const SPLIT_STATUSES = new Set([400, 413, 422]);
/** An attempt more ranks a delivery behind an open circuit ahead of 100 days of age. */
const CIRCUIT_PRIORITY_MS = 100 * 86_400_000;

/** `webhook-id` of a delivery: a hash of the destination and its items' ids, so a repeat carries the same. */
export function webhookIdOf(destinationId: string, itemIds: readonly string[]): string {
  const h = createHash('sha256').update(destinationId);
  for (const id of itemIds) h.update('\n').update(id);
  return `msg_${h.digest('base64url').slice(0, 32)}`;
}

export interface WorkerOptions {
  kafka: KafkaClient;
  admin: Admin;
  producer: Producer;
  redis: Redis;
  redisPrefix: string;
  topicPrefix: string;
  /** What it consumes (cdp.events and the hot-key lane, or cdp.segment-changes), its ledger and dead letters. */
  topics: { sources: string[]; ledger: string; deadLetter: string };
  topicSpecs: TopicSpec[];
  partitions: number;
  addressPolicy: GuardPolicy;
  breaker: BreakerOptions;
  retryPollMs: number;
  /** Deliveries a destination may have parked; past it they are dead-lettered at once. */
  maxRetryBacklog: number;
  /** Items a partition's lane may hold (batched, or being delivered) before the consumer waits. */
  inFlightItems: number;
  /** How long a spent API limit (Salesforce) holds the destination; default a minute. */
  limitWaitMs?: number;
  log: Logger;
  now: () => number;
  /** Opens a built-in's sealed credentials (CDP_SECRETS_KEY). */
  secrets?: Keyring;
}

export interface DestinationWorker {
  readonly id: string;
  /** Resolves once its consumer joined its group. */
  started: Promise<void>;
  /** A new version (same source): mapping, URL, secret, limits apply from the next item. */
  update(def: DestinationDefinition): void;
  breakerState(): string;
  stop(): Promise<void>;
}

interface Entry {
  item: DeliveryItem;
  meta: ItemMeta;
  bytes: number;
}

interface Chunk {
  entries: Entry[];
  bytes: number;
  done: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

type Outcome = 'sent' | 'retried' | 'dead_lettered';

export function startDestinationWorker(initial: DestinationDefinition, o: WorkerOptions): DestinationWorker {
  let def = initial;
  const log = o.log.child({ destinationId: def.id });
  const createdAtMs = Date.parse(def.createdAt);
  const breaker = new CircuitBreaker(o.breaker);
  let bucket = def.rateLimit ? new TokenBucket(def.rateLimit.perSecond, o.now()) : undefined;
  const retries = retrySet(o.redis, o.redisPrefix, def.id);
  let stopping = false;

  const maxEvents = () =>
    def.type === 'hubspot'
      ? Math.min(HUBSPOT_MAX_BATCH, def.http.batch?.maxEvents ?? HUBSPOT_MAX_BATCH)
      : def.type === 'salesforce'
        ? Math.min(SALESFORCE_MAX_BATCH, def.http.batch?.maxEvents ?? SALESFORCE_MAX_BATCH)
        : def.type === 'audience'
          ? (def.http.batch?.maxEvents ?? MAX_BATCH_EVENTS)
          : (def.http.batch?.maxEvents ?? DESTINATION_DEFAULTS.maxEvents);
  /** A provider said its rate-limit window is spent: nothing is sent before this time. */
  let holdUntil = 0;
  /** A built-in's token, opened once per version of the definition. */
  let opened: { version: number; token: string } | undefined;
  const tokenOf = (): string => {
    if (opened?.version !== def.version) {
      if (!def.credentials) throw new Error('credentials missing');
      const plain = openSealed(
        o.secrets ?? { byId: new Map() },
        def.credentials,
        destinationAad(def.workspaceId, def.id),
      );
      const token = (JSON.parse(plain) as { token?: unknown }).token;
      if (typeof token !== 'string') throw new Error('credentials unusable');
      opened = { version: def.version, token };
    }
    return opened.token;
  };
  /** A webhook's signing secret, opened (when sealed) once per version of the definition. */
  let signing: { version: number; secret: string } | undefined;
  const signingSecret = (): string => {
    if (signing?.version !== def.version) {
      const secret = signingSecretOf(o.secrets ?? { byId: new Map() }, def);
      if (!secret) throw new Error('no signing secret');
      signing = { version: def.version, secret };
    }
    return signing.secret;
  };
  /**
   * A secret that cannot be used. One no key at hand opens (CDP_SECRETS_KEY missing or wrong
   * on this service, a rotation run too early) is retried and counted by the circuit, like a
   * dead receiver: the deliveries wait (behind the open circuit) for the key to be put right
   * instead of being dead-lettered at once. Anything else about it is final.
   */
  const unusable = (err: unknown) =>
    err instanceof UnreadableSecret
      ? { ok: false, status: 0, retriable: true, latencyMs: 0, error: err.message }
      : {
          ok: false,
          status: 0,
          retriable: false,
          latencyMs: 0,
          error: `credentials unusable: ${errorMessage(err)}`,
        };
  /** One attempt at the provider: a signed webhook, or a built-in's API. */
  const send = async (d: Delivery): Promise<WebhookResult & Partial<BuiltinResult>> => {
    if (def.type === 'http') {
      let secret: string;
      try {
        secret = signingSecret();
      } catch (err) {
        return unusable(err);
      }
      return sendWebhook(
        {
          url: def.http.url,
          secret,
          id: d.webhookId,
          body: deliveryBody(d.items, maxEvents() > 1),
          timestampSeconds: Math.floor(o.now() / 1000),
        },
        { ...o.addressPolicy, timeoutMs: timeoutMs() },
      );
    }
    let token: string;
    try {
      token = tokenOf();
    } catch (err) {
      return unusable(err);
    }
    if (def.type === 'salesforce')
      return sendSalesforce(d.items, {
        baseUrl: def.http.url,
        apiVersion: def.salesforce?.apiVersion ?? 'v60.0',
        object: def.salesforce?.object ?? 'Contact',
        externalIdField: def.salesforce?.externalIdField ?? '',
        token,
        timeoutMs: timeoutMs(),
        policy: o.addressPolicy,
        now: o.now(),
        limitWaitMs: o.limitWaitMs,
      });
    if (def.type === 'audience')
      return sendAudience(d.items, {
        baseUrl: def.http.url,
        apiVersion: def.audience?.apiVersion ?? 'v21.0',
        audienceId: def.audience?.audienceId ?? '',
        identifier: def.audience?.identifier ?? 'email',
        token,
        timeoutMs: timeoutMs(),
        policy: o.addressPolicy,
        now: o.now(),
      });
    return sendHubspot(d.items, {
      baseUrl: def.http.url,
      token,
      idProperty: def.hubspot?.idProperty ?? 'email',
      timeoutMs: timeoutMs(),
      policy: o.addressPolicy,
      now: o.now(),
    });
  };
  const maxWaitMs = () => def.http.batch?.maxWaitMs ?? DESTINATION_DEFAULTS.maxWaitMs;
  const timeoutMs = () => def.http.timeoutMs ?? DESTINATION_DEFAULTS.timeoutMs;
  const maxAttempts = () => def.retry?.maxAttempts ?? DESTINATION_DEFAULTS.maxAttempts;

  /** A follow-up (ledger, dead letters, park) is retried until it works; only stopping gives up. */
  const durably = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    for (let i = 0; ; i++) {
      try {
        await fn();
        return;
      } catch (err) {
        if (stopping) throw err;
        log.warn({ what, attempt: i, err: errorMessage(err) }, 'destination_follow_up_failed');
        await realSleep(Math.min(5000, 100 * 2 ** Math.min(i, 6)));
      }
    }
  };

  const ledgerRows = (
    d: Delivery,
    outcome: Outcome,
    reason: string,
    attempt: number,
    res: WebhookResult | undefined,
    notBefore: number | null,
  ): OutgoingMessage[] => {
    const at = o.now();
    return d.items.map((item, i) => {
      const meta = d.meta[i]!;
      return {
        key: `${def.workspaceId}:${def.id}`,
        value: JSON.stringify({
          workspace_id: def.workspaceId,
          at,
          send_key: item.id,
          campaign_id: def.id,
          campaign_version: def.version,
          segment_id: meta.segmentId,
          segment_version: meta.segmentVersion,
          profile_id: meta.profileId,
          epoch: meta.epoch,
          channel: 'destination',
          outcome,
          reason: reason.slice(0, 500),
          attempt,
          status_code: res?.status ?? 0,
          latency_ms: Math.max(0, at - meta.producedAt),
          provider_ms: res?.latencyMs ?? 0,
          not_before: notBefore,
          provider_id: d.webhookId,
        }),
      };
    });
  };

  const deadLetter = async (d: Delivery, reason: string, attempt: number, res?: WebhookResult) => {
    const letters: OutgoingMessage[] = d.items.map((item, i) =>
      deadLetterMessage({
        key: d.meta[i]!.key,
        value: JSON.stringify({ destinationId: def.id, webhookId: d.webhookId, item }),
        reason,
        stage: DLQ_STAGE,
        from: { topic: d.meta[i]!.topic ?? o.topics.sources[0]! },
        headers: { [DESTINATION_HEADER]: def.id, 'cdp-attempt': String(attempt) },
      }),
    );
    const stage = { deadLetterTopic: o.topics.deadLetter, stage: DLQ_STAGE, log };
    await durably('dead letter', () => sendOrDeadLetter(o.producer, o.topics.deadLetter, letters, stage));
    await durably('ledger', () =>
      sendOrDeadLetter(
        o.producer,
        o.topics.ledger,
        ledgerRows(d, 'dead_lettered', reason, attempt, res, null),
        {
          ...stage,
          stage: 'destination.ledger',
        },
      ),
    );
    log.warn({ webhookId: d.webhookId, items: d.items.length, attempt, reason }, 'destination_dead_lettered');
  };

  const ledger = (rows: OutgoingMessage[]) =>
    durably('ledger', () =>
      sendOrDeadLetter(o.producer, o.topics.ledger, rows, {
        deadLetterTopic: o.topics.deadLetter,
        stage: 'destination.ledger',
        log,
      }),
    );

  const backoffMs = (attempt: number, retryAfterMs?: number) => {
    const base = def.retry?.initialBackoffMs ?? DESTINATION_DEFAULTS.initialBackoffMs;
    const ms = Math.min(DESTINATION_DEFAULTS.maxBackoffMs, base * 2 ** (attempt - 1));
    const jittered = Math.round(ms * (0.5 + Math.random() / 2));
    return Math.max(jittered, retryAfterMs ?? 0);
  };

  /**
   * The score of a delivery waiting on an open circuit: not a time but a priority, already
   * due (the poller claims nothing while the circuit is open): most attempts first, then
   * oldest. So the half-open probe is the delivery closest to its last attempt, and a dead
   * receiver's deliveries reach their dead letters one after the other, instead of all
   * taking turns at one probe each; when the circuit closes, the backlog is due at once.
   */
  const circuitScore = (d: Delivery): number =>
    Math.min(...d.meta.map((m) => m.producedAt)) - d.attempt * CIRCUIT_PRIORITY_MS;

  /** The part of a delivery at these indexes (same webhook id: the ledger's provider_id). */
  const sub = (d: Delivery, idx: readonly number[]): Delivery => ({
    ...d,
    items: idx.map((i) => d.items[i]!),
    meta: idx.map((i) => d.meta[i]!),
  });

  /**
   * One attempt of a delivery (fresh from a lane, or claimed from the retry set as
   * `member`). Resolves once its outcome is durable: sent (ledger), parked (Redis) or
   * dead-lettered (Kafka).
   */
  const attempt = async (d: Delivery, member?: string): Promise<void> => {
    const parkAgain = async (next: Delivery, dueAt: number) => {
      if (member) await durably('retry set', () => retries.finish(member, { delivery: next, dueAt }));
      else await durably('retry set', () => retries.park([{ delivery: next, dueAt }]));
    };
    const finish = async () => {
      if (member) await durably('retry set', () => retries.finish(member));
    };
    if (!breaker.allow(o.now())) {
      // not tried, attempt count unchanged: parked behind the circuit (see circuitScore)
      const dueAt = circuitScore(d);
      if (!member && (await retries.size().catch(() => 0)) >= o.maxRetryBacklog) {
        await deadLetter(
          d,
          `retry backlog of ${o.maxRetryBacklog} full while the circuit is open`,
          d.attempt,
        );
        return;
      }
      await parkAgain(d, dueAt);
      if (!member) await ledger(ledgerRows(d, 'retried', 'circuit_open', d.attempt, undefined, null));
      return;
    }
    if (bucket) {
      for (let wait = bucket.take(o.now()); wait > 0; wait = bucket.take(o.now())) await realSleep(wait);
    }
    // a provider's spent rate-limit window holds every request of this destination
    while (holdUntil > o.now() && !stopping) await realSleep(Math.min(250, holdUntil - o.now()));
    if (holdUntil > o.now()) {
      // stopping inside the window: parked (not an attempt) for whoever takes over
      await parkAgain(d, holdUntil);
      return;
    }
    const res = await send(d);
    // counted from the answer, not from when the request left
    if (res.holdMs) holdUntil = Math.max(holdUntil, o.now() + res.holdMs);
    const n = d.attempt + 1;
    if (res.ok) {
      breaker.success();
      const refused = new Map(res.itemErrors ?? []);
      const again = new Map(res.itemRetries ?? []);
      // a record worth another try that is out of attempts is refused like the others
      if (n >= maxAttempts())
        for (const [i, why] of again) refused.set(i, `${n} attempts failed, the last: ${why}`);
      const retryIdx = n >= maxAttempts() ? [] : [...again.keys()].sort((a, b) => a - b);
      const sent = sub(
        d,
        d.items.map((_, i) => i).filter((i) => !refused.has(i) && !again.has(i)),
      );
      // a provider's refusal of one record (HubSpot 207, a Salesforce record error, an unusable
      // item) is that record's dead letter
      const byReason = new Map<string, number[]>();
      for (const [i, why] of refused) byReason.set(why, [...(byReason.get(why) ?? []), i]);
      for (const [why, idx] of byReason) await deadLetter(sub(d, idx), why, n, res);
      if (sent.items.length > 0) await ledger(ledgerRows(sent, 'sent', '', n, res, null));
      if (retryIdx.length > 0) {
        // those records alone, under the same webhook id, parked for their next attempt
        const next = { ...sub(d, retryIdx), attempt: n };
        const dueAt = o.now() + backoffMs(n);
        await parkAgain(next, dueAt);
        await ledger(ledgerRows(next, 'retried', again.get(retryIdx[0]!) ?? 'record retried', n, res, dueAt));
      } else await finish();
      return;
    }
    const reason = res.error ?? `HTTP ${res.status}`;
    if (!res.retriable) {
      if (res.tripsBreaker) {
        if (breaker.failure(o.now())) log.warn({ reason }, 'destination_circuit_opened');
      } else breaker.neutral();
      if (d.items.length > 1 && !res.tripsBreaker && SPLIT_STATUSES.has(res.status)) {
        // bisect: the halves in order (a person's order kept), each its own delivery and
        // webhook id (a receiver deduping on it must not drop the second half), the attempt
        // count unchanged (the refusal was the batch's, not theirs); at most 2n − 1 requests
        // for n records, about 2·log2(n) + 1 for one bad record
        const mid = Math.ceil(d.items.length / 2);
        log.info({ webhookId: d.webhookId, items: d.items.length, reason }, 'destination_batch_split');
        for (const idx of [
          d.items.slice(0, mid).map((_, i) => i),
          d.items.slice(mid).map((_, i) => mid + i),
        ]) {
          const half = sub(d, idx);
          await attempt({
            ...half,
            webhookId: webhookIdOf(
              def.id,
              half.items.map((x) => x.id),
            ),
          });
        }
        await finish();
        return;
      }
      await deadLetter(d, `permanent: ${reason}`, n, res);
      await finish();
      return;
    }
    if (res.rateLimited) breaker.neutral();
    else if (breaker.failure(o.now())) log.warn({ reason }, 'destination_circuit_opened');
    if (n >= maxAttempts()) {
      await deadLetter(d, `${n} attempts failed, the last: ${reason}`, n, res);
      await finish();
      return;
    }
    if (!member && (await retries.size().catch(() => 0)) >= o.maxRetryBacklog) {
      await deadLetter(d, `retry backlog of ${o.maxRetryBacklog} full: ${reason}`, n, res);
      return;
    }
    const next = { ...d, attempt: n };
    // behind an open circuit its next try is the circuit's to decide (it is the likely probe)
    const open = breaker.current === 'open';
    const dueAt = open ? circuitScore(next) : o.now() + backoffMs(n, res.retryAfterMs);
    await parkAgain(next, dueAt);
    await ledger(ledgerRows(d, 'retried', reason, n, res, open ? null : dueAt));
  };

  // ---- lanes: one per partition, deliveries in order ----
  interface Lane {
    open?: Chunk;
    timer?: NodeJS.Timeout;
    chain: Promise<void>;
    held: number;
  }
  // one per topic and partition (cdp.events and its hot-key lane have partitions of the same numbers)
  const lanes = new Map<string, Lane>();
  const laneOf = (topic: string, partition: number): Lane => {
    let l = lanes.get(`${topic}/${partition}`);
    if (!l) {
      l = { chain: Promise.resolve(), held: 0 };
      lanes.set(`${topic}/${partition}`, l);
    }
    return l;
  };
  const newChunk = (): Chunk => {
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // a failure is seen by the batch's effects; never an unhandled rejection here
    done.catch(() => {});
    return { entries: [], bytes: 0, done, resolve, reject };
  };
  const seal = (lane: Lane) => {
    const chunk = lane.open;
    if (lane.timer) clearTimeout(lane.timer);
    lane.timer = undefined;
    lane.open = undefined;
    if (!chunk || chunk.entries.length === 0) return;
    const d: Delivery = {
      webhookId: webhookIdOf(
        def.id,
        chunk.entries.map((e) => e.item.id),
      ),
      attempt: 0,
      items: chunk.entries.map((e) => e.item),
      meta: chunk.entries.map((e) => e.meta),
    };
    lane.chain = lane.chain
      .then(() => attempt(d))
      .then(chunk.resolve, chunk.reject)
      .finally(() => {
        lane.held -= chunk.entries.length;
      });
  };
  const enqueue = (lane: Lane, entries: Entry[]): Promise<void> => {
    const waits = new Set<Promise<void>>();
    for (const e of entries) {
      if (lane.open && lane.open.bytes + e.bytes > MAX_BODY_BYTES - 64) seal(lane);
      if (!lane.open) lane.open = newChunk();
      lane.open.entries.push(e);
      lane.open.bytes += e.bytes + 1;
      lane.held++;
      waits.add(lane.open.done);
      if (lane.open.entries.length >= maxEvents()) seal(lane);
    }
    if (lane.open) {
      const wait = maxWaitMs();
      if (wait === 0) seal(lane);
      else if (!lane.timer) lane.timer = setTimeout(() => seal(lane), wait);
    }
    return Promise.all(waits).then(() => {});
  };

  const metaOf = (m: IncomingMessage, src: Record<string, unknown>): ItemMeta => ({
    key: m.key ?? '',
    topic: m.topic,
    profileId: typeof src.profileId === 'string' ? src.profileId : '',
    segmentId: typeof src.segmentId === 'string' ? src.segmentId : '',
    segmentVersion: typeof src.segmentVersion === 'number' ? src.segmentVersion : 0,
    epoch: typeof src.epoch === 'number' ? src.epoch : 0,
    producedAt: m.timestamp,
  });

  const handler = async (batch: { topic: string; partition: number; messages: IncomingMessage[] }) => {
    const d = def;
    const entries: Entry[] = [];
    const refused: Array<{ entry: Entry; reason: string }> = [];
    const keyPrefix = `${d.workspaceId}:`;
    for (const m of batch.messages) {
      // messages from before the destination existed are not its (a new group reads from the start)
      if (m.timestamp < createdAtMs || !m.value || m.headers[REPLAY_HEADER]) continue;
      if (!m.key?.startsWith(keyPrefix)) continue;
      let src: Record<string, unknown>;
      try {
        src = JSON.parse(m.value.toString('utf8')) as Record<string, unknown>;
      } catch {
        continue; // malformed messages are the processor's to dead-letter, not ours
      }
      if (src === null || typeof src !== 'object' || src.workspaceId !== d.workspaceId) continue;
      let item: DeliveryItem;
      if (d.source.kind === 'events') {
        try {
          if (!passesFilter(d.source.filter, src)) continue;
        } catch (err) {
          log.warn({ err: errorMessage(err) }, 'destination_filter_failed');
          continue;
        }
        item = {
          id: String(src.messageId ?? `${m.topic}/${m.partition}/${m.offset}`),
          type: 'event',
          timestamp: String(src.timestamp ?? new Date(m.timestamp).toISOString()),
          data: undefined,
        };
      } else {
        if (d.source.segmentIds && !d.source.segmentIds.includes(String(src.segmentId))) continue;
        item = {
          id: `${String(src.segmentId)}:${String(src.profileId)}:${String(src.epoch)}`,
          type: 'segment_change',
          timestamp: String(src.occurredAt ?? new Date(m.timestamp).toISOString()),
          data: undefined,
        };
      }
      const meta = metaOf(m, src);
      try {
        item.data = await applyMapping(d.mapping, src);
      } catch (err) {
        if (!(err instanceof DestinationError)) throw err;
        refused.push({
          entry: { item: { ...item, data: null }, meta, bytes: 0 },
          reason: `mapping: ${err.message}`,
        });
        continue;
      }
      entries.push({ item, meta, bytes: Buffer.byteLength(JSON.stringify(item)) });
    }
    // a mapping that cannot map an event will not map it next time either: dead letters now
    for (const r of refused)
      await deadLetter(
        {
          webhookId: webhookIdOf(d.id, [r.entry.item.id]),
          attempt: 0,
          items: [r.entry.item],
          meta: [r.entry.meta],
        },
        r.reason,
        0,
      );
    if (entries.length === 0) return undefined;
    const lane = laneOf(batch.topic, batch.partition);
    const effects = enqueue(lane, entries);
    // bounded: past the window, wait for what is under way before taking more
    while (lane.held >= o.inFlightItems && !stopping) {
      const chain = lane.chain;
      await chain.catch(() => {});
      if (lane.chain === chain) break;
    }
    return { effects };
  };

  const consumer = superviseConsumer({
    kafka: o.kafka,
    admin: o.admin,
    topics: o.topicSpecs,
    consumer: {
      groupId: destinationGroup(o.topicPrefix, def.id),
      topics: o.topics.sources,
      fromBeginning: true,
      maxBatchSize: 500,
      concurrency: o.partitions,
    },
    handler,
    log: log.child({ consumer: 'destination' }),
  });

  // ---- the retry poller ----
  let pollTimer: NodeJS.Timeout | undefined;
  let polling: Promise<void> = Promise.resolve();
  /** Retries claimed per round, tried one after the other. */
  const RETRY_CLAIM = 16;
  const poll = async () => {
    let full = false;
    try {
      // the lease covers the whole round (each attempt has its deadline), so no other
      // worker takes an entry this one still holds
      const leaseMs = RETRY_CLAIM * timeoutMs() + 30_000;
      // nothing is claimed while the circuit is open: it would only be parked again
      const due = breaker.blocked(o.now()) ? [] : await retries.claim(o.now(), RETRY_CLAIM, leaseMs);
      full = due.length === RETRY_CLAIM;
      // sequentially, so a destination's retries go in the order they fell due
      for (const [i, { member, delivery }] of due.entries()) {
        if (stopping) {
          // a stopping worker gives back what it claimed and did not try, due at once,
          // rather than leaving it to its lease
          const rest = due.slice(i);
          await Promise.all(
            rest.map((r) => retries.finish(r.member, { delivery: r.delivery, dueAt: o.now() })),
          );
          break;
        }
        await attempt(delivery, member);
      }
    } catch (err) {
      if (!stopping) log.warn({ err: errorMessage(err) }, 'destination_retry_poll_failed');
    }
    // a backlog (after an outage) drains round after round while the circuit is closed
    if (!stopping) schedule(full && breaker.current === 'closed' ? 0 : o.retryPollMs);
  };
  const schedule = (ms: number) => {
    pollTimer = setTimeout(() => {
      polling = poll();
    }, ms);
  };
  schedule(o.retryPollMs);

  return {
    id: def.id,
    started: consumer.started,
    update(next) {
      if (next.rateLimit?.perSecond !== def.rateLimit?.perSecond)
        bucket = next.rateLimit ? new TokenBucket(next.rateLimit.perSecond, o.now()) : undefined;
      def = next;
    },
    breakerState: () => breaker.current,
    async stop() {
      // what is batched goes now, so the consumer's last commit can include it
      for (const lane of lanes.values()) seal(lane);
      await consumer.stop();
      stopping = true;
      if (pollTimer) clearTimeout(pollTimer);
      await Promise.race([polling, realSleep(timeoutMs() + 1000)]);
    },
  };
}
