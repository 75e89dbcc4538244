// Reads the computed traits and lead scores that segment rules read (`computed.<name>`,
// `scores.<name>`) for the profiles about to be evaluated: one pipelined round trip per
// batch, and none when no affected segment reads them.

import type { ProfileState } from '../profiles/apply-event.ts';
import type { Redis } from '../runtime/redis.ts';
import { computedDeadline, computedValue } from '../schemas/computed-trait.ts';
import { scoreRecheckAt, scoreValue } from '../schemas/lead-score.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import type { ComputedRegistry } from './computed-registry.ts';
import type { CompiledSegment } from './segment-registry.ts';

export interface ProfileValues {
  computed: Record<string, unknown>;
  scores: Record<string, number>;
  /**
   * When time alone next changes a value these segments read: a windowed computed trait's
   * oldest bucket leaving its window, or the next look at a decaying score.
   */
  nextDeadline: number | null;
}

/** Values for each profile whose segments read any (undefined for the others). */
export async function readProfileValues(opts: {
  redis: Redis;
  prefix: string;
  registry: ComputedRegistry;
  list: ReadonlyArray<{ ws: string; state: ProfileState; segments: readonly CompiledSegment[] }>;
  nowMs: number;
}): Promise<Array<ProfileValues | undefined>> {
  const out: Array<ProfileValues | undefined> = new Array(opts.list.length);
  let pipe: ReturnType<Redis['pipeline']> | undefined;
  const pending: Array<{
    i: number;
    traits: ReturnType<ComputedRegistry['forWorkspace']>['traits'];
    scores: ReturnType<ComputedRegistry['forWorkspace']>['scores'];
    state: ProfileState;
  }> = [];
  opts.list.forEach(({ ws, state, segments }, i) => {
    const computedNames = new Set<string>();
    const scoreNames = new Set<string>();
    for (const s of segments) {
      for (const n of s.rule.computed) computedNames.add(n);
      for (const n of s.rule.scores) scoreNames.add(n);
    }
    if (computedNames.size === 0 && scoreNames.size === 0) return;
    const w = opts.registry.forWorkspace(ws);
    const traits = w.traits.filter((t) => computedNames.has('*') || computedNames.has(t.def.name));
    const scores = w.scores.filter((s) => scoreNames.has('*') || scoreNames.has(s.def.name));
    const keys = workspaceKeys(opts.prefix, ws);
    pipe ??= opts.redis.pipeline();
    for (const t of traits) pipe.hgetall(keys.profileAggregate(state.profileId, t.storageId));
    if (scores.length > 0) pipe.hgetall(keys.profileScoreCounters(state.profileId));
    pending.push({ i, traits, scores, state });
  });
  if (!pipe) return out;
  const replies = (await pipe.exec()) ?? [];
  let r = 0;
  const next = () => {
    const [err, v] = replies[r++] ?? [null, {}];
    if (err) throw err;
    return (v ?? {}) as Record<string, string>;
  };
  for (const p of pending) {
    const values: ProfileValues = { computed: {}, scores: {}, nextDeadline: null };
    for (const t of p.traits) {
      const fields = next();
      values.computed[t.def.name] = computedValue(t, fields, opts.nowMs);
      const d = computedDeadline(t, fields, opts.nowMs);
      if (d !== null && (values.nextDeadline === null || d < values.nextDeadline)) values.nextDeadline = d;
    }
    const counters = p.scores.length > 0 ? next() : {};
    for (const s of p.scores) {
      values.scores[s.def.name] = scoreValue(s, counters, p.state.traits, opts.nowMs);
      const d = scoreRecheckAt(s, counters, opts.nowMs);
      if (d !== null && (values.nextDeadline === null || d < values.nextDeadline)) values.nextDeadline = d;
    }
    out[p.i] = values;
  }
  return out;
}
