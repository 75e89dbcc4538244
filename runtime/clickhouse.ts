import { mkdirSync } from 'node:fs';
import { type ClickHouseClient, createClient } from '@clickhouse/client';
import type { ClickHouseConfig } from './config.ts';

export type { ClickHouseClient };

/**
 * The same @clickhouse/client API over a ClickHouse server or chDB in process. chDB keeps
 * one data directory per process, so every service that shares a process shares this client.
 * SQL always binds values as {name:Type} parameters.
 */
export async function createClickHouse(cfg: ClickHouseConfig): Promise<ClickHouseClient> {
  if (cfg.kind === 'server') {
    // The database must exist before a client bound to it can run anything.
    const bootstrap = createClient({ url: cfg.url, username: cfg.user, password: cfg.password });
    try {
      await bootstrap.command({ query: `CREATE DATABASE IF NOT EXISTS ${cfg.database}` });
    } finally {
      await bootstrap.close();
    }
    return createClient({
      url: cfg.url,
      username: cfg.user,
      password: cfg.password,
      database: cfg.database,
      request_timeout: 30_000,
      clickhouse_settings: { async_insert: 0, wait_end_of_query: 1 },
    });
  }
  mkdirSync(cfg.path, { recursive: true });
  const { createChdbConnection } = await import('chdb/connection');
  return createClient({
    // chDB's connection ignores `database`: tables live in its `default` database.
    connection: createChdbConnection({ path: cfg.path }),
  } as Parameters<typeof createClient>[0]);
}

export async function pingClickHouse(client: ClickHouseClient): Promise<void> {
  const r = await client.ping();
  if (!r.success) throw r.error;
}
