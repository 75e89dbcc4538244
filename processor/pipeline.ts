// The processor's batch pipeline. Order matters:
//   parse → apply to identity graph + profile (Redis, one Lua call per event, pipelined)
//   → evaluate segments on each touched profile's final state in this batch
//   → publish transitions to cdp.segment-changes (acknowledged)
//   → record memberships (compare-and-set; a profile another batch changed meanwhile is
//     evaluated again)
// Publishing before recording means a crash in between is repaired on redelivery: the
// event is a duplicate by then, but the profile is still re-evaluated, the membership
// still shows the old epoch, and the same transition (same epoch) is published again,
// which activation recognises. Identity changes (cdp.identity) are published in the same
// step; a replay publishes the profile's current identifiers again (idempotent by version).
// Offsets are committed by the runner after all of this.

import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import { deadLetterOf } from '../runtime/kafka/dead-letter.ts';
import type { BatchHandler, OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { sendOrDeadLetter } from '../runtime/kafka/send-bounded.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import { type IdentityChange, serializeIdentityChange } from '../schemas/identity-change.ts';
import { journeySignalsOf } from '../schemas/journey.ts';
import type { JourneySignal } from '../schemas/journey-signal.ts';
import { globalKeys, workspaceKeys } from '../schemas/redis-keys.ts';
import { type SegmentChange, serializeSegmentChange } from '../schemas/segment-change.ts';
import { profileKey, REPLAY_HEADER, type Topics } from '../schemas/topics.ts';
import { childTraceparent, TRACE_HEADER, validTraceparent } from '../schemas/trace.ts';
import {
  type ApplyOptions,
  defineApplyEvent,
  type ProfileState,
  parseApplyResult,
  parseApplyResults,
  queueApplyEvents,
  queueReadProfile,
  traitOpNames,
  traitsOf,
} from './apply-event.ts';
import type { ComputedRegistry } from './computed-registry.ts';
import type { ErasedFilter } from './drop-erased.ts';
import { evaluateSegments } from './evaluate-segments.ts';
import { parseEvent } from './parse-event.ts';
import { readProfileValues } from './read-values.ts';
import type { SegmentRegistry, Touched } from './segment-registry.ts';
import { timerMember } from './timers.ts';

interface SettleItem {
  ws: string;
  state: ProfileState;
  event: NormalizedEvent | null;
  touched: Touched;
  /** Evaluate everything the profile holds (see isWide), whatever its final state says. */
  wide?: boolean;
}

/** A new, merged or replayed profile: the event does not say what changed. */
const isWide = (s: ProfileState) => s.created || s.duplicate || s.merged.length > 0;

/** A profile to evaluate again after its membership moved: what was evaluated, and why. */
interface Recheck {
  ws: string;
  profileId: string;
  event: NormalizedEvent | null;
  touched: Touched;
}

/** Re-evaluation rounds after a recorded transition that raced another writer of the profile. */
const MAX_RECHECKS = 4;

/** Events per script call: enough to amortise the call, small enough to keep Redis responsive. */
const APPLY_CHUNK = 100;

const RECORD = readFileSync(new URL('./record-membership.lua', import.meta.url), 'utf8');

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** args: revision read, nowMs, then (segmentId, fromEpoch) pairs; see record-membership.lua */
    cdpRecordMembership(tag: string, pid: string, ...args: (string | number)[]): Result<number[], Context>;
  }
}

export interface ProcessorDeps {
  redis: Redis;
  producer: Producer;
  topics: Topics;
  registry: SegmentRegistry;
  /** Computed traits and lead scores, updated in the same script call as the event. */
  computed?: ComputedRegistry;
  redisPrefix: string;
  apply: ApplyOptions;
  log: Logger;
  now?: () => Date;
  /** Drops events received before an erasure of their userId or anonymousId. */
  erased?: ErasedFilter;
  /**
   * False for a rebuild from history: memberships are recorded but no segment change is
   * published (campaigns must not fire again for what already happened).
   */
  publishSegmentChanges?: boolean;
  /**
   * `${workspaceId}\u0000${event}` of the events journeys react to (schemas/journey.ts
   * journeyEventNames); such an event of a resolved person is published to cdp.journey-signals.
   */
  journeyEvents?: () => ReadonlySet<string>;
}

