// A local Redis Cluster for tests: 3 masters and 3 replicas of Debian's redis-server, each on
// its own loopback port (and cluster bus port) and data directory, append-only file on, made
// one cluster with `redis-cli --cluster create ... --cluster-replicas 1`. A short
// cluster-node-timeout so a failover (manual or a killed master) is over in seconds.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, portOpen, waitFor } from './ports.ts';
import { findRedisServer } from './redis.ts';
import { spawnTied, type TiedProcess } from './tied-process.ts';

const run = promisify(execFile);

export interface ClusterNodeInfo {
  port: number;
  process: TiedProcess;
}

export interface LocalRedisCluster {
  /** `redis-cluster://127.0.0.1:p1,...` for REDIS_URL. */
  url: string;
  nodes: ClusterNodeInfo[];
  /** The node (port) serving `slot` as master now, and its replicas. */
  roles(slot: number): Promise<{ master: number; replicas: number[] }>;
  /** A coordinated failover: a replica of the master serving `slot` takes over (CLUSTER FAILOVER); waits until it has. */
  failover(slot: number): Promise<{ from: number; to: number }>;
  /** SIGKILLs the master serving `slot` (no shutdown); waits until its replica has taken over. */
  kill(slot: number): Promise<{ from: number; to: number }>;
  /** Every live node answers cluster_state:ok and all 16384 slots are served. */
  healthy(): Promise<boolean>;
  stop(): Promise<void>;
}

async function findRedisCli(server: string): Promise<string> {
  const beside = join(dirname(server), 'redis-cli');
  if (existsSync(beside)) return beside;
  const { stdout } = await run('sh', ['-c', 'command -v redis-cli']).catch(() => ({ stdout: '' }));
  if (stdout.trim()) return stdout.trim();
  throw new Error('redis-cli not found (Debian: apt-get install redis-tools)');
}

const client = (port: number) => {
  const c = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  c.on('error', () => {});
  return c;
};

async function onNode<T>(port: number, f: (c: Redis) => Promise<T>): Promise<T> {
  const c = client(port);
  try {
    await c.connect();
    return await f(c);
  } finally {
    c.disconnect();
  }
}

/** CLUSTER SHARDS-like view from CLUSTER NODES: master port → replica ports, and master port → slot ranges. */
async function topology(port: number) {
  const text = (await onNode(port, (c) => c.call('CLUSTER', 'NODES'))) as string;
  const byId = new Map<
    string,
    { port: number; master: string | null; slots: Array<[number, number]>; failed: boolean }
  >();
  for (const line of text.trim().split('\n')) {
    const [id, addr, flags, master, , , , , ...slots] = line.split(' ');
    const p = Number(/:(\d+)@/.exec(addr!)?.[1]);
    byId.set(id!, {
      port: p,
      master: master === '-' ? null : master!,
      failed: /fail/.test(flags!),
      slots: slots
        .filter((s) => /^\d/.test(s))
        .map((s) => {
          const [a, b] = s.split('-');
          return [Number(a), Number(b ?? a)] as [number, number];
        }),
    });
  }
  return byId;
}

