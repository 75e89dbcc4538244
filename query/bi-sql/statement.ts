// What a BI client may run: one SELECT over the BI views, judged on the engine's own parse
// of it before anything runs. The statement is parsed twice by ClickHouse itself, never
// executed for the check: formatQuery() (given the text as a bound parameter) refuses more
// than one statement and yields the canonical text, which is what runs; EXPLAIN AST of that
// text, with the client's parameters bound (so an {x:Identifier} is judged as the table it
// names), gives the tree checked here. Anything this file does not know is refused.
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import { BiSqlError, ErrorCode } from './errors.ts';

/**
 * The stable BI views (schemas/migrations/003_bi_views.sql, 010_bi_ledger_audit.sql): the only
 * data a client reads. Each has `workspace_id`, which the workspace filter keeps to its rows.
 */
export const BI_VIEWS = [
  'bi_events',
  'bi_identities',
  'bi_touchpoints',
  'bi_conversions',
  'bi_segment_membership',
  'bi_segment_members',
  'bi_sends',
  'bi_journey_steps',
  'bi_consent',
  'bi_audit',
] as const;

/**
 * System tables a client may read for metadata (drivers list tables and columns, probe
 * settings): tables, columns and databases are filtered to the BI views when the query runs
 * (additional_table_filters); the others describe the engine, not data.
 */
export const METADATA_TABLES = [
  'tables',
  'columns',
  'databases',
  'settings',
  'functions',
  'data_type_families',
  'table_engines',
  'formats',
  'time_zones',
  'collations',
  'one',
] as const;

/** AST nodes a SELECT is made of. Set (SETTINGS) and QueryParameter are not among them. */
const NODE_TYPES = new Set([
  'SelectWithUnionQuery',
  'SelectIntersectExceptQuery',
  'SelectQuery',
  'ExpressionList',
  'TablesInSelectQuery',
  'TablesInSelectQueryElement',
  'TableExpression',
  'TableIdentifier',
  'TableJoin',
  'ArrayJoin',
  'Subquery',
  'WithElement',
  'Identifier',
  'Literal',
  'Function',
  'Asterisk',
  'QualifiedAsterisk',
  'ColumnsRegexpMatcher',
  'ColumnsListMatcher',
  'QualifiedColumnsRegexpMatcher',
  'QualifiedColumnsListMatcher',
  'ColumnsTransformerList',
  'ColumnsApplyTransformer',
  'ColumnsExceptTransformer',
  'ColumnsReplaceTransformer',
  'ColumnsReplaceTransformerReplacement',
  'OrderByElement',
  'InterpolateElement',
  'WindowDefinition',
  'WindowListElement',
  'SampleRatio',
]);

/**
 * Functions that reach past the rows of the query: files, dictionaries, other tables by
 * name, the server's settings, host and process. Compared in lower case.
 */
const DENIED_FUNCTIONS = new Set([
  'file',
  'hascolumnintable',
  'currentuser',
  'current_user',
  'authuser',
  'authenticateduser',
  'fullhostname',
  'showcertificate',
  'logtrace',
  'current_query_id',
  'query_id',
  'initial_query_id',
  'initial_query_start_time',
  'mergetreepartinfo',
  'user',
  'session_user',
  'currentprofiles',
  'enabledprofiles',
  'defaultprofiles',
  'currentroles',
  'enabledroles',
  'defaultroles',
  'hostname',
  'fqdn',
  'displayname',
  'getmacro',
  'getserverport',
  'serveruuid',
  'tcpport',
  'uptime',
  'catboostevaluate',
  'modelevaluate',
  'naivebayesclassifier',
  'demangle',
  'getclienthttpheader',
  'globalvariable',
  'generateserialid',
  'zookeepersessionuptime',
  'getoskernelversion',
  'buildid',
  'revision',
  'queryid',
  'initialqueryid',
  'initialquerystarttime',
  'currentqueryid',
  'shardnum',
  'shardcount',
  'connectionid',
  'connection_id',
  'transactionid',
  'transactionlatestsnapshot',
  'transactionoldestsnapshot',
  'getmaxtablenamelengthfordatabase',
  'errorcodetoname',
  'getscalar',
  // hold an engine thread without reading anything (max_execution_time is checked between blocks)
  'sleep',
  'sleepeachrow',
  // quadratic in their arguments' lengths within one row, where no time limit is checked:
  // a few rows of long strings (or arrays) hold an engine thread for seconds past the limit
  'editdistance',
  'editdistanceutf8',
  'levenshteindistance',
  'levenshteindistanceutf8',
  'dameraulevenshteindistance',
  'jarosimilarity',
  'jarowinklersimilarity',
  'stringjaccardindex',
  'stringjaccardindexutf8',
  'arraylevenshteindistance',
  'arraylevenshteindistanceweighted',
  'arraysimilarity',
]);
const DENIED_PREFIXES = [
  'dict',
  'joinget',
  'getsetting',
  'getserversetting',
  'getmergetreesetting',
  'filesystem',
  'addressto',
  '__',
];

