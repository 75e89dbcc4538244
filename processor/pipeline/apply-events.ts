// Step 2: identity + profile + counted event times, pipelined: one round trip per batch,
// one script call per workspace chunk (apply-event.lua), events in order.

import {
  type ConditionPlan,
  type ProfileState,
  parseApplyResults,
  queueApplyEvents,
} from '../../profiles/apply-event.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import type { ProcessorDeps } from '../pipeline.ts';
import { hasSegments, tagOf } from './shared.ts';

/** Events per script call: enough to amortise the call, small enough to keep Redis responsive. */
const APPLY_CHUNK = 100;

export interface Applied {
  /** Each event's counted conditions and, with computed traits, aggregates and score counters. */
  plans: ConditionPlan[];
  /**
   * Each event's resulting state, in event order (null: none), with its script call's error.
   * A state is complete only for the last event of its profile in a call (ProfileState.complete).
   */
  results: Array<[Error | null, ProfileState | null]>;
}

export async function applyEvents(
  deps: Pick<ProcessorDeps, 'redis' | 'redisPrefix' | 'registry' | 'computed' | 'apply'>,
  events: NormalizedEvent[],
  at: Date,
): Promise<Applied> {
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
      tagOf(deps.redisPrefix, ws),
      chunk.map((i) => events[i]!),
      deps.apply,
      chunk.map((i) => plans[i]!),
      at.getTime(),
      hasSegments(deps.registry, ws) ? 'all' : 'changed',
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
  return { plans, results };
}
