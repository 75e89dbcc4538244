// The computed traits and lead scores of profiles, evaluated at `nowMs` from what the
// processor keeps in Redis (apply-event.lua) and the workspace's current definitions.
import type { DefinitionStore } from '../runtime/definitions.ts';
import type { Redis } from '../runtime/redis.ts';
import {
  type ComputedTraitDefinition,
  compileComputedTrait,
  computedValue,
} from '../schemas/computed-trait.ts';
import { compileLeadScore, type LeadScoreDefinition, scoreValue } from '../schemas/lead-score.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';

export interface ComputedValues {
  /** Computed trait name → value (a count is 0 and the other kinds null without data in the window). */
  computed: Record<string, unknown>;
  /** Lead score name → points now. */
  scores: Record<string, number>;
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
  const traits = opts.traitDefs.map(compileComputedTrait);
  const scores = opts.scoreDefs.map(compileLeadScore);
  const pipe = opts.redis.pipeline();
  for (const p of opts.profiles) {
    for (const t of traits) pipe.hgetall(k.profileAggregate(p.id, t.storageId));
    pipe.hgetall(k.profileScoreCounters(p.id));
  }
  const res = (await pipe.exec()) ?? [];
  let r = 0;
  const next = () => {
    const [err, v] = res[r++] ?? [null, {}];
    if (err) throw err;
    return (v ?? {}) as Record<string, string>;
  };
  return opts.profiles.map((p) => {
    const out = empty();
    for (const t of traits) out.computed[t.def.name] = computedValue(t, next(), opts.nowMs);
    const counters = next();
    for (const s of scores) out.scores[s.def.name] = scoreValue(s, counters, p.traits, opts.nowMs);
    return out;
  });
}
