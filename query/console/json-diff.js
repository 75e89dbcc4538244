// The audit log's before/after as a list of changed fields: both JSON values are flattened to
// paths (`webhook.url`, `nodes[1].next`, `rule.and[0]["=="][1]`) and compared leaf by leaf.
// Plain JS (served as is); json-diff.test.ts checks it in Node.

const IDENT = /^[A-Za-z_$][\w$]*$/;

/** `prefix` + key as a readable path: dots for plain names, brackets for indexes and the rest. */
function join(prefix, key, inArray) {
  if (inArray) return `${prefix}[${key}]`;
  if (IDENT.test(key)) return prefix ? `${prefix}.${key}` : key;
  return `${prefix}[${JSON.stringify(key)}]`;
}

/** Leaves of `v` by path, in document order; an empty object or array is a leaf itself. */
export function flatten(v, prefix = '', out = new Map()) {
  if (v !== null && typeof v === 'object' && Object.keys(v).length > 0) {
    const arr = Array.isArray(v);
    for (const [k, x] of Object.entries(v)) flatten(x, join(prefix, k, arr), out);
  } else out.set(prefix === '' ? '(value)' : prefix, v);
  return out;
}

/** A leaf as text: strings quoted (so "1" and 1 differ on screen), nothing as ''. */
export const show = (v) => (v === undefined ? '' : JSON.stringify(v));

const absent = (v) => v === null || v === undefined || v === '';

/**
 * Rows `{path, kind, before, after}` (`kind`: added, removed, changed, same), in the order
 * the fields appear in `before`, then the ones only `after` has. A missing side (a create
 * or a delete) makes every field added or removed.
 */
export function diff(before, after) {
  const b = absent(before) ? new Map() : flatten(before);
  const a = absent(after) ? new Map() : flatten(after);
  const rows = [];
  for (const [path, bv] of b) {
    if (!a.has(path)) rows.push({ path, kind: 'removed', before: show(bv), after: '' });
    else {
      const av = a.get(path);
      const same = show(av) === show(bv);
      rows.push({ path, kind: same ? 'same' : 'changed', before: show(bv), after: show(av) });
    }
  }
  for (const [path, av] of a)
    if (!b.has(path)) rows.push({ path, kind: 'added', before: '', after: show(av) });
  return rows;
}

/** Counts of each kind, e.g. {changed: 2, added: 1, removed: 0, same: 9}. */
export function counts(rows) {
  const c = { changed: 0, added: 0, removed: 0, same: 0 };
  for (const r of rows) c[r.kind]++;
  return c;
}
