// A JSON Logic filter on the event, compiled to a SQL condition with bound parameters.
// Supported: == != < <= > >= (a field and a literal, either order), in (a field and an
// array of literals), and, or, ! (and !!-free nesting), var (a field path, fields.ts).
// Literals: strings compare as strings, numbers numerically, booleans with == / != only.
// A missing field is '' as a string and never equal to a number or boolean, so `!=` is
// true for it (as JSON Logic's null != x). Anything else is a 400 naming the operator.
import { fieldSql } from './fields.ts';
import { InputError, type SqlParams } from './sql-params.ts';

export const WHERE_OPERATORS = ['==', '!=', '<', '<=', '>', '>=', 'in', 'and', 'or', '!', 'var'] as const;
const COMPARE = new Set(['==', '!=', '<', '<=', '>', '>=']);
const FLIP: Record<string, string> = { '==': '==', '!=': '!=', '<': '>', '<=': '>=', '>': '<', '>=': '<=' };
const SQL_OP: Record<string, string> = { '==': '=', '!=': '!=', '<': '<', '<=': '<=', '>': '>', '>=': '>=' };
const MAX_NODES = 200;
const MAX_DEPTH = 16;
const MAX_IN = 1000;

type Literal = string | number | boolean;

const isVar = (v: unknown): v is { var: unknown } =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && 'var' in v;
const isLiteral = (v: unknown): v is Literal =>
  typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));

export function compileWhere(rule: unknown, field: string, params: SqlParams): string {
  let nodes = 0;
  const walk = (node: unknown, depth: number): string => {
    if (++nodes > MAX_NODES) throw new InputError(field, `more than ${MAX_NODES} operations`);
    if (depth > MAX_DEPTH) throw new InputError(field, `nested deeper than ${MAX_DEPTH}`);
    if (typeof node !== 'object' || node === null || Array.isArray(node))
      throw new InputError(field, 'expected a JSON Logic operation such as {"==": [{"var": "event"}, "x"]}');
    const keys = Object.keys(node);
    if (keys.length !== 1) throw new InputError(field, 'an operation object has exactly one operator');
    const op = keys[0]!;
    const raw = (node as Record<string, unknown>)[op];
    if (!(WHERE_OPERATORS as readonly string[]).includes(op))
      throw new InputError(
        field,
        `unsupported operator ${JSON.stringify(op.slice(0, 40))} (supported: ${WHERE_OPERATORS.join(' ')})`,
      );
    const args = Array.isArray(raw) ? raw : [raw];
    switch (op) {
      case 'and':
      case 'or': {
        if (args.length === 0) throw new InputError(field, `${op} needs at least one operand`);
        return `(${args.map((a) => walk(a, depth + 1)).join(op === 'and' ? ' AND ' : ' OR ')})`;
      }
      case '!': {
        if (args.length !== 1) throw new InputError(field, '! takes one operand');
        return `(NOT ${walk(args[0], depth + 1)})`;
      }
      case 'var':
        throw new InputError(
          field,
          'var is a value, not a condition: compare it, e.g. {"==": [{"var": "x"}, 1]}',
        );
      case 'in':
        return compileIn(args);
      default:
        return compileCompare(op, args);
    }
  };

  const varPath = (v: { var: unknown }) => {
    const p = Array.isArray(v.var) ? v.var[0] : v.var;
    return fieldSql(p, `${field} var`, params);
  };

  const compileCompare = (op: string, args: unknown[]): string => {
    if (!COMPARE.has(op) || args.length !== 2)
      throw new InputError(field, `${op} takes two operands: a {"var": …} and a literal`);
    let [a, b] = args;
    let o = op;
    if (!isVar(a) && isVar(b)) {
      [a, b] = [b, a];
      o = FLIP[op]!;
    }
    if (!isVar(a) || !isLiteral(b))
      throw new InputError(field, `${op} takes a {"var": …} and a string, number or boolean literal`);
    const f = varPath(a);
    if (typeof b === 'string') return `(${f.str} ${SQL_OP[o]} ${params.bind(b, 'String')})`;
    if (typeof b === 'number') {
      const cmp = `${f.num} ${SQL_OP[o]} ${params.bind(b, 'Float64')}`;
      return o === '!=' ? `(NOT ifNull(${f.num} = ${params.bind(b, 'Float64')}, 0))` : `ifNull(${cmp}, 0)`;
    }
    if (o !== '==' && o !== '!=') throw new InputError(field, `${op} cannot compare booleans`);
    const eq = `ifNull(${f.bool} = ${params.bind(b, 'Bool')}, 0)`;
    return o === '==' ? eq : `(NOT ${eq})`;
  };

  const compileIn = (args: unknown[]): string => {
    const [a, list] = args;
    if (args.length !== 2 || !isVar(a) || !Array.isArray(list))
      throw new InputError(field, 'in takes a {"var": …} and an array of literals');
    if (list.length === 0 || list.length > MAX_IN)
      throw new InputError(field, `in takes 1 to ${MAX_IN} values`);
    const f = varPath(a);
    if (list.every((v) => typeof v === 'string'))
      return `(${f.str} IN ${params.bind(list, 'Array(String)')})`;
    if (list.every((v) => typeof v === 'number' && Number.isFinite(v)))
      return `ifNull(${f.num} IN ${params.bind(list, 'Array(Float64)')}, 0)`;
    throw new InputError(field, 'in takes an array of all strings or all numbers');
  };

  return walk(rule, 0);
}
