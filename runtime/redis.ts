import { Cluster, type ClusterNode, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from './log.ts';
import { metrics } from './metrics.ts';

export type { Redis };

/**
 * One Redis client per service. It reconnects forever with capped backoff; commands fail
 * fast while disconnected (so a consumer batch fails and is retried) instead of queueing
 * without bound.
 *
 * `REDIS_URL=redis-cluster://[user:password@]host:port,host:port,...` (or `rediss-cluster://`
 * for TLS) makes it a Redis Cluster client instead: the listed nodes are where it starts, it
 * learns the others. Every key of one workspace, and every global key, carries a hash tag
 * (schemas/redis-keys.ts), so each script and transaction is on one slot. The cluster client
 * is handed out typed as `Redis`; what differs is adapted here (pipelines, duplicate, scan).
 */
export function createRedis(url: string, log: Logger, name: string): Redis {
  const client = isClusterUrl(url) ? createCluster(url, name) : new Redis(url, singleOptions(name));
  timeCommands(client, name);
  let lastState = '';
  client.on('error', (err: Error) => {
    if (lastState === 'error') return;
    lastState = 'error';
    log.warn({ component: 'redis', err: err.message }, 'redis_error');
  });
  client.on('ready', () => {
    if (lastState === 'error') log.info({ component: 'redis' }, 'redis_recovered');
    lastState = 'ready';
  });
  return client;
}

/**
 * Every command the client sends (pipelined ones too: ioredis's pipelines send each through
 * the client's sendCommand) is timed into cdp_redis_call_seconds{client, command, result}.
 * The histogram's `ok` child is looked up once per command name; an error reply or a dropped
 * connection is an `error`.
 */
function timeCommands(client: Redis | Cluster, name: string): void {
  type Send = (command: { name: string; promise: Promise<unknown> }, ...rest: unknown[]) => unknown;
  const target = client as unknown as { sendCommand: Send };
  const send = target.sendCommand.bind(client) as Send;
  const children = new Map<string, { observe(v: number): void }>();
  target.sendCommand = (command, ...rest) => {
    const t0 = performance.now();
    const out = send(command, ...rest);
    let ok = children.get(command.name);
    if (!ok) {
      ok = metrics.redisSeconds.labels(name, command.name, 'ok');
      children.set(command.name, ok);
    }
    const done = ok;
    command.promise.then(
      () => done.observe((performance.now() - t0) / 1000),
      // rare: looked up when it happens, so no error series exists for a command that never failed
      () => metrics.redisSeconds.labels(name, command.name, 'error').observe((performance.now() - t0) / 1000),
    );
    return out;
  };
}

const singleOptions = (name: string): RedisOptions => ({
  connectionName: name,
  maxRetriesPerRequest: 2,
  enableAutoPipelining: false,
  connectTimeout: 3000,
  retryStrategy: (times) => Math.min(100 * times, 2000),
  lazyConnect: false,
});

export async function pingRedis(client: Redis): Promise<void> {
  if (client.status !== 'ready') throw new Error(`redis ${client.status}`);
  await client.ping();
}

// ---- Redis Cluster ----

export const isClusterUrl = (url: string) => /^rediss?-cluster:\/\//.test(url);

/** Whether `client` is a Redis Cluster client (createRedis with a `redis-cluster://` URL). */
export const isCluster = (client: Redis): boolean =>
  (client as unknown as { isCluster?: boolean }).isCluster === true;

/** Parses `redis-cluster://[user:password@]host:port,host:port,...[/]`; throws a clear error otherwise. */
export function parseClusterUrl(url: string): {
  nodes: ClusterNode[];
  username?: string;
  password?: string;
  tls: boolean;
} {
  const m = /^(rediss?)-cluster:\/\/(?:([^@/]*)@)?([^/?#]+)\/?$/.exec(url);
  if (!m) throw new Error('REDIS_URL: expected redis-cluster://[user:password@]host:port,host:port,...');
  const [, scheme, auth, hostList] = m;
  const nodes = hostList!.split(',').map((hp) => {
    const hm = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(hp.trim());
    const port = Number(hm?.[2]);
    if (!hm || port < 1 || port > 65535)
      throw new Error(`REDIS_URL: bad cluster node ${JSON.stringify(hp)} (host:port)`);
    return { host: hm[1]!.replace(/^\[|\]$/g, ''), port };
  });
  let username: string | undefined;
  let password: string | undefined;
  if (auth) {
    const i = auth.indexOf(':');
    username = decodeURIComponent(i < 0 ? '' : auth.slice(0, i)) || undefined;
    password = decodeURIComponent(i < 0 ? auth : auth.slice(i + 1)) || undefined;
  }
  return {
    nodes,
    tls: scheme === 'rediss',
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
  };
}

function createCluster(url: string, name: string): Redis {
  const { nodes, username, password, tls } = parseClusterUrl(url);
  const cluster = new Cluster(nodes, {
    redisOptions: {
      connectionName: name,
      connectTimeout: 3000,
      maxRetriesPerRequest: 2,
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
      ...(tls ? { tls: {} } : {}),
    },
    // off: ioredis's auto-pipelining builds pipelines through pipeline(), replaced below
    enableAutoPipelining: false,
    clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
    // a failover: the replica takes over after cluster-node-timeout; MOVED/CLUSTERDOWN are retried
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 100,
    maxRedirections: 16,
    slotsRefreshTimeout: 2000,
    scaleReads: 'master',
  });
  return adaptCluster(cluster, url, name);
}

type Call = [name: string, args: unknown[]];
type Dyn = Record<string, (...a: unknown[]) => Promise<unknown>>;

/**
 * A pipeline for the cluster: ioredis refuses a pipeline whose keys are on slots of different
 * nodes (the processor batches several workspaces' profiles in one), so the commands are
 * recorded and sent as single commands, each routed by its key. The client still writes
 * them back to back per node connection; what is lost is only the single round trip, which a
 * pipeline across nodes could not have anyway. Results come back as exec() gives them:
 * `[error | null, result]` in order. Transactions (multi) stay ioredis's own: one slot.
 */
function clusterPipeline(cluster: Cluster, initial?: unknown[][]): unknown {
  const calls: Call[] = (initial ?? []).map(([n, ...a]) => [String(n), a]);
  const proxy: unknown = new Proxy(
    {},
    {
      get(_t, prop) {
        if (typeof prop === 'symbol' || prop === 'then') return undefined;
        if (prop === 'length') return calls.length;
        if (prop === 'exec')
          return async () => {
            const d = cluster as unknown as Dyn;
            const settled = await Promise.allSettled(
              calls.map(([n, a]) => {
                const fn = d[n];
                if (typeof fn !== 'function') return Promise.reject(new Error(`unknown command ${n}`));
                return fn.apply(cluster, a);
              }),
            );
            return settled.map((s) => (s.status === 'fulfilled' ? [null, s.value] : [s.reason, undefined]));
          };
        return (...args: unknown[]) => {
          calls.push([prop, args]);
          return proxy;
        };
      },
    },
  );
  return proxy;
}

/** Redis Cluster's CRC16 (XMODEM) of a key's hash tag, mod 16384. */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  let s = key;
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) s = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const b of Buffer.from(s)) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

function adaptCluster(cluster: Cluster, url: string, name: string): Redis {
  const c = cluster as unknown as Record<string, unknown>;
  c.pipeline = (initial?: unknown[][]) => clusterPipeline(cluster, initial);
  // duplicate({ connectionName }) as the single-node client takes it (enableAutoPipelining is
  // not taken: commands to one node go back to back on its connection anyway)
  c.duplicate = (o?: { connectionName?: string }) => createCluster(url, o?.connectionName ?? name);
  // SCAN walks one node: every scan here matches one workspace's keys (`<prefix>:{ws}:…*`),
  // so it goes to the master serving that workspace's slot. A pattern without a hash tag
  // would see one node's keys only: refused.
  c.scan = async (cursor: string | number, ...args: unknown[]) => {
    const i = args.findIndex((a) => String(a).toUpperCase() === 'MATCH');
    const pattern = i >= 0 ? String(args[i + 1]) : '';
    const tag = /\{([^}]+)\}/.exec(pattern)?.[1];
    if (!tag || /[*?[\\]/.test(tag))
      throw new Error(
        `SCAN on a Redis Cluster needs a MATCH pattern with a hash tag (got ${JSON.stringify(pattern)})`,
      );
    const node = await masterOf(cluster, `{${tag}}`);
    return node.scan(cursor, ...(args as ['MATCH', string]));
  };
  return cluster as unknown as Redis;
}

/** The master client serving `key`'s slot (after the slot table is known). */
async function masterOf(cluster: Cluster, key: string): Promise<Redis> {
  const slot = keySlot(key);
  for (let attempt = 0; ; attempt++) {
    const owner = (cluster as unknown as { slots: string[][] }).slots[slot]?.[0];
    const node = owner
      ? cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner)
      : undefined;
    if (node) return node;
    if (attempt >= 20) throw new Error(`no Redis Cluster master serves slot ${slot}`);
    await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
  }
}
