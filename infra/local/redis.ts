// Debian's redis-server on its own port and data directory, append-only file on.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, portOpen, waitFor } from './ports.ts';
import { spawnTied, type TiedProcess } from './tied-process.ts';

const run = promisify(execFile);

export async function findRedisServer(): Promise<string> {
  for (const p of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) if (existsSync(p)) return p;
  try {
    const { stdout } = await run('sh', ['-c', 'command -v redis-server']);
    if (stdout.trim()) return stdout.trim();
  } catch {}
  if (process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
    await run(
      'sh',
      ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server'],
      {
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    return '/usr/bin/redis-server';
  }
  throw new Error(
    'redis-server not found: install it (Debian: apt-get install redis-server) or set REDIS_URL',
  );
}

export interface LocalRedis {
  url: string;
  process: TiedProcess;
  stop(): Promise<void>;
}

export async function startRedis(opts: {
  dataDir: string;
  port?: number;
  /** everysec (default: fast, a power loss can take the last second) or always (fsync per write). */
  appendfsync?: 'everysec' | 'always';
}): Promise<LocalRedis> {
  const bin = await findRedisServer();
  const dir = resolve(opts.dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const port = opts.port || (await freePort());
  if (await portOpen(port)) throw new Error(`Redis port ${port} is already in use`);
  const proc = spawnTied(
    bin,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      opts.appendfsync ?? 'everysec',
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
  const url = `redis://127.0.0.1:${port}`;
  await waitFor(
    `redis-server on ${port}`,
    async () => {
      const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      c.on('error', () => {});
      try {
        await c.connect();
        return (await c.ping()) === 'PONG';
      } finally {
        c.disconnect();
      }
    },
    30_000,
    100,
  );
  return { url, process: proc, stop: () => proc.stop(10_000) };
}
