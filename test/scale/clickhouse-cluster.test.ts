// The cluster schema (schemas/cluster-ddl.ts) against a real ClickHouse server with a
// cluster defined in remote_servers and Keeper for the replicated tables. Runs only where
// the environment provides one: CLICKHOUSE_URL (http://host:8123) and
// CDP_CLICKHOUSE_CLUSTER (the cluster's name); optional CLICKHOUSE_USER/CLICKHOUSE_PASSWORD.
// chDB has no cluster, so there is nothing to run it on otherwise.
import { randomBytes } from 'node:crypto';
import { createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../schemas/migrations.ts';

const url = process.env.CLICKHOUSE_URL;
const cluster = process.env.CDP_CLICKHOUSE_CLUSTER;
const why = !url
  ? 'CLICKHOUSE_URL is not set: no ClickHouse server to run the cluster schema against'
  : !cluster
    ? 'CDP_CLICKHOUSE_CLUSTER is not set: name the cluster (remote_servers) to run the cluster schema against'
    : '';
if (why) console.warn(`test/scale/clickhouse-cluster.test.ts skipped: ${why}`);

const database = `cdp_cluster_test_${randomBytes(4).toString('hex')}`;
const auth = {
  username: process.env.CLICKHOUSE_USER ?? 'default',
  password: process.env.CLICKHOUSE_PASSWORD ?? '',
};

describe.skipIf(!!why)(`ClickHouse cluster schema (${cluster ?? 'no cluster'})`, () => {
  const admin = url ? createClient({ url, ...auth }) : undefined;
  const ch = url ? createClient({ url, ...auth, database }) : undefined;
  const event = (messageId: string, workspaceId: string) => ({
    workspaceId,
    messageId,
    type: 'track',
    event: 'Viewed',
    anonymousId: `a-${messageId}`,
    timestamp: '2026-04-01T10:00:00.123Z',
    receivedAt: '2026-04-01T10:00:01.000Z',
    properties: '{"revenue": 2.5}',
    traits: '{}',
    context: '{"ip":"203.0.113.1"}',
    integrations: '{}',
  });

  beforeAll(async () => {
    await admin!.command({ query: `CREATE DATABASE IF NOT EXISTS ${database} ON CLUSTER ${cluster}` });
    expect(await migrate(ch!, { cluster })).toContain(1);
  }, 180_000);
  afterAll(async () => {
    await admin
      ?.command({ query: `DROP DATABASE IF EXISTS ${database} ON CLUSTER ${cluster} SYNC` })
      .catch(() => {});
    await Promise.all([admin?.close(), ch?.close()]);
  });

  it('creates replicated local tables with Distributed tables of the same names the sink uses', async () => {
    const rs = await ch!.query({
      query: `SELECT name, engine FROM system.tables WHERE database = currentDatabase() ORDER BY name`,
      format: 'JSONEachRow',
    });
    const engines = Object.fromEntries(
      (await rs.json<{ name: string; engine: string }>()).map((r) => [r.name, r.engine]),
    );
    for (const t of [
      'events',
      'identity_links',
      'activation_ledger',
      'audit_log',
      'segment_membership_history',
    ]) {
      expect(engines[t], t).toBe('Distributed');
      expect(engines[`${t}_local`], t).toMatch(/^Replicated/);
    }
    expect(engines.events_intake).toBe('Null');
    // a second run applies nothing: the record is the replicated schema_migrations
    expect(await migrate(ch!, { cluster })).toEqual([]);
  });

  it('routes intake rows through the views into the sharded tables, once per event, and refuses bad ones', async () => {
    const rows = Array.from({ length: 200 }, (_, i) => event(`m${i}`, `ws-${i % 7}`));
    const settings = { input_format_json_read_objects_as_strings: 1, insert_distributed_sync: 1 } as const;
    await ch!.insert({
      table: 'events_intake',
      values: rows,
      format: 'JSONEachRow',
      clickhouse_settings: settings,
    });
    // a replay of the same rows collapses (they shard together)
    await ch!.insert({
      table: 'events_intake',
      values: rows.slice(0, 50),
      format: 'JSONEachRow',
      clickhouse_settings: settings,
    });
    await expect(
      ch!.insert({
        table: 'events_intake',
        values: [event('', 'ws-0')],
        format: 'JSONEachRow',
        clickhouse_settings: settings,
      }),
    ).rejects.toThrow(/not storable/);
    const rs = await ch!.query({
      query: `SELECT count() AS n, uniqExact(message_id) AS u, sum(revenue) AS r FROM events FINAL`,
      format: 'JSONEachRow',
    });
    const [r] = await rs.json<{ n: string; u: string; r: number }>();
    expect(Number(r!.n)).toBe(200);
    expect(Number(r!.u)).toBe(200);
    expect(r!.r).toBeCloseTo(500);
    const bi = await ch!.query({ query: `SELECT count() AS n FROM bi_events`, format: 'JSONEachRow' });
    expect(Number((await bi.json<{ n: string }>())[0]!.n)).toBe(200);
  });
});
