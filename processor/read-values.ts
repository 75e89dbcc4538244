// Reads the computed traits and lead scores that segment rules read (`computed.<name>`,
// `scores.<name>`) for the profiles about to be evaluated: one pipelined round trip per
// batch, and none when no affected segment reads them. The reads and their decoding are
// the profile model's (profiles/values.ts); this picks what the segments need.
import type { ProfileState } from '../profiles/apply-event.ts';
import {
  type ComputedValues,
  hashReplies,
  queueValueReads,
  takeValues,
  type ValueReads,
} from '../profiles/values.ts';
import type { Redis } from '../runtime/redis.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import type { ComputedRegistry } from './computed-registry.ts';
import type { CompiledSegment } from './segment-registry.ts';

export interface ProfileValues extends ComputedValues {
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
  const pending: Array<{ i: number; reads: ValueReads; state: ProfileState }> = [];
  opts.list.forEach(({ ws, state, segments }, i) => {
    const computedNames = new Set<string>();
    const scoreNames = new Set<string>();
    for (const s of segments) {
      for (const n of s.rule.computed) computedNames.add(n);
      for (const n of s.rule.scores) scoreNames.add(n);
    }
    if (computedNames.size === 0 && scoreNames.size === 0) return;
    const w = opts.registry.forWorkspace(ws);
    const reads: ValueReads = {
      traits: w.traits.filter((t) => computedNames.has('*') || computedNames.has(t.def.name)),
      scores: w.scores.filter((s) => scoreNames.has('*') || scoreNames.has(s.def.name)),
    };
    pipe ??= opts.redis.pipeline();
    queueValueReads(pipe, workspaceKeys(opts.prefix, ws), state.profileId, reads);
    pending.push({ i, reads, state });
  });
  if (!pipe) return out;
  const next = hashReplies((await pipe.exec()) ?? []);
  for (const p of pending) {
    const values: ProfileValues = { computed: {}, scores: {}, nextDeadline: null };
    values.nextDeadline = takeValues(next, p.reads, p.state.traits, opts.nowMs, values);
    out[p.i] = values;
  }
  return out;
}