/**
 * Table functions that make rows out of their arguments alone (drivers use VALUES for their
 * type listings): they read nothing. Every other table function is refused.
 */
const DATA_FREE_TABLE_FUNCTIONS = new Set([
  'values',
  'numbers',
  'zeros',
  'generate_series',
  'generateseries',
]);

/** Output formats a client may ask for (lower case → the engine's name). */
const FORMATS = new Map(
  [
    'TabSeparated',
    'TabSeparatedRaw',
    'TabSeparatedWithNames',
    'TabSeparatedWithNamesAndTypes',
    'TabSeparatedRawWithNames',
    'TabSeparatedRawWithNamesAndTypes',
    'TSV',
    'TSVRaw',
    'TSVWithNames',
    'TSVWithNamesAndTypes',
    'CSV',
    'CSVWithNames',
    'CSVWithNamesAndTypes',
    'JSON',
    'JSONStrings',
    'JSONCompact',
    'JSONCompactStrings',
    'JSONEachRow',
    'JSONLines',
    'NDJSON',
    'JSONStringsEachRow',
    'JSONCompactEachRow',
    'JSONCompactEachRowWithNames',
    'JSONCompactEachRowWithNamesAndTypes',
    'JSONCompactStringsEachRow',
    'JSONCompactStringsEachRowWithNames',
    'JSONCompactStringsEachRowWithNamesAndTypes',
    'JSONObjectEachRow',
    'Native',
    'RowBinary',
    'RowBinaryWithNames',
    'RowBinaryWithNamesAndTypes',
    'Parquet',
    'Arrow',
    'ArrowStream',
    'ORC',
    'Avro',
    'Values',
    'Vertical',
    'Pretty',
    'PrettyCompact',
    'PrettyCompactMonoBlock',
    'PrettySpace',
    'PrettyNoEscapes',
    'Markdown',
    'XML',
    'Null',
  ].map((f) => [f.toLowerCase(), f]),
);

export function outputFormat(name: string): string {
  const f = FORMATS.get(name.toLowerCase());
  if (!f) throw new BiSqlError(ErrorCode.UNKNOWN_FORMAT, `Unknown or not allowed output format ${name}`);
  return f;
}

export interface Catalog {
  /** The engine's current database (chDB: `default`), where the BI views live. */
  database: string;
  /** Every table of that database: a bare name naming one of them must be a BI view. */
  tables: Set<string>;
  /** Table functions (none may be called, not even as a scalar function of the same name). */
  tableFunctions: Set<string>;
}

/** The catalog is read once and on demand: tables come and go with migrations only. */
export async function readCatalog(ch: ClickHouseClient): Promise<Catalog> {
  const text = async (query: string) => {
    const rs = await ch.query({ query, format: 'JSONEachRow' });
    return rs.json<Record<string, string>>();
  };
  const [db] = await text('SELECT currentDatabase() AS d');
  const tables = await text('SELECT name FROM system.tables WHERE database = currentDatabase()');
  const fns = await text('SELECT name FROM system.table_functions');
  return {
    database: db!.d!,
    tables: new Set(tables.map((t) => t.name!)),
    tableFunctions: new Set(fns.map((f) => f.name!.toLowerCase()).filter((n) => n !== 'format')),
  };
}

export interface CheckedStatement {
  /** The canonical text (comments gone, one statement) without its FORMAT clause. */
  sql: string;
  /** The FORMAT the statement named, if any. */
  format?: string;
}

interface Node {
  type: string;
  /** What follows the type on its line: a name, a literal, `(alias …)`. */
  rest: string;
  depth: number;
  declared: number;
  children: Node[];
}

