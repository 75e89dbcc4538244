// Trait operations (`context.traitOps` of an identify): changes the processor applies
// atomically with the event instead of setting a value (profiles/apply-event.lua):
// `{increment: {trait: number}, add: {trait: [string]}, remove: {trait: [string]}}`.
// Ingest refuses malformed ones with a 400 naming the field; the processor drops what
// would still be malformed (events produced by other means).

/** At most this many operations per event. */
export const MAX_TRAIT_OPS = 50;
/** An increment is at most this large (either sign). */
export const MAX_INCREMENT = 1e12;
/** A set member is a string of 1 to this many characters. */
export const MAX_SET_MEMBER = 256;

const isPlain = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** Why `raw` is not a valid `context.traitOps` (a suffix such as `.increment.score: …`); undefined if it is. */
export function traitOpsError(
  raw: unknown,
  type: string,
  keyKind: 'server' | 'client' | undefined,
): string | undefined {
  if (type !== 'identify') return ': only an identify carries trait operations';
  if (keyKind === 'client') return ': a client (public) write key may not change traits by operations';
  if (!isPlain(raw)) return ': an object {increment, add, remove}';
  let count = 0;
  for (const [op, byTrait] of Object.entries(raw)) {
    if (op !== 'increment' && op !== 'add' && op !== 'remove')
      return `.${op}: not an operation (increment, add, remove)`;
    if (!isPlain(byTrait)) return `.${op}: an object of trait → ${op === 'increment' ? 'number' : 'strings'}`;
    for (const [trait, v] of Object.entries(byTrait)) {
      if (trait.length === 0 || trait.length > 256) return `.${op}: trait names of 1 to 256 characters`;
      if (op === 'increment') {
        if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > MAX_INCREMENT)
          return `.increment.${trait}: a finite number of at most ${MAX_INCREMENT} in size`;
        count++;
      } else {
        const members = Array.isArray(v) ? v : [v];
        for (const m of members)
          if (typeof m !== 'string' || m.length === 0 || m.length > MAX_SET_MEMBER)
            return `.${op}.${trait}: strings of 1 to ${MAX_SET_MEMBER} characters`;
        count += members.length;
      }
    }
  }
  return count > MAX_TRAIT_OPS ? `: ${count} operations, over the limit of ${MAX_TRAIT_OPS}` : undefined;
}
