import { describe, expect, it } from 'vitest';
import {
  clusterMigrations,
  clusterSchemaMigrationsTable,
  clusterStatements,
  validClusterName,
} from './cluster-ddl.ts';
import { loadMigrations } from './migrations.ts';

const plain = loadMigrations();
const cluster = clusterMigrations(plain, 'cdp_cluster');
const all = cluster.flatMap((m) => m.statements);
const created = plain
  .flatMap((m) => m.statements)
  .map((s) => /^CREATE TABLE IF NOT EXISTS (\w+)/.exec(s))
  .filter((m): m is RegExpExecArray => m !== null);

describe('cluster DDL from the migrations', () => {
  it('rewrites every statement of every migration, each ON CLUSTER', () => {
    expect(cluster.map((m) => m.version)).toEqual(plain.map((m) => m.version));
    expect(all.length).toBeGreaterThan(plain.flatMap((m) => m.statements).length);
    for (const s of all)
      expect(s).toMatch(/^(CREATE|ALTER) [A-Z ]+?(IF NOT EXISTS )?\w+ ON CLUSTER cdp_cluster\b/);
  });

  it('makes every MergeTree table a replicated local table with a Distributed table over it', () => {
    expect(created.length).toBeGreaterThanOrEqual(10);
    for (const m of created) {
      const name = m[1]!;
      const original = plain.flatMap((x) => x.statements).find((s) => s.startsWith(m[0]))!;
      if (/ENGINE = Null/.test(original)) {
        // intake tables stay per node: their views write into the Distributed table
        expect(all).toContain(original.replace(m[0], `${m[0]} ON CLUSTER cdp_cluster`));
        expect(all.some((s) => s.includes(`${name}_local`))).toBe(false);
        continue;
      }
      const local = all.find((s) =>
        s.startsWith(`CREATE TABLE IF NOT EXISTS ${name}_local ON CLUSTER cdp_cluster (`),
      );
      expect(local, name).toBeDefined();
      // the replicated table is the original one, column for column, key for key
      const engine =
        /ENGINE = Replicated(\w+)\('\/clickhouse\/tables\/\{shard\}\/\{database\}\/(\w+)', '\{replica\}'(?:, ([^)]*))?\)/.exec(
          local!,
        );
      expect(engine, name).not.toBeNull();
      expect(engine![2]).toBe(`${name}_local`);
      const undone = local!
        .replace(`${name}_local ON CLUSTER cdp_cluster`, name)
        .replace(engine![0], `ENGINE = ${engine![1]}${engine![3] ? `(${engine![3]})` : ''}`);
      expect(undone).toBe(original);
      const dist = all.find((s) =>
        s.startsWith(`CREATE TABLE IF NOT EXISTS ${name} ON CLUSTER cdp_cluster AS ${name}_local`),
      );
      expect(dist, name).toBeDefined();
      // sharded on the sorting key: rows a Replacing engine collapses meet on one shard
      const orderBy = /ORDER BY \(?([^\n]*?)\)?$/m.exec(original)![1]!;
      expect(dist).toContain(
        `ENGINE = Distributed(cdp_cluster, currentDatabase(), ${name}_local, cityHash64(${orderBy}))`,
      );
    }
    const paths = all.map((s) => /'\/clickhouse\/tables\/[^']+'/.exec(s)?.[0]).filter(Boolean);
    expect(new Set(paths).size).toBe(paths.length);
  });

  it('applies column changes of a sharded table to both its tables, and view changes per node', () => {
    const alters = plain.flatMap((m) => m.statements).filter((s) => s.startsWith('ALTER TABLE'));
    expect(alters.length).toBeGreaterThan(0);
    for (const a of alters) {
      const [, name, rest] = /^ALTER TABLE (\w+) ([\s\S]*)$/.exec(a)!;
      const sharded = all.some((s) => s.startsWith(`CREATE TABLE IF NOT EXISTS ${name}_local `));
      expect(all).toContain(`ALTER TABLE ${name} ON CLUSTER cdp_cluster ${rest}`);
      expect(all.includes(`ALTER TABLE ${name}_local ON CLUSTER cdp_cluster ${rest}`)).toBe(sharded);
    }
  });

  it('keeps materialized views writing into the Distributed table', () => {
    expect(
      all.filter((s) => s.startsWith('CREATE MATERIALIZED VIEW')).map((s) => /TO (\w+) AS/.exec(s)![1]),
    ).toEqual(['events', 'identity_links']);
  });

  it('refuses what it cannot rewrite instead of passing it through', () => {
    const state = { sharded: new Set(['events']), perNode: new Set<string>() };
    expect(() => clusterStatements('DROP TABLE events', 'c', state)).toThrow(/not rewritten for a cluster/);
    expect(() => clusterStatements('ALTER TABLE events DELETE WHERE 1', 'c', state)).toThrow(/not rewritten/);
    expect(() => clusterStatements('ALTER TABLE nope ADD COLUMN x String', 'c', state)).toThrow(
      /no migration created/,
    );
    expect(() =>
      clusterStatements('CREATE TABLE IF NOT EXISTS t (a String)\nENGINE = Log', 'c', state),
    ).toThrow(/engine Log/);
    expect(() =>
      clusterStatements('CREATE MATERIALIZED VIEW IF NOT EXISTS v TO missing AS SELECT 1', 'c', state),
    ).toThrow(/no migration created/);
    expect(() =>
      clusterMigrations([{ version: 99, name: 'x', statements: ['OPTIMIZE TABLE events'] }], 'c'),
    ).toThrow(/migration 99_x/);
  });

  it('only takes a plain identifier as the cluster name (it is spliced into DDL)', () => {
    for (const bad of ['', 'a b', "c') --", 'c;DROP TABLE events', '1abc', 'c`', '{cluster}'])
      expect(() => validClusterName(bad), bad).toThrow(/plain identifier/);
    expect(() => clusterMigrations(plain, "x'")).toThrow(/plain identifier/);
    expect(() => clusterSchemaMigrationsTable('a-b')).toThrow(/plain identifier/);
    expect(clusterSchemaMigrationsTable('prod_1')).toMatch(
      /ON CLUSTER prod_1 .*ReplicatedReplacingMergeTree/s,
    );
  });
});
