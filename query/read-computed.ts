// The computed traits and lead scores of one profile, evaluated at `nowMs` from what the
// processor keeps in Redis (apply-event.lua) and the workspace's current definitions.
import type { DefinitionStore } from '../runtime/definitions.ts';
import type { Redis } from '../runtime/redis.ts';
import { compileComputedTrait, computedValue } from '../schemas/computed-trait.ts';
import { compileLeadScore, scoreValue } from '../schemas/lead-score.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';

export interface ComputedValues {
  /** Computed trait name → value (a count is 0 and the other kinds null without data in the window). */
  computed: Record<string, unknown>;
  /** Lead score name → points now. */
  scores: Record<string, number>;
}

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
  const out: ComputedValues = { computed: {}, scores: {} };
  if (traitDefs.length === 0 && scoreDefs.length === 0) return out;
  const k = workspaceKeys(opts.prefix, opts.workspaceId);
  const traits = traitDefs.map(compileComputedTrait);
  const pipe = opts.redis.pipeline();
  for (const t of traits) pipe.hgetall(k.profileAggregate(opts.profileId, t.storageId));
  pipe.hgetall(k.profileScoreCounters(opts.profileId));
  const res = (await pipe.exec()) ?? [];
  const fields = res.map(([err, v]) => {
    if (err) throw err;
    return v as Record<string, string>;
  });
  // names are unique per kind (the API refuses a second one); null-prototype maps keep any name harmless
  out.computed = Object.create(null) as Record<string, unknown>;
  out.scores = Object.create(null) as Record<string, number>;
  traits.forEach((t, i) => {
    out.computed[t.def.name] = computedValue(t, fields[i] ?? {}, opts.nowMs);
  });
  const counters = fields[traits.length] ?? {};
  for (const d of scoreDefs)
    out.scores[d.name] = scoreValue(compileLeadScore(d), counters, opts.traits, opts.nowMs);
  return out;
}
