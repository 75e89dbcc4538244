// ClickHouse schema migrations: numbered SQL files applied in order, each once, recorded
// in schema_migrations. Every statement is idempotent (IF NOT EXISTS), so a crash between
// a statement and its record is harmless. The same DDL runs on chDB and on a server.
// On a ClickHouse cluster (CDP_CLICKHOUSE_CLUSTER) the same migrations are rewritten into
// Replicated*MergeTree tables `<name>_local` with a Distributed table `<name>` over them
// (schemas/cluster-ddl.ts), so the sink and the queries use the same table names.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import { clusterMigrations, clusterSchemaMigrationsTable, validClusterName } from './cluster-ddl.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');

export interface Migration {
  version: number;
  name: string;
  statements: string[];
}

export function loadMigrations(dir = DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 3)),
      name: file.slice(4, -4),
      statements: splitStatements(readFileSync(join(dir, file), 'utf8')),
    }));
}

export function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*(?:\n|$)/)
    .map((s) =>
      s
        .split('\n')
        .filter((l) => !l.trim().startsWith('--'))
        .join('\n')
        .trim(),
    )
    .filter((s) => s.length > 0);
}

export async function migrate(
  client: ClickHouseClient,
  opts: { cluster?: string } = { cluster: process.env.CDP_CLICKHOUSE_CLUSTER || undefined },
): Promise<number[]> {
  const cluster = opts.cluster === undefined ? undefined : validClusterName(opts.cluster);
  await client.command({
    query: cluster
      ? clusterSchemaMigrationsTable(cluster)
      : `CREATE TABLE IF NOT EXISTS schema_migrations (
      version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree ORDER BY version`,
  });
  const rs = await client.query({
    query: 'SELECT version FROM schema_migrations FINAL',
    format: 'JSONEachRow',
  });
  const done = new Set((await rs.json<{ version: number }>()).map((r) => Number(r.version)));
  const applied: number[] = [];
  const all = loadMigrations();
  for (const m of cluster ? clusterMigrations(all, cluster) : all) {
    if (done.has(m.version)) continue;
    for (const statement of m.statements) await client.command({ query: statement });
    await client.insert({
      table: 'schema_migrations',
      values: [{ version: m.version, name: m.name }],
      format: 'JSONEachRow',
    });
    applied.push(m.version);
  }
  return applied;
}