export interface Processor {
  /** Handles one batch of cdp.events. */
  handleBatch: BatchHandler;
  /**
   * Re-evaluates profiles without an event: publishes and records what changed. By default
   * the windowed segments (timers); `{ all: true }` for a backfill.
   */
  reevaluate(members: Array<{ workspaceId: string; profileId: string }>, touched?: Touched): Promise<void>;
}

export function createProcessor(deps: ProcessorDeps): Processor {
  defineApplyEvent(deps.redis);
  deps.redis.defineCommand('cdpRecordMembership', { numberOfKeys: 1, lua: RECORD });
  const now = deps.now ?? (() => new Date());
  const timers = globalKeys(deps.redisPrefix).timers;
  // workspaceKeys is memoised (schemas/redis-keys.ts): no cache of our own
  const tagOf = (ws: string) => workspaceKeys(deps.redisPrefix, ws).tag;
  const hasSegments = (ws: string) => deps.registry.forWorkspace(ws).length > 0;
  const publish = (topic: string, messages: OutgoingMessage[]) =>
    sendOrDeadLetter(deps.producer, topic, messages, {
      deadLetterTopic: deps.topics.deadLetter,
      stage: 'processor.publish',
      log: deps.log,
    });

  /** Profiles' current states, in one round trip (null: erased or merged away). */
  const readStates = async (
    list: ReadonlyArray<{ ws: string; profileId: string }>,
  ): Promise<Array<ProfileState | null>> => {
    const pipe = deps.redis.pipeline();
    for (const r of list) queueReadProfile(pipe, tagOf(r.ws), r.profileId);
    const replies = (await pipe.exec()) ?? [];
    return list.map((_, i) => {
      const [err, raw] = replies[i] ?? [null, null];
      if (err) throw err;
      return parseApplyResult(raw);
    });
  };

  // the trace context of events whose client sent one (schemas/trace.ts), by messageId, for
  // the segment changes they cause; filled and emptied per batch
  const traces = new Map<string, string>();

  /**
   * Evaluates each profile's final state, publishes the transitions, records them, and
   * schedules the next time-driven evaluation of profiles with windowed rules.
   */
  const settle = async (
    items: SettleItem[],
    at: Date,
    identity: IdentityChange[] = [],
  ): Promise<SettleItem[]> => {
    const changes: Array<{
      ws: string;
      change: SegmentChange;
      from: number;
      item: Recheck;
      revision: string;
    }> = [];
    const schedule: Array<[number, string]> = [];
    const pending: Array<{
      ws: string;
      state: ProfileState;
      event: NormalizedEvent | null;
      selection: Touched;
      segments: ReturnType<SegmentRegistry['affected']>;
    }> = [];
    for (const input of items) {
      const { ws, state, event, touched } = input;
      // For a new, merged or replayed profile the event does not say what changed: take
      // everything the profile holds (the registry adds what holds on an empty profile).
      const wide = input.wide || isWide(state);
      const selection: Touched = wide
        ? {
            ...touched,
            profile: {
              traits: Object.keys(state.traits),
              conditions: Object.keys(state.times),
              memberOf: Object.keys(state.epochs).filter((id) => (state.epochs[id] ?? 0) % 2 === 1),
            },
          }
        : touched;
      const segments = deps.registry.affected(ws, selection);
      if (segments.length > 0) pending.push({ ws, state, event, selection, segments });
    }
    // computed traits and scores, for the segments that read them (no read otherwise)
    const values = deps.computed
      ? await readProfileValues({
          redis: deps.redis,
          prefix: deps.redisPrefix,
          registry: deps.computed,
          list: pending,
          nowMs: at.getTime(),
        })
      : [];
    for (const [i, { ws, state, event, selection, segments }] of pending.entries()) {
      const item: Recheck = { ws, profileId: state.profileId, event, touched: selection };
      const v = values[i];
      const evaluation = evaluateSegments(
        segments,
        state,
        event as unknown as Record<string, unknown> | null,
        at.getTime(),
        v,
      );
      const { transitions } = evaluation;
      let { nextDeadline } = evaluation;
      if (v?.nextDeadline != null && (nextDeadline === null || v.nextDeadline < nextDeadline))
        nextDeadline = v.nextDeadline;
      if (nextDeadline !== null) schedule.push([nextDeadline, timerMember(ws, state.profileId)]);
      const userEntry = state.identities.find((i) => i.startsWith('user:'));
      for (const t of transitions)
        changes.push({
          ws,
          from: t.fromEpoch,
          item,
          revision: state.revision,
          change: {
            workspaceId: ws,
            profileId: state.profileId,
            segmentId: t.segmentId,
            segmentVersion: t.segmentVersion,
            type: t.type,
            epoch: t.fromEpoch + 1,
            messageId: event?.messageId ?? null,
            occurredAt: at.toISOString(),
            userId: userEntry ? userEntry.slice(5) : null,
            traits: state.traits,
          },
        });
    }
    // publish, then record (see the top of this file for why in this order); every message
    // bounded (a huge profile's traits cut, its identifiers split), and one the broker still
    // refuses as too large dead-lettered instead of failing the batch forever
    const sends: Promise<unknown>[] = [];
    if (changes.length > 0 && deps.publishSegmentChanges !== false)
      sends.push(
        publish(
          deps.topics.segmentChanges,
          changes.map(({ change }) => {
            const trace = change.messageId === null ? undefined : traces.get(change.messageId);
            return {
              key: profileKey(change.workspaceId, change.profileId),
              value: serializeSegmentChange(change),
              ...(trace ? { headers: { [TRACE_HEADER]: childTraceparent(trace) } } : {}),
            };
          }),
        ),
      );
    if (identity.length > 0)
      sends.push(
        publish(
          deps.topics.identity,
          identity.flatMap((c) =>
            serializeIdentityChange(c).map((value) => ({
              key: profileKey(c.workspaceId, c.profileId),
              value,
            })),
          ),
        ),
      );
    await Promise.all(sends);
    if (changes.length === 0 && schedule.length === 0) return [];
    // one compare-and-set call per profile, with every transition decided for it
    const byProfile = new Map<string, { item: Recheck; revision: string; pairs: (string | number)[] }>();
    for (const { change, from, item, revision } of changes) {
      const key = `${item.ws}/${item.profileId}`;
      const entry = byProfile.get(key) ?? { item, revision, pairs: [] };
      byProfile.set(key, entry);
      entry.pairs.push(change.segmentId, from);
    }
    const rec = deps.redis.pipeline();
    for (const { item, revision, pairs } of byProfile.values())
      (rec as unknown as Redis).cdpRecordMembership(
        tagOf(item.ws),
        item.profileId,
        revision,
        at.getTime(),
        ...pairs,
      );
    // LT keeps the earliest: an early firing only re-evaluates and reschedules
    for (const [deadline, member] of schedule) rec.zadd(timers, 'LT', deadline, member);
    const replies = (await rec.exec()) ?? [];
    // A profile whose membership moved while something else changed it since the read is
    // evaluated again on a fresh read: a concurrent batch (another partition) may have
    // decided on the state from before this record (an in_segment dependent, a trait it
    // changed), and the last one to record must see everything. Converges: each round reads
    // after the records it follows. A profile nothing else touched needs no second look.
    const stale: Recheck[] = [];
    [...byProfile.values()].forEach(({ item }, i) => {
      const [err, flags] = replies[i] ?? [null, []];
      if (err) throw err;
      const f = flags as number[];
      const moved = f.slice(0, -1).some((x) => x === 1);
      if (moved && f[f.length - 1] !== 1) stale.push(item);
    });
    if (stale.length === 0) return [];
    const fresh = await readStates(stale);
    const again: SettleItem[] = [];
    stale.forEach((r, i) => {
      const state = fresh[i];
      if (state) again.push({ ws: r.ws, state, event: r.event, touched: r.touched });
    });
    return again;
  };

  /** Evaluates profiles whose membership moved again, on their fresh state, until nothing moves. */
  const recheck = async (pending: SettleItem[], at: Date) => {
    for (let round = 0; pending.length > 0 && round < MAX_RECHECKS; round++)
      pending = await settle(pending, at);
  };

  const tracedOf = new WeakMap<object, string[]>();
  /** The batch, then its events' trace contexts forgotten. */
  const handleBatch: BatchHandler = async (batch, ctx) => {
    try {
      return await handleEvents(batch, ctx);
    } finally {
      for (const id of tracedOf.get(batch) ?? []) traces.delete(id);
    }
  };

  const handleEvents: BatchHandler = async (batch) => {
    const dead: OutgoingMessage[] = [];
    const events: NormalizedEvent[] = [];
    const traced: string[] = [];
    tracedOf.set(batch, traced);
    // events received before an erasure of their ids, still in flight: they would make the
    // erased person again (a cached filter, no Redis call per event; drop-erased.ts)
    await deps.erased?.refresh();
    for (const m of deps.erased?.events(batch.messages) ?? batch.messages) {
      // a history dead letter replayed for the sink: this event was handled when first read
      if (m.headers[REPLAY_HEADER] === 'history') continue;
      const p = parseEvent(m);
      if (p.ok) {
        events.push(p.event);
        const trace = m.headers[TRACE_HEADER] ? validTraceparent(m.headers[TRACE_HEADER]) : undefined;
        if (trace) {
          traces.set(p.event.messageId, trace);
          traced.push(p.event.messageId);
        }
      } else {
        deps.log.warn(
          { topic: m.topic, partition: m.partition, offset: m.offset, reason: p.reason },
          'event_dead_lettered',
        );
        dead.push(deadLetterOf(m, p.reason, 'processor.parse'));
      }
    }

    // 1. identity + profile + counted event times, pipelined: one round trip per batch
    const at = now();
    const computed = deps.computed;
    const plans = events.map((e) => {
      const plan = deps.registry.conditionPlan(e);
      return computed ? computed.extend(e, plan) : plan;
    });
    // one script call per workspace chunk, events in order; results back in event order
    const chunks: number[][] = [];
    const open = new Map<string, number[]>();
    events.forEach((e, i) => {
      let chunk = open.get(e.workspaceId);
      if (!chunk || chunk.length >= APPLY_CHUNK) {
        chunk = [];
        chunks.push(chunk);
        open.set(e.workspaceId, chunk);
      }
      chunk.push(i);
    });
    const pipe = deps.redis.pipeline();
    for (const chunk of chunks) {
      const ws = events[chunk[0]!]!.workspaceId;
      queueApplyEvents(
        pipe,
        tagOf(ws),
        chunk.map((i) => events[i]!),
        deps.apply,
        chunk.map((i) => plans[i]!),
        at.getTime(),
        hasSegments(ws) ? 'all' : 'changed',
      );
    }
    const replies = chunks.length > 0 ? ((await pipe.exec()) ?? []) : [];
    const results: Array<[Error | null, ProfileState | null]> = new Array(events.length);
    replies.forEach(([err, raw], c) => {
      const states = err ? [] : parseApplyResults(raw);
      chunks[c]!.forEach((i, k) => {
        results[i] = [err, states[k] ?? null];
      });
    });

    // 2. the final state of each profile this batch touched
    const latest = new Map<
      string,
      {
        ws: string;
        state: ProfileState;
        event: NormalizedEvent;
        touched: { traits: Set<string>; conditions: Set<string>; computed: Set<string>; scores: Set<string> };
        wide: boolean;
      }
    >();
    const mergedAway = new Set<string>();
    const identity = new Map<string, IdentityChange>();
    results.forEach(([err, state], i) => {
      if (err) throw err;
      const event = events[i]!;
      if (!state) return;
      if (state.identityVersion > 0) {
        const key = `${event.workspaceId}/${state.profileId}`;
        // the latest state of a profile in this batch carries the highest version; its
        // identifiers are read from the profile's final state below
        identity.set(key, {
          workspaceId: event.workspaceId,
          profileId: state.profileId,
          identifiers: [],
          mergedProfileIds: state.merged,
          version: state.identityVersion,
          messageId: event.messageId,
          occurredAt: at.toISOString(),
        });
      }
      for (const m of state.merged) mergedAway.add(`${event.workspaceId}/${m}`);
      for (const c of state.conflicts)
        deps.log.info(
          { workspaceId: event.workspaceId, profileId: state.profileId, identity: c },
          'identity_link_refused',
        );
      // a client key's attempt on a known person, and what the per-profile bounds kept out
      if (state.refused.length > 0)
        deps.log.info(
          {
            workspaceId: event.workspaceId,
            profileId: state.profileId,
            messageId: event.messageId,
            refused: state.refused,
          },
          'client_key_change_refused',
        );
      if (state.limited.length > 0)
        deps.log.info(
          {
            workspaceId: event.workspaceId,
            profileId: state.profileId,
            messageId: event.messageId,
            limited: state.limited,
          },
          'profile_limit_reached',
        );
      // what this profile's events changed in this batch, for choosing the segments to evaluate
      const key = `${event.workspaceId}/${state.profileId}`;
      const touched = latest.get(key)?.touched ?? {
        traits: new Set<string>(),
        conditions: new Set<string>(),
        computed: new Set<string>(),
        scores: new Set<string>(),
      };
      const traitKeys = Object.keys(traitsOf(event));
      for (const t of traitOpNames(event)) traitKeys.push(t);
      for (const t of traitKeys) touched.traits.add(t);
      for (const [c] of plans[i]!.add) touched.conditions.add(c);
      deps.computed?.touchedNames(event.workspaceId, plans[i]!, traitKeys, touched);
      // a creation, merge or replay earlier in the batch widens the evaluation of the
      // profile's final state, even when its last event was an ordinary one
      const wide = (latest.get(key)?.wide ?? false) || isWide(state);
      latest.set(key, { ws: event.workspaceId, state, event, touched, wide });
    });
    for (const k of mergedAway) {
      latest.delete(k);
      identity.delete(k);
    }
    // A workspace without segments gets back only the state of profiles whose identity a
    // call changed. A profile whose state is needed all the same is read now: its identity
    // changed in an earlier call of this batch, or its workspace has had a segment since.
    const unread = [...latest].filter(
      ([k, { ws, state }]) => !state.complete && (identity.has(k) || hasSegments(ws)),
    );
    if (unread.length > 0) {
      const fresh = await readStates(unread.map(([, { ws, state }]) => ({ ws, profileId: state.profileId })));
      unread.forEach(([k, entry], i) => {
        const state = fresh[i];
        // erased or merged away meanwhile: nothing of it left to evaluate or publish
        if (!state) {
          latest.delete(k);
          identity.delete(k);
        } else entry.state = { ...state, created: entry.state.created, duplicate: entry.state.duplicate };
      });
    }
    for (const [k, change] of identity) {
      const final = latest.get(k)?.state;
      if (!final?.complete) throw new Error(`no final state for profile ${k} in this batch`);
      change.identifiers = final.identities;
    }
    for (const [k, { state }] of latest) if (!state.complete) latest.delete(k);

    // journey signals: events journeys react to, with the person they resolved to (the
    // journey runner keys its state by profile); sent beside the segment changes
    const journeyEvents = deps.journeyEvents?.();
    const signals: OutgoingMessage[] = [];
    if (journeyEvents && journeyEvents.size > 0 && deps.publishSegmentChanges !== false)
      results.forEach(([, state], i) => {
        const e = events[i]!;
        if (!state) return;
        for (const s of journeySignalsOf(e, journeyEvents)) {
          const signal: JourneySignal = {
            workspaceId: e.workspaceId,
            profileId: state.profileId,
            messageId: e.messageId,
            event: s.event,
            properties: s.properties,
            timestamp: e.timestamp,
            userId: e.userId,
          };
          signals.push({ key: profileKey(e.workspaceId, state.profileId), value: JSON.stringify(signal) });
        }
      });
    const signalled = signals.length > 0 ? publish(deps.topics.journeySignals, signals) : undefined;

    // 3. segment transitions (merge before evaluation: rules read the merged state)
    await recheck(await settle([...latest.values()], at, [...identity.values()]), at);
    await signalled;
    if (dead.length > 0) await publish(deps.topics.deadLetter, dead);
  };

  const reevaluate: Processor['reevaluate'] = async (members, touched = { windows: true }) => {
    if (members.length === 0) return;
    const at = now();
    const states = await readStates(members.map((m) => ({ ws: m.workspaceId, profileId: m.profileId })));
    const items: Array<{ ws: string; state: ProfileState; event: null; touched: Touched }> = [];
    states.forEach((state, i) => {
      if (state) items.push({ ws: members[i]!.workspaceId, state, event: null, touched });
    });
    await recheck(await settle(items, at), at);
  };

  return { handleBatch, reevaluate };
}
