// The ClickHouse schema for a cluster, derived from the same numbered migrations a single
// server (or chDB) runs, so there is one schema to keep and review.
//
// For each MergeTree-family table `t` of a migration:
//   t_local  ON CLUSTER: Replicated<Engine>('/clickhouse/tables/{shard}/{database}/t_local',
//            '{replica}', <engine args>) with the same columns, partitioning and ORDER BY;
//   t        ON CLUSTER: Distributed(<cluster>, currentDatabase(), t_local, cityHash64(<ORDER BY>)).
// The sink and the queries keep using `t`. Sharding on the table's own sorting key puts the
// rows a Replacing engine collapses (a replayed event, a newer identity version) on the same
// shard, so FINAL / merges still deduplicate them.
// Null intake tables stay per node (ON CLUSTER, not distributed) and their materialized views
// write into the Distributed table: an insert into any node's intake is routed by sharding key.
// Views and ALTERs gain ON CLUSTER; an ALTER of a sharded table is applied to both tables.
// A statement this file does not know how to rewrite is an error, never passed through: a
// new migration must be taught here (the unit test runs every migration through it).
import type { Migration } from './migrations.ts';

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A cluster name as written in remote_servers: a plain identifier (it is spliced into DDL). */
export function validClusterName(name: string): string {
  if (!IDENT.test(name))
    throw new Error(
      `CDP_CLICKHOUSE_CLUSTER must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), got ${JSON.stringify(name)}`,
    );
  return name;
}

export function localTableName(table: string): string {
  return `${table}_local`;
}

/** The bookkeeping table: one replica set over every node of the cluster (not sharded). */
export function clusterSchemaMigrationsTable(cluster: string): string {
  validClusterName(cluster);
  return `CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER ${cluster} (
      version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{database}/schema_migrations', '{replica}') ORDER BY version`;
}

const MERGE_TREES = new Set([
  'MergeTree',
  'ReplacingMergeTree',
  'SummingMergeTree',
  'AggregatingMergeTree',
  'CollapsingMergeTree',
  'VersionedCollapsingMergeTree',
]);

/** Tables the rewrite has seen, across migrations: which are sharded (local + Distributed). */
export interface ClusterDdlState {
  sharded: Set<string>;
  perNode: Set<string>;
}

export function clusterMigrations(migrations: readonly Migration[], cluster: string): Migration[] {
  validClusterName(cluster);
  const state: ClusterDdlState = { sharded: new Set(), perNode: new Set() };
  return migrations.map((m) => ({
    ...m,
    statements: m.statements.flatMap((s) => {
      try {
        return clusterStatements(s, cluster, state);
      } catch (err) {
        throw new Error(`migration ${m.version}_${m.name}: ${(err as Error).message}`);
      }
    }),
  }));
}

const CREATE_TABLE = /^CREATE TABLE IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*)\s*\(/;
const CREATE_MV =
  /^CREATE MATERIALIZED VIEW IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*) TO ([A-Za-z_][A-Za-z0-9_]*) AS\b/;
const CREATE_VIEW = /^CREATE VIEW IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*) AS\b/;
const ALTER_TABLE = /^ALTER TABLE ([A-Za-z_][A-Za-z0-9_]*) /;

