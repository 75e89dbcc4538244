// Workspaces, people and tokens on a real Redis Cluster (three masters, three replicas started
// by infra/local/redis-cluster.ts): a workspace and a person are created once even when asked
// at the same time, the last owner is kept under concurrent removals, archiving and
// un-archiving work, and a token resolves to the roles the workspaces' own records hold.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalRedisCluster, startRedisCluster } from '../../infra/local/redis-cluster.ts';
import { createRedis, isCluster, type Redis } from '../../runtime/redis.ts';
import { LastOwner, WorkspaceConflict, WorkspaceStore } from '../../runtime/workspaces.ts';
import { testConfig, testLogger, uniqueId } from '../harness.ts';

let dir: string;
let cluster: LocalRedisCluster;
let redis: Redis;
let store: WorkspaceStore;
const prefix = uniqueId('t');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cdp-ws-cluster-'));
  cluster = await startRedisCluster({ dataDir: dir });
  const cfg = testConfig({ REDIS_URL: cluster.url });
  redis = createRedis(cluster.url, testLogger(cfg), 'workspaces-cluster-test');
  expect(isCluster(redis)).toBe(true);
  store = new WorkspaceStore(redis, prefix, 'ws_builtin');
}, 180_000);

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('workspaces on a Redis Cluster', () => {
  it('creates a workspace and a person once, even when asked at the same time', async () => {
    const name = uniqueId('Cluster shop ');
    const made = await Promise.allSettled(
      Array.from({ length: 5 }, () => store.createWorkspace(name, new Date())),
    );
    const ok = made.filter((m) => m.status === 'fulfilled');
    expect(ok).toHaveLength(1);
    for (const m of made) if (m.status === 'rejected') expect(m.reason).toBeInstanceOf(WorkspaceConflict);
    const ws = (ok[0] as PromiseFulfilledResult<{ id: string }>).value.id;
    expect((await store.listWorkspaces()).filter((w) => w.name === name).map((w) => w.id)).toEqual([ws]);

    const email = `${uniqueId('same')}@example.com`;
    const added = await Promise.all(
      Array.from({ length: 5 }, () => store.addPerson(ws, email, '', 'analyst', new Date())),
    );
    expect(new Set(added.map((a) => a.person.id)).size).toBe(1);
    expect(added.filter((a) => a.created)).toHaveLength(1);
    expect((await store.listPeople(ws)).map((p) => p.email)).toEqual([email]);
  });

  it('keeps the last owner under concurrent removals; tokens follow archiving', async () => {
    const ws = (await store.createWorkspace(uniqueId('Cluster '), new Date())).id;
    const owners = await Promise.all(
      [0, 1, 2].map((i) => store.addPerson(ws, `${uniqueId(`o${i}`)}@example.com`, '', 'owner', new Date())),
    );
    const outcomes = await Promise.allSettled(owners.map((o) => store.removePerson(ws, o.person.id)));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
    const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toBeInstanceOf(LastOwner);
    const left = (await store.listPeople(ws)).filter((p) => p.role === 'owner');
    expect(left).toHaveLength(1);

    const { token } = await store.issueToken(left[0]!.id, null, new Date());
    expect((await store.resolveToken(token))?.roles.get(ws)).toBe('owner');
    for (const o of owners)
      if (o.person.id !== left[0]!.id) {
        const { token: t } = await store.issueToken(o.person.id, null, new Date());
        expect((await store.resolveToken(t))?.roles.has(ws)).toBe(false);
      }
    await store.archiveWorkspace(ws, new Date());
    expect(await store.isArchived(ws)).toBe(true);
    expect((await store.resolveToken(token))?.roles.has(ws)).toBe(false);
    const [, after] = (await store.unarchiveWorkspace(ws))!;
    expect(after.archivedAt).toBeNull();
    expect((await store.resolveToken(token))?.roles.get(ws)).toBe('owner');
  });
});
