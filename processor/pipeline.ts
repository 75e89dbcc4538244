// The processor's batch pipeline, one step a file in ./pipeline/. Order matters:
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
//
// A batch:                                            named output
//   parseBatch          pipeline/parse-batch.ts         BatchEvents { events, dead }
//   applyEvents         pipeline/apply-events.ts        Applied { plans, results }
//   latestStates        pipeline/final-states.ts        BatchProfiles { latest, identity }
//   finalStates         pipeline/final-states.ts        FinalStates { items, identity }
//   journeySignals      pipeline/journey-signals.ts     the signals, published beside the rest
//   settle, then recheck until nothing moves (below)
//   the dead letters published last
// Settling profiles (a batch's, or reevaluate's):
//   selectSegments      pipeline/select-segments.ts     Selected[] (profile, segments to evaluate)
//   readProfileValues   read-values.ts                  the computed traits and scores they read
//   decideTransitions   pipeline/decide-transitions.ts  Decisions { changes, schedule }
//   publishChanges      pipeline/publish-changes.ts     (acknowledged)
//   recordMemberships   pipeline/record-memberships.ts  the Recheck[] that raced another writer
//   readAgain           pipeline/read-states.ts         their fresh SettleItem[], for the next round

import { type ApplyOptions, defineApplyEvent, type ProfileState } from '../profiles/apply-event.ts';
import type { Batch, BatchHandler, Producer } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import type { IdentityChange } from '../schemas/identity-change.ts';
import { globalKeys } from '../schemas/redis-keys.ts';
import type { Topics } from '../schemas/topics.ts';
import type { ComputedRegistry } from './computed-registry.ts';
import type { ErasedFilter } from './drop-erased.ts';
import { applyEvents } from './pipeline/apply-events.ts';
import { decideTransitions } from './pipeline/decide-transitions.ts';
import { finalStates, latestStates } from './pipeline/final-states.ts';
import { journeySignals } from './pipeline/journey-signals.ts';
import { parseBatch } from './pipeline/parse-batch.ts';
import { publishChanges } from './pipeline/publish-changes.ts';
import { readAgain, readStates } from './pipeline/read-states.ts';
import { defineRecordMembership, recordMemberships } from './pipeline/record-memberships.ts';
import { selectSegments } from './pipeline/select-segments.ts';
import { publish, type SettleItem } from './pipeline/shared.ts';
import { readProfileValues } from './read-values.ts';
import type { SegmentRegistry, Touched } from './segment-registry.ts';

/** Re-evaluation rounds after a recorded transition that raced another writer of the profile. */
const MAX_RECHECKS = 4;

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
  defineRecordMembership(deps.redis);
  const now = deps.now ?? (() => new Date());
  const timers = globalKeys(deps.redisPrefix).timers;

  // the trace context of events whose client sent one (schemas/trace.ts), by messageId, for
  // the segment changes they cause; filled and emptied per batch
  const traces = new Map<string, string>();

  /**
   * Evaluates each profile's final state, publishes the transitions, records them, and
   * schedules the next time-driven evaluation of profiles with windowed rules. Answers the
   * profiles to evaluate again.
   */
  const settle = async (
    items: SettleItem[],
    at: Date,
    identity: IdentityChange[] = [],
  ): Promise<SettleItem[]> => {
    const selected = selectSegments(deps.registry, items);
    // computed traits and scores, for the segments that read them (no read otherwise)
    const values = deps.computed
      ? await readProfileValues({
          redis: deps.redis,
          prefix: deps.redisPrefix,
          registry: deps.computed,
          list: selected,
          nowMs: at.getTime(),
        })
      : [];
    const decisions = decideTransitions(selected, values, at);
    // publish, then record (see the top of this file for why in this order)
    await publishChanges(deps, decisions.changes, identity, traces);
    const stale = await recordMemberships(deps, timers, decisions, at);
    if (stale.length === 0) return [];
    return readAgain(deps, stale);
  };

  /** Evaluates profiles whose membership moved again, on their fresh state, until nothing moves. */
  const recheck = async (pending: SettleItem[], at: Date) => {
    for (let round = 0; pending.length > 0 && round < MAX_RECHECKS; round++)
      pending = await settle(pending, at);
  };

  const handleEvents = async (batch: Batch, traced: string[]): Promise<void> => {
    const { events, dead } = await parseBatch(deps, batch, traces, traced);
    const at = now();
    // identity + profile + counted event times: one round trip per batch
    const applied = await applyEvents(deps, events, at);
    const final = await finalStates(deps, latestStates(deps, events, applied, at));
    const signals = journeySignals(deps, events, applied);
    const signalled = signals.length > 0 ? publish(deps, deps.topics.journeySignals, signals) : undefined;
    // segment transitions (merge before evaluation: rules read the merged state)
    await recheck(await settle(final.items, at, final.identity), at);
    await signalled;
    if (dead.length > 0) await publish(deps, deps.topics.deadLetter, dead);
  };

  /** The batch, then its events' trace contexts forgotten. */
  const handleBatch: BatchHandler = async (batch) => {
    const traced: string[] = [];
    try {
      return await handleEvents(batch, traced);
    } finally {
      for (const id of traced) traces.delete(id);
    }
  };

  const reevaluate: Processor['reevaluate'] = async (members, touched = { windows: true }) => {
    if (members.length === 0) return;
    const at = now();
    const states = await readStates(
      deps,
      members.map((m) => ({ ws: m.workspaceId, profileId: m.profileId })),
    );
    const items: Array<{ ws: string; state: ProfileState; event: null; touched: Touched }> = [];
    states.forEach((state, i) => {
      if (state) items.push({ ws: members[i]!.workspaceId, state, event: null, touched });
    });
    await recheck(await settle(items, at), at);
  };

  return { handleBatch, reevaluate };
}