export async function startRedisCluster(opts: {
  dataDir: string;
  nodeTimeoutMs?: number;
}): Promise<LocalRedisCluster> {
  const bin = await findRedisServer();
  const cli = await findRedisCli(bin);
  const nodes: ClusterNodeInfo[] = [];
  const stopAll = () => Promise.all(nodes.map((n) => n.process.stop(10_000)));
  try {
    for (let i = 0; i < 6; i++) {
      const dir = resolve(opts.dataDir, `redis-cluster-${i}`);
      mkdirSync(dir, { recursive: true });
      const port = await freePort();
      const bus = await freePort();
      if (await portOpen(port)) throw new Error(`Redis port ${port} is already in use`);
      const proc = spawnTied(
        bin,
        [
          '--port',
          String(port),
          '--cluster-port',
          String(bus),
          '--bind',
          '127.0.0.1',
          '--dir',
          dir,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, 'nodes.conf'),
          '--cluster-node-timeout',
          String(opts.nodeTimeoutMs ?? 2000),
          '--appendonly',
          'yes',
          '--appendfsync',
          'everysec',
          '--save',
          '',
          '--daemonize',
          'no',
          '--protected-mode',
          'yes',
          '--logfile',
          '',
        ],
        { logFile: join(dir, 'redis.log') },
      );
      nodes.push({ port, process: proc });
    }
    for (const n of nodes)
      await waitFor(
        `redis-server on ${n.port}`,
        () => onNode(n.port, async (c) => (await c.ping()) === 'PONG'),
        30_000,
        100,
      );
    await run(
      cli,
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (err) {
    await stopAll();
    throw err;
  }

  const dead = new Set<number>();
  const healthy = async () => {
    for (const n of nodes) {
      if (dead.has(n.port)) continue;
      const info = (await onNode(n.port, (c) => c.call('CLUSTER', 'INFO')).catch(() => '')) as string;
      if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
    }
    return true;
  };
  await waitFor('the Redis Cluster to be ok on every node', healthy, 60_000, 200);
  // every replica attached to its master. `redis-cli --cluster create` sends CLUSTER REPLICATE
  // to each replica once, after the nodes have met; on a busy machine a replica may not know
  // its master yet and refuse, and redis-cli still exits 0, leaving a master without slots.
  // After a grace period such a node is attached here to a master that has no replica.
  const started = Date.now();
  let last = '';
  await waitFor(
    'three masters with one replica each',
    async () => {
      const t = await topology(nodes[0]!.port);
      last = [...t.values()]
        .map((n) => `${n.port}:${n.master === null ? `master[${n.slots.length} ranges]` : 'replica'}`)
        .join(' ');
      const all = [...t.entries()];
      const masters = all.filter(([, n]) => n.master === null && n.slots.length > 0);
      const replicas = all.filter(([, n]) => n.master !== null);
      if (masters.length === 3 && replicas.length === 3) return true;
      if (Date.now() - started > 5_000) {
        const lone = all.filter(([, n]) => n.master === null && n.slots.length === 0 && !n.failed);
        const bare = masters.filter(([id]) => !replicas.some(([, r]) => r.master === id));
        for (let i = 0; i < Math.min(lone.length, bare.length); i++)
          await onNode(lone[i]![1].port, (c) => c.call('CLUSTER', 'REPLICATE', bare[i]![0])).catch(() => {});
      }
      return false;
    },
    60_000,
    200,
  ).catch((err: Error) => {
    throw new Error(`${err.message} (last seen by ${nodes[0]!.port}: ${last})`);
  });

  const roles = async (slot: number) => {
    const t = await topology(nodes[0]!.port);
    for (const [id, n] of t)
      if (n.master === null && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b))
        return {
          master: n.port,
          replicas: [...t.values()].filter((r) => r.master === id && !r.failed).map((r) => r.port),
        };
    throw new Error(`no master serves slot ${slot}`);
  };

  return {
    url: `redis-cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
    nodes,
    roles,
    healthy,
    async failover(slot) {
      const before = await roles(slot);
      const to = before.replicas[0];
      if (to === undefined) throw new Error(`the master of slot ${slot} has no replica`);
      // a replica still syncing ignores a manual failover (it times out quietly): wait for its
      // link, and ask again if the first request did not take
      await waitFor(
        `replica ${to} in sync`,
        async () =>
          /master_link_status:up/.test(await onNode(to, (c) => c.info('replication'))) &&
          !/master_sync_in_progress:1/.test(await onNode(to, (c) => c.info('replication'))),
        60_000,
        200,
      );
      let seen = '';
      for (let attempt = 1; ; attempt++) {
        await run(cli, ['-p', String(to), 'cluster', 'failover'], { timeout: 30_000 });
        try {
          await waitFor(
            `replica ${to} to take over slot ${slot}`,
            async () => {
              const now = await roles(slot);
              const ok = await healthy();
              seen = `master ${now.master}, cluster ok ${ok}`;
              return now.master === to && ok;
            },
            20_000,
            200,
          );
          break;
        } catch (err) {
          if (attempt >= 3) throw new Error(`${(err as Error).message} (last seen: ${seen})`);
        }
      }
      return { from: before.master, to };
    },
    async kill(slot) {
      const before = await roles(slot);
      const node = nodes.find((n) => n.port === before.master)!;
      dead.add(node.port);
      try {
        process.kill(-node.process.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await node.process.exited;
      let seen = '';
      await waitFor(
        `a replica to take over slot ${slot} from the killed ${before.master}`,
        async () => {
          const now = await roles(slot);
          const ok = await healthy();
          seen = `master ${now.master}, cluster ok ${ok}`;
          return now.master !== before.master && ok;
        },
        60_000,
        200,
      ).catch((err: Error) => {
        throw new Error(`${err.message} (last seen: ${seen})`);
      });
      return { from: before.master, to: (await roles(slot)).master };
    },
    stop: async () => {
      await stopAll();
    },
  };
}
