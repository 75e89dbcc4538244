import { type ServerType, serve } from '@hono/node-server';
import type { Hono } from 'hono';

export type HealthCheck = () => Promise<void>;

/**
 * `/healthz` answers while the process is alive; `/readyz` runs every dependency check
 * (each bounded in time) and answers 503 naming the ones that fail.
 */
export function mountHealth(app: Hono, checks: Record<string, HealthCheck>, timeoutMs = 2000): void {
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const results = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        try {
          await withTimeout(check(), timeoutMs, `${name} check`);
          return [name, 'ok'] as const;
        } catch (err) {
          return [name, err instanceof Error ? err.message : String(err)] as const;
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
