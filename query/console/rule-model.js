// The segment builder's model: a tree of conditions that converts to the JSON Logic the
// query API takes (DESIGN.md, Segment rules) and back, so a saved segment opens in the
// builder again. No DOM here; query/console/rule-model.test.ts runs it in Node.

/** Comparisons on a trait (and on an event property in event filters). */
export const COMPARE_OPS = [
  ['==', 'is'],
  ['!=', 'is not'],
  ['>', 'greater than'],
  ['>=', 'at least'],
  ['<', 'less than'],
  ['<=', 'at most'],
  ['in_list', 'is one of'],
  ['contains', 'contains'],
  ['exists', 'is set'],
  ['missing', 'is not set'],
];
export const VALUE_TYPES = ['text', 'number', 'boolean'];
/** How an event count is compared with the wanted number. */
export const COUNT_OPS = [
  ['>=', 'at least'],
  ['>', 'more than'],
  ['==', 'exactly'],
  ['<', 'fewer than'],
  ['<=', 'at most'],
];
export const WINDOW_UNITS = [
  ['s', 'seconds'],
  ['m', 'minutes'],
  ['h', 'hours'],
  ['d', 'days'],
];
const SIMPLE = new Set(['==', '!=', '>', '>=', '<', '<=']);
const NO_VALUE = new Set(['exists', 'missing']);

export function newNode(kind) {
  switch (kind) {
    case 'group':
      return { kind: 'group', op: 'and', negate: false, children: [] };
    case 'trait':
      return { kind: 'trait', field: '', op: '==', type: 'text', value: '' };
    case 'event':
      return { kind: 'event', event: '', cmp: '>=', count: '1', window: '7', unit: 'd', filters: [] };
    case 'segment':
      return { kind: 'segment', segmentId: '', member: true };
    case 'filter':
      return { field: '', op: '==', type: 'text', value: '' };
    default:
      throw new Error(`unknown condition kind ${kind}`);
  }
}

function typed(raw, type) {
  if (type === 'number') return Number(raw);
  if (type === 'boolean') return raw === 'true';
  return String(raw);
}

function compare(variable, c) {
  switch (c.op) {
    case 'in_list':
      return {
        in: [
          variable,
          String(c.value)
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s !== '')
            .map((s) => typed(s, c.type)),
        ],
      };
    case 'contains':
      return { in: [String(c.value), variable] };
    case 'exists':
      return { '!!': [variable] };
    case 'missing':
      return { '!': [variable] };
    default:
      return { [c.op]: [variable, typed(c.value, c.type)] };
  }
}

/** Problems that keep the tree from being a valid rule, each naming where it is. */
function compareProblems(c, at, name) {
  const out = [];
  if (!c.field.trim()) out.push(`${at}: ${name} is required`);
  if (NO_VALUE.has(c.op)) return out;
  if (c.type === 'number') {
    const parts = c.op === 'in_list' ? String(c.value).split(',') : [c.value];
    if (parts.some((p) => String(p).trim() === '' || !Number.isFinite(Number(p))))
      out.push(`${at}: the value must be a number`);
  } else if (c.op !== '==' && c.op !== '!=' && String(c.value).trim() === '')
    out.push(`${at}: a value is required`);
  return out;
}

export function problems(node, where = 'rule') {
  const out = [];
  const checkCompare = (c, at, name) => out.push(...compareProblems(c, at, name));
  switch (node.kind) {
    case 'group':
      if (node.children.length === 0) out.push(`${where}: add at least one condition`);
      for (const [i, ch] of node.children.entries()) out.push(...problems(ch, `${where}.${i + 1}`));
      break;
    case 'trait':
      checkCompare(node, where, 'the trait');
      break;
    case 'event': {
      if (!node.event.trim()) out.push(`${where}: the event name is required`);
      const n = Number(node.count);
      if (!Number.isInteger(n) || n < 0) out.push(`${where}: the count must be a whole number`);
      const w = Number(node.window);
      if (!Number.isInteger(w) || w < 1) out.push(`${where}: the window must be a whole number above 0`);
      node.filters.forEach((f, i) => {
        checkCompare(f, `${where} filter ${i + 1}`, 'the property');
      });
      break;
    }
    case 'segment':
      if (!node.segmentId) out.push(`${where}: choose a segment`);
      break;
    default:
      out.push(`${where}: unknown condition`);
  }
  return out;
}

/** Problems of property filters (an event's `where`), each naming where it is. */
export function filterProblems(filters, where) {
  return filters.flatMap((f, i) => compareProblems(f, `${where} filter ${i + 1}`, 'the property'));
}

/** The JSON Logic of property filters (no filter: undefined; several: all must hold). */
export function filterLogic(filters) {
  if (filters.length === 0) return undefined;
  const parts = filters.map((f) => compare({ var: f.field.trim() }, f));
  return parts.length === 1 ? parts[0] : { and: parts };
}

/** Property filters back from JSON Logic; throws NotBuildable for hand-written ones. */
export function filtersFromLogic(logic) {
  if (logic === undefined || logic === null) return [];
  const [op, args] = one(logic);
  return (op === 'and' ? args : [logic]).map((p) => {
    const c = parseCompare(p, '');
    if (!c) throw new NotBuildable('property filter');
    return c;
  });
}

