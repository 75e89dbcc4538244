// Erasure jobs (DELETE /v1/profiles/{id} starts one): their state, never the erased data.
import { Hono } from 'hono';
import type { Redis } from '../../runtime/redis.ts';
import type { QueryEnv } from '../context.ts';
import { listErasures, readErasure } from '../erasure-job.ts';
import { QueryError } from '../query-error.ts';

export function erasureRoutes(deps: { redis: Redis; redisPrefix: string }) {
  const app = new Hono<QueryEnv>();
  app.get('/', async (c) => {
    const limit = Number(c.req.query('limit') ?? '100');
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw new QueryError(400, 'limit: an integer from 1 to 1000');
    return c.json({ erasures: await listErasures(deps, c.get('workspaceId'), limit) });
  });
  app.get('/:jobId', async (c) => {
    const id = c.req.param('jobId');
    const job = /^er_[0-9a-f]{24}$/.test(id) ? await readErasure(deps, c.get('workspaceId'), id) : undefined;
    if (!job) throw new QueryError(404, `no erasure ${id}`);
    return c.json(job);
  });
  return app;
}
