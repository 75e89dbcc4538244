import { type ServerType, serve } from '@hono/node-server';
import type { Hono } from 'hono';
import { createLogger, type Logger } from './log.ts';

export type HealthCheck = () => Promise<void>;

let fallbackLog: Logger | undefined;
/** Where the detail goes when the caller gives no logger: the usual JSON log on stdout. */
const healthLog = () => {
  fallbackLog ??= createLogger({ level: process.env.LOG_LEVEL || 'info', name: 'health' });
  return fallbackLog;
};

/** A failing check's detail is logged again at most this often while it stays the same. */
const RELOG_MS = 60_000;

/**
 * `/healthz` answers while the process is alive; `/readyz` runs every dependency check
 * (each bounded in time) and answers 503 naming the ones that fail. The answer is public
 * (no key), so it says only `ok` or `fail` per check: why a check failed (an error message
 * can name internal hosts and ports) is logged (`readiness_check_failed`), not answered.
 */
export function mountHealth(
  app: Hono,
  checks: Record<string, HealthCheck>,
  timeoutMs = 2000,
  log?: Logger,
): void {
  // per check, the failure last logged and when: a poller (or anyone, the route is public)
  // hitting /readyz while a dependency is down does not write a line per request
  const logged = new Map<string, { detail: string; at: number }>();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const results = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        try {
          await withTimeout(check(), timeoutMs, `${name} check`);
          if (logged.delete(name)) (log ?? healthLog()).info({ check: name }, 'readiness_check_recovered');
          return [name, 'ok'] as const;
        } catch (err) {
          const detail = err instanceof Error ? err.message : String(err);
          const last = logged.get(name);
          const now = Date.now();
          if (!last || last.detail !== detail || now - last.at >= RELOG_MS) {
            logged.set(name, { detail, at: now });
            (log ?? healthLog()).warn({ check: name, err: detail }, 'readiness_check_failed');
          }
          return [name, 'fail'] as const;
        }
      }),
    );
    const failing = results.filter(([, r]) => r !== 'ok');
    return c.json(
      { status: failing.length === 0 ? 'ready' : 'not_ready', checks: Object.fromEntries(results) },
      failing.length === 0 ? 200 : 503,
    );
  });
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]);
}

export interface RunningServer {
  port: number;
  close(): Promise<void>;
}

export async function listen(app: Hono, host: string, port: number): Promise<RunningServer> {
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port }, () => resolve(s));
    s.once('error', reject);
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      }),
  };
}