/** The JSON Logic of a tree. A root group holding one condition is that condition. */
export function toLogic(node, root = true) {
  switch (node.kind) {
    case 'group': {
      if (root && !node.negate && node.children.length === 1) return toLogic(node.children[0], false);
      const g = { [node.op]: node.children.map((c) => toLogic(c, false)) };
      return node.negate ? { '!': [g] } : g;
    }
    case 'trait':
      return compare({ var: `traits.${node.field.trim()}` }, node);
    case 'event': {
      const args = [node.event.trim(), `${Number(node.window)}${node.unit}`];
      if (node.filters.length === 1)
        args.push(compare({ var: node.filters[0].field.trim() }, node.filters[0]));
      else if (node.filters.length > 1)
        args.push({ and: node.filters.map((f) => compare({ var: f.field.trim() }, f)) });
      return { [node.cmp]: [{ event_count: args }, Number(node.count)] };
    }
    case 'segment':
      return node.member ? { in_segment: [node.segmentId] } : { '!': [{ in_segment: [node.segmentId] }] };
    default:
      throw new Error(`unknown condition kind ${node.kind}`);
  }
}

export class NotBuildable extends Error {}

const one = (logic) => {
  if (logic === null || typeof logic !== 'object' || Array.isArray(logic))
    throw new NotBuildable('not an operation');
  const keys = Object.keys(logic);
  if (keys.length !== 1) throw new NotBuildable('not an operation');
  const op = keys[0];
  const raw = logic[op];
  return [op, Array.isArray(raw) ? raw : [raw]];
};
const varName = (x) =>
  x && typeof x === 'object' && !Array.isArray(x) && typeof x.var === 'string' ? x.var : undefined;
const typeOf = (v) => (typeof v === 'number' ? 'number' : typeof v === 'boolean' ? 'boolean' : 'text');

/** A comparison on `{var: <prefix><field>}` back to {field, op, type, value}; undefined if it is not one. */
function parseCompare(logic, prefix) {
  const [op, args] = one(logic);
  const field = (v) => {
    const name = varName(v);
    return name?.startsWith(prefix) && name.length > prefix.length ? name.slice(prefix.length) : undefined;
  };
  if (SIMPLE.has(op) && args.length === 2 && field(args[0]) !== undefined && typeof args[1] !== 'object')
    return { field: field(args[0]), op, type: typeOf(args[1]), value: String(args[1]) };
  if (op === 'in' && args.length === 2 && field(args[0]) !== undefined && Array.isArray(args[1]))
    return {
      field: field(args[0]),
      op: 'in_list',
      type: args[1].length > 0 ? typeOf(args[1][0]) : 'text',
      value: args[1].join(', '),
    };
  if (op === 'in' && args.length === 2 && typeof args[0] === 'string' && field(args[1]) !== undefined)
    return { field: field(args[1]), op: 'contains', type: 'text', value: args[0] };
  if ((op === '!!' || op === '!') && args.length === 1 && field(args[0]) !== undefined)
    return { field: field(args[0]), op: op === '!!' ? 'exists' : 'missing', type: 'text', value: '' };
  return undefined;
}

function parseNode(logic) {
  const [op, args] = one(logic);
  if (op === 'and' || op === 'or') return { kind: 'group', op, negate: false, children: args.map(parseNode) };
  if (op === 'in_segment' && typeof args[0] === 'string')
    return { kind: 'segment', segmentId: args[0], member: true };
  if (op === '!' && args.length === 1) {
    const [inner, innerArgs] = one(args[0]);
    if (inner === 'and' || inner === 'or')
      return { kind: 'group', op: inner, negate: true, children: innerArgs.map(parseNode) };
    if (inner === 'in_segment' && typeof innerArgs[0] === 'string')
      return { kind: 'segment', segmentId: innerArgs[0], member: false };
  }
  if (
    SIMPLE.has(op) &&
    args.length === 2 &&
    args[0] &&
    typeof args[0] === 'object' &&
    'event_count' in args[0]
  ) {
    const [event, window, filter] = args[0].event_count;
    const w = /^([1-9][0-9]*)([smhd])$/.exec(String(window));
    if (typeof event !== 'string' || !w || typeof args[1] !== 'number') throw new NotBuildable('event_count');
    let filters = [];
    if (filter !== undefined && filter !== null) {
      const [fop, fargs] = one(filter);
      const parts = fop === 'and' ? fargs : [filter];
      filters = parts.map((p) => {
        const c = parseCompare(p, '');
        if (!c) throw new NotBuildable('event filter');
        return c;
      });
    }
    return { kind: 'event', event, cmp: op, count: String(args[1]), window: w[1], unit: w[2], filters };
  }
  const c = parseCompare(logic, 'traits.');
  if (c) return { kind: 'trait', ...c };
  throw new NotBuildable(`the builder cannot show ${JSON.stringify(logic).slice(0, 80)}`);
}

/** A tree for a stored rule (always a group at the root); throws NotBuildable for hand-written rules. */
export function fromLogic(logic) {
  const node = parseNode(logic);
  return node.kind === 'group' ? node : { kind: 'group', op: 'and', negate: false, children: [node] };
}