/** Reads EXPLAIN AST's indented tree; any line it cannot account for refuses the statement. */
export function parseAstDump(dump: string): Node {
  const lines = dump.replace(/\n+$/, '').split('\n');
  const stack: Node[] = [];
  let root: Node | undefined;
  for (const line of lines) {
    const m = /^( *)([A-Za-z]+)(?: (.*))?$/.exec(line);
    if (!m) throw refusedParse();
    const depth = m[1]!.length;
    let rest = m[3] ?? '';
    let declared = 0;
    const kids = / ?\(children (\d+)\)$/.exec(rest);
    if (kids) {
      declared = Number(kids[1]);
      rest = rest.slice(0, kids.index);
    }
    const node: Node = { type: m[2]!, rest, depth, declared, children: [] };
    if (depth === 0) {
      if (root) throw refusedParse();
      root = node;
    } else {
      const parent = stack[depth - 1];
      if (!parent || stack.length < depth) throw refusedParse();
      parent.children.push(node);
    }
    stack.length = depth;
    stack.push(node);
  }
  if (!root) throw refusedParse();
  // every node has exactly the children it says: a name or alias holding a line break
  // cannot pass off lines of its own as nodes, nor move real ones elsewhere
  const verify = (n: Node): void => {
    if (n.children.length !== n.declared) throw refusedParse();
    n.children.forEach(verify);
  };
  verify(root);
  return root;
}

const refusedParse = () =>
  new BiSqlError(
    ErrorCode.SYNTAX_ERROR,
    'The statement could not be analysed; simplify its names and aliases',
  );

/**
 * `Function name (alias x)` → name; `TableIdentifier db.t (alias x)` → db.t. A name with a
 * space in it is refused: the dump would not tell where it ends.
 */
function nameOf(n: Node): string {
  const m = /^(\S+)(?: \(alias .*\))?$/s.exec(n.rest);
  if (!m) throw new BiSqlError(ErrorCode.ACCESS_DENIED, `Not allowed in a BI query: the name ${n.rest}`);
  return m[1]!.replace(/`/g, '');
}

/**
 * The statement as it will run, or a BiSqlError saying why not. `params` are the client's
 * query parameters, bound exactly as they will be when it runs.
 */
export async function checkStatement(
  ch: ClickHouseClient,
  catalog: Catalog,
  text: string,
  params: Record<string, string>,
): Promise<CheckedStatement> {
  if (!text.trim()) throw new BiSqlError(ErrorCode.SYNTAX_ERROR, 'Empty query');
  let canonical: string;
  try {
    const rs = await ch.query({
      query: 'SELECT formatQuery({q:String}) AS q',
      query_params: { q: text },
      format: 'JSONEachRow',
    });
    canonical = ((await rs.json<{ q: string }>())[0]?.q ?? '').trim();
  } catch (err) {
    throw BiSqlError.fromEngine(err, 'Syntax error');
  }
  let dump: string;
  try {
    const rs = await ch.exec({
      query: `EXPLAIN AST ${canonical}`,
      query_params: params,
      clickhouse_settings: { default_format: 'TabSeparatedRaw' },
    });
    const parts: Buffer[] = [];
    for await (const chunk of rs.stream) parts.push(chunk as Buffer);
    dump = Buffer.concat(parts).toString('utf8');
  } catch (err) {
    throw BiSqlError.fromEngine(err, 'Syntax error');
  }
  const root = parseAstDump(dump);
  const listing = metadataStatement(root, canonical, catalog);
  if (listing) return listing;
  if (root.type !== 'SelectWithUnionQuery')
    throw new BiSqlError(
      ErrorCode.READONLY,
      `Only SELECT is allowed: this endpoint is read-only (got ${root.type.replace(/Query$/, '')})`,
    );
  // a SELECT's own children: its union list, then a FORMAT identifier; INTO OUTFILE (a
  // literal), COMPRESSION and any other clause are refused
  let format: string | undefined;
  const [list, ...tail] = root.children;
  if (list?.type !== 'ExpressionList') throw refusedParse();
  for (const t of tail) {
    if (t.type === 'Identifier' && format === undefined) format = outputFormat(nameOf(t));
    else
      throw new BiSqlError(ErrorCode.ACCESS_DENIED, 'INTO OUTFILE and other output clauses are not allowed');
  }
  checkNode(root, catalog, undefined);
  let sql = canonical;
  if (format !== undefined) {
    // formatQuery puts FORMAT on its own last line (a line break inside a name or string
    // is escaped in its output, so no other line can look like it)
    const m = /\nFORMAT (\S+)$/.exec(sql);
    if (!m || outputFormat(m[1]!.replace(/`/g, '')) !== format) throw refusedParse();
    sql = sql.slice(0, m.index);
  }
  return { sql, format };
}

/**
 * SHOW DATABASES, SHOW TABLES [FROM <database>] and DESCRIBE <BI view>, as the SELECTs over
 * the (filtered) system tables that answer them: CLI users and some tools send them.
 */
