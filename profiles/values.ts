// A profile's computed traits and lead scores, evaluated at `nowMs` from what the processor
// keeps in Redis (apply-event.lua: one hash of buckets per computed trait, one hash of
// decayed score counters). The processor reads them for the segments it evaluates
// (processor/read-values.ts), the query service to answer a profile or a preview: both
// queue the same reads and decode the replies the same way.
import type { DefinitionStore } from '../runtime/definitions.ts';
import type { Redis } from '../runtime/redis.ts';
import {
  type CompiledComputedTrait,
  type ComputedTraitDefinition,
  compileComputedTrait,
  computedDeadline,
  computedValue,
} from '../schemas/computed-trait.ts';
import {
  type CompiledLeadScore,
  compileLeadScore,
  type LeadScoreDefinition,
  scoreRecheckAt,
  scoreValue,
} from '../schemas/lead-score.ts';
import { type WorkspaceKeys, workspaceKeys } from '../schemas/redis-keys.ts';

export interface ComputedValues {
  /** Computed trait name → value (a count is 0 and the other kinds null without data in the window). */
  computed: Record<string, unknown>;
  /** Lead score name → points now. */
  scores: Record<string, number>;
}

/** The values to read of a profile. */
export interface ValueReads {
  traits: readonly CompiledComputedTrait[];
  scores: readonly CompiledLeadScore[];
}

type Pipe = ReturnType<Redis['pipeline']>;

/** Queues the reads of one profile's values: each computed trait's buckets, then the score counters (when scores are read). */
export function queueValueReads(pipe: Pipe, keys: WorkspaceKeys, profileId: string, reads: ValueReads): void {
  for (const t of reads.traits) pipe.hgetall(keys.profileAggregate(profileId, t.storageId));
  if (reads.scores.length > 0) pipe.hgetall(keys.profileScoreCounters(profileId));
}

/** The replies of a pipeline's hashes, one per call, in order (an error reply throws). */
export function hashReplies(replies: Array<[Error | null, unknown]>): () => Record<string, string> {
  let r = 0;
  return () => {
    const [err, v] = replies[r++] ?? [null, {}];
    if (err) throw err;
    return (v ?? {}) as Record<string, string>;
  };
}

/**
 * Decodes the replies queueValueReads queued for one profile into `out` (`traits`: the
 * profile's, which trait rules of scores read); answers when time alone next changes one
 * of these values (a windowed trait's oldest bucket leaving its window, the next look at a
 * decaying score), or null.
 */
export function takeValues(
  next: () => Record<string, string>,
  reads: ValueReads,
  traits: Record<string, unknown>,
  nowMs: number,
  out: ComputedValues,
): number | null {
  let deadline: number | null = null;
  for (const t of reads.traits) {
    const fields = next();
    out.computed[t.def.name] = computedValue(t, fields, nowMs);
    const d = computedDeadline(t, fields, nowMs);
    if (d !== null && (deadline === null || d < deadline)) deadline = d;
  }
  const counters = reads.scores.length > 0 ? next() : {};
  for (const s of reads.scores) {
    out.scores[s.def.name] = scoreValue(s, counters, traits, nowMs);
    const d = scoreRecheckAt(s, counters, nowMs);
    if (d !== null && (deadline === null || d < deadline)) deadline = d;
  }
  return deadline;
}

/** One profile's values, with the workspace's definitions read from the store. */
export async function readComputed(opts: {
  redis: Redis;
  defs: DefinitionStore;
  prefix: string;
  workspaceId: string;
  profileId: string;
  traits: Record<string, unknown>;
  nowMs: number;
}): Promise<ComputedValues> {
  const [traitDefs, scoreDefs] = await Promise.all([
    opts.defs.list('computedTraits', opts.workspaceId),
    opts.defs.list('scores', opts.workspaceId),
  ]);
  const [values] = await readComputedMany({
    ...opts,
    traitDefs,
    scoreDefs,
    profiles: [{ id: opts.profileId, traits: opts.traits }],
  });
  return values!;
}

/** Many profiles' values in one pipelined round trip, for definitions already listed. */
export async function readComputedMany(opts: {
  redis: Redis;
  prefix: string;
  workspaceId: string;
  traitDefs: readonly ComputedTraitDefinition[];
  scoreDefs: readonly LeadScoreDefinition[];
  profiles: ReadonlyArray<{ id: string; traits: Record<string, unknown> }>;
  nowMs: number;
}): Promise<ComputedValues[]> {
  // null-prototype maps keep any name harmless (names are unique per kind)
  const empty = (): ComputedValues => ({
    computed: Object.create(null) as Record<string, unknown>,
    scores: Object.create(null) as Record<string, number>,
  });
  if (opts.traitDefs.length === 0 && opts.scoreDefs.length === 0) return opts.profiles.map(empty);
  const k = workspaceKeys(opts.prefix, opts.workspaceId);
  const reads: ValueReads = {
    traits: opts.traitDefs.map(compileComputedTrait),
    scores: opts.scoreDefs.map(compileLeadScore),
  };
  const pipe = opts.redis.pipeline();
  for (const p of opts.profiles) queueValueReads(pipe, k, p.id, reads);
  const next = hashReplies((await pipe.exec()) ?? []);
  return opts.profiles.map((p) => {
    const out = empty();
    takeValues(next, reads, p.traits, opts.nowMs, out);
    return out;
  });
}
