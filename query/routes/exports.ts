// POST /v1/exports starts an export (202 with the job), GET /v1/exports lists the latest,
// GET /v1/exports/{id} is its progress, GET /v1/exports/{id}/file the finished file,
// DELETE /v1/exports/{id} cancels it or deletes its file (query/exports.ts does the work).
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { Hono } from 'hono';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { DefinitionStore } from '../../runtime/definitions.ts';
import { type ExportJob, exportInputCheck } from '../../schemas/export.ts';
import { InputError } from '../analytics/sql-params.ts';
import { actorOf, recordAudit } from '../audit.ts';
import type { QueryEnv } from '../context.ts';
import {
  checkExportSource,
  createExport,
  deleteExport,
  ExportBusyError,
  type ExportDeps,
  exportFile,
  listExports,
  readExport,
} from '../exports.ts';
import { QueryError } from '../query-error.ts';
import { validate } from '../validate.ts';

const CONTENT_TYPE = { csv: 'text/csv; charset=utf-8', parquet: 'application/vnd.apache.parquet' };

/** The job as the API shows it: with its progress (0–1) and where to download it. */
const view = (job: ExportJob) => ({
  ...job,
  progress:
    job.status === 'done'
      ? 1
      : job.rowsTotal
        ? Math.min(1, job.rowsDone / job.rowsTotal)
        : job.slicesTotal
          ? job.slicesDone / job.slicesTotal
          : 0,
  file: job.status === 'done' ? `/v1/exports/${job.id}/file` : null,
});

export function exportRoutes(deps: ExportDeps & { clickhouse: ClickHouseClient; defs: DefinitionStore }) {
  const app = new Hono<QueryEnv>();

  const load = async (ws: string, id: string) => {
    const job = await readExport(deps, ws, id);
    if (!job) throw new QueryError(404, `no export ${id}`);
    return job;
  };

  app.post('/', validate(exportInputCheck), async (c) => {
    const ws = c.get('workspaceId');
    const body = c.req.valid('json');
    let source: ExportJob['source'];
    try {
      source = checkExportSource(body);
    } catch (err) {
      if (err instanceof InputError) throw new QueryError(400, err.message);
      throw err;
    }
    if (source.segment && !(await deps.defs.get('segments', ws, source.segment.id)))
      throw new QueryError(400, `segment.id: no segment ${source.segment.id}`);
    let job: ExportJob;
    try {
      job = await createExport(deps, ws, body.format, source, actorOf(c.get('apiKey')));
    } catch (err) {
      if (err instanceof ExportBusyError) throw new QueryError(429, err.message, 30);
      throw err;
    }
    // who exported what is on the record (exports carry personal data)
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor: job.requestedBy,
        action: 'create',
        entityType: 'export',
        entityId: job.id,
        before: null,
        after: { format: job.format, source },
      },
      deps.now(),
    );
    c.header('Location', `/v1/exports/${job.id}`);
    return c.json(view(job), 202);
  });

  app.get('/', async (c) => {
    const jobs = await listExports(deps, c.get('workspaceId'), 50);
    return c.json({ items: jobs.map(view) });
  });

  app.get('/:id', async (c) => c.json(view(await load(c.get('workspaceId'), c.req.param('id')))));

  app.get('/:id/file', async (c) => {
    const job = await load(c.get('workspaceId'), c.req.param('id'));
    if (job.status !== 'done')
      throw new QueryError(409, `export ${job.id} is ${job.status}${job.error ? `: ${job.error}` : ''}`);
    const path = exportFile(deps, job);
    const size = (await stat(path).catch(() => undefined))?.size;
    if (size === undefined) throw new QueryError(410, `export ${job.id}: the file is gone; export again`);
    c.header('Content-Type', CONTENT_TYPE[job.format]);
    c.header('Content-Length', String(size));
    c.header('Content-Disposition', `attachment; filename="${job.id}.${job.format}"`);
    c.header('Cache-Control', 'no-store');
    return c.body(Readable.toWeb(createReadStream(path)) as ReadableStream);
  });

  app.delete('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const job = await load(ws, c.req.param('id'));
    await deleteExport(deps, job);
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor: actorOf(c.get('apiKey')),
        action: 'delete',
        entityType: 'export',
        entityId: job.id,
        before: { format: job.format, source: job.source, status: job.status },
        after: null,
      },
      deps.now(),
    );
    return c.body(null, 204);
  });

  return app;
}