export function clusterStatements(statement: string, cluster: string, state: ClusterDdlState): string[] {
  const sql = statement.trim();
  let m = CREATE_TABLE.exec(sql);
  if (m) return createTable(sql, m[1]!, cluster, state);
  m = CREATE_MV.exec(sql);
  if (m) {
    const [, name, target] = m;
    if (!state.sharded.has(target!) && !state.perNode.has(target!))
      throw new Error(`materialized view ${name} writes to ${target}, a table no migration created`);
    state.perNode.add(name!);
    return [
      sql.replace(
        CREATE_MV,
        `CREATE MATERIALIZED VIEW IF NOT EXISTS ${name} ON CLUSTER ${cluster} TO ${target} AS`,
      ),
    ];
  }
  m = CREATE_VIEW.exec(sql);
  if (m) return [sql.replace(CREATE_VIEW, `CREATE VIEW IF NOT EXISTS ${m[1]} ON CLUSTER ${cluster} AS`)];
  m = ALTER_TABLE.exec(sql);
  if (m) {
    const name = m[1]!;
    const rest = sql.slice(m[0].length);
    if (state.sharded.has(name)) {
      // Column changes must reach the Distributed table too; anything else (a MODIFY
      // QUERY, a setting, a mutation) has no meaning there.
      if (!/^(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b/.test(rest))
        throw new Error(
          `ALTER TABLE ${name} ${rest.split(/\s+/).slice(0, 2).join(' ')}: not rewritten for a cluster`,
        );
      return [
        `ALTER TABLE ${localTableName(name)} ON CLUSTER ${cluster} ${rest}`,
        `ALTER TABLE ${name} ON CLUSTER ${cluster} ${rest}`,
      ];
    }
    if (state.perNode.has(name)) return [`ALTER TABLE ${name} ON CLUSTER ${cluster} ${rest}`];
    throw new Error(`ALTER TABLE ${name}: a table no migration created`);
  }
  throw new Error(`statement not rewritten for a cluster: ${sql.slice(0, 60)}`);
}

function createTable(sql: string, name: string, cluster: string, state: ClusterDdlState): string[] {
  const engine = /\n\s*ENGINE\s*=\s*([A-Za-z]+)(?:\(([^)]*)\))?/.exec(sql);
  if (!engine) throw new Error(`CREATE TABLE ${name} has no ENGINE clause on its own line`);
  const [clause, kind, args] = engine;
  const withCluster = (table: string) =>
    sql.replace(CREATE_TABLE, `CREATE TABLE IF NOT EXISTS ${table} ON CLUSTER ${cluster} (`);
  if (kind === 'Null') {
    state.perNode.add(name);
    return [withCluster(name)];
  }
  if (!MERGE_TREES.has(kind!))
    throw new Error(`CREATE TABLE ${name}: engine ${kind} not rewritten for a cluster`);
  const orderBy = /\bORDER BY\s+([\s\S]+?)\s*(?:\b(?:PRIMARY KEY|SAMPLE BY|TTL|SETTINGS)\b|$)/.exec(
    sql.slice(engine.index),
  );
  if (!orderBy) throw new Error(`CREATE TABLE ${name} has no ORDER BY: nothing to shard on`);
  const local = localTableName(name);
  const replicatedArgs = [`'/clickhouse/tables/{shard}/{database}/${local}'`, `'{replica}'`];
  if (args?.trim()) replicatedArgs.push(args.trim());
  const localSql = withCluster(local).replace(
    clause,
    clause.replace(/=[\s\S]*$/, `= Replicated${kind}(${replicatedArgs.join(', ')})`),
  );
  state.sharded.add(name);
  return [
    localSql,
    `CREATE TABLE IF NOT EXISTS ${name} ON CLUSTER ${cluster} AS ${local}\n` +
      `ENGINE = Distributed(${cluster}, currentDatabase(), ${local}, cityHash64(${shardingKey(orderBy[1]!)}))`,
  ];
}

/** The ORDER BY key as function arguments: `(a, f(b))` → `a, f(b)`; `version` → `version`. */
function shardingKey(orderBy: string): string {
  const key = orderBy.trim();
  if (key.startsWith('(') && key.endsWith(')')) {
    // only strip when the outer parentheses enclose the whole key
    let depth = 0;
    for (let i = 0; i < key.length; i++) {
      if (key[i] === '(') depth++;
      else if (key[i] === ')') depth--;
      if (depth === 0 && i < key.length - 1) return key;
    }
    return key.slice(1, -1).trim();
  }
  return key;
}