function metadataStatement(root: Node, canonical: string, catalog: Catalog): CheckedStatement | undefined {
  const withFormat = /^(.*?)(?:\nFORMAT (\S+))?$/s.exec(canonical)!;
  const [text, fmt] = [withFormat[1]!, withFormat[2]];
  const format = fmt === undefined ? undefined : outputFormat(fmt.replace(/`/g, ''));
  if (root.type === 'ShowTables') {
    if (text === 'SHOW DATABASES') return { sql: 'SELECT name FROM system.databases ORDER BY name', format };
    const m = /^SHOW TABLES(?: FROM (\S+))?$/.exec(text);
    if (m && (m[1] === undefined || m[1].replace(/`/g, '') === catalog.database))
      return {
        sql: 'SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name',
        format,
      };
    throw new BiSqlError(
      ErrorCode.READONLY,
      'Of SHOW statements only SHOW DATABASES and SHOW TABLES are served',
    );
  }
  if (root.type === 'DescribeQuery') {
    const table = root.children[0]?.children[0];
    const name = table?.type === 'TableIdentifier' ? nameOf(table).split('.') : [];
    const view =
      name.length === 2 && name[0] === catalog.database ? name[1] : name.length === 1 ? name[0] : undefined;
    if (!view || !isBiView(view) || root.children.length !== 1 || root.children[0]!.children.length !== 1)
      throw new BiSqlError(
        ErrorCode.ACCESS_DENIED,
        `DESCRIBE is served for the BI views only (${BI_VIEWS.join(', ')})`,
      );
    // the name is one of BI_VIEWS, constants of this file
    return {
      sql: `SELECT name, type, default_kind AS default_type, default_expression, comment, compression_codec AS codec_expression, '' AS ttl_expression FROM system.columns WHERE database = currentDatabase() AND table = '${view}' ORDER BY position`,
      format,
    };
  }
  return undefined;
}

function checkNode(n: Node, catalog: Catalog, parent: Node | undefined): void {
  if (n.type === 'Set')
    throw new BiSqlError(
      ErrorCode.READONLY,
      'SETTINGS in the query are not allowed: this endpoint is read-only with fixed limits',
    );
  if (!NODE_TYPES.has(n.type))
    throw new BiSqlError(ErrorCode.ACCESS_DENIED, `Not allowed in a BI query: ${n.type}`);
  if (n.type === 'TableIdentifier') checkTable(nameOf(n), catalog);
  if (n.type === 'Function') {
    const name = nameOf(n);
    if (parent?.type === 'TableExpression' && !DATA_FREE_TABLE_FUNCTIONS.has(name.toLowerCase()))
      throw new BiSqlError(
        ErrorCode.ACCESS_DENIED,
        `Table functions are not allowed (${name}): read the BI views (${BI_VIEWS.join(', ')})`,
      );
    checkFunction(name, catalog);
    // x IN t: a table named on the right of IN is read as a table
    if (/^(global)?(not)?(null)?in$/i.test(name)) {
      const right = n.children[0]?.children[1];
      if (right?.type === 'Identifier') checkTable(nameOf(right), catalog);
    }
  }
  for (const c of n.children) checkNode(c, catalog, n);
}

function checkFunction(name: string, catalog: Catalog): void {
  const lower = name.toLowerCase();
  if (
    DENIED_FUNCTIONS.has(lower) ||
    DENIED_PREFIXES.some((p) => lower.startsWith(p)) ||
    (catalog.tableFunctions.has(lower) && !DATA_FREE_TABLE_FUNCTIONS.has(lower))
  )
    throw new BiSqlError(ErrorCode.FUNCTION_NOT_ALLOWED, `Function ${name} is not allowed in a BI query`);
}

const isBiView = (name: string) => (BI_VIEWS as readonly string[]).includes(name);

function checkTable(name: string, catalog: Catalog): void {
  const parts = name.split('.');
  if (parts.length === 1) {
    // a bare name is a BI view, or one of the query's own WITH names (a name no table has)
    if (isBiView(name) || !catalog.tables.has(name)) return;
  } else if (parts.length === 2) {
    const [db, table] = parts as [string, string];
    if (db === catalog.database && isBiView(table)) return;
    if (db.toLowerCase() === 'system' && (METADATA_TABLES as readonly string[]).includes(table)) return;
  }
  throw new BiSqlError(
    ErrorCode.ACCESS_DENIED,
    `Not enough privileges to read ${name}: a BI user reads ${BI_VIEWS.join(', ')} (and system.tables, system.columns for metadata)`,
  );
}
