// POST /v1/imports?kind=traits|consent takes a CSV (text/csv) or JSON lines
// (application/x-ndjson) body, streamed to disk, and answers 202 with the job at once;
// GET /v1/imports lists the latest, GET /v1/imports/{id} is its progress and
// GET /v1/imports/{id}/errors its rejected rows (query/imports/jobs.ts does the work).
import { Hono } from 'hono';
import { workspacesArchivedKey } from '../../runtime/workspaces.ts';
import { IMPORT_KINDS, type ImportFormat, type ImportJob, type ImportKind } from '../../schemas/import.ts';
import { actorOf, recordAudit } from '../audit.ts';
import type { QueryEnv } from '../context.ts';
import {
  activeImports,
  createImport,
  DEFAULT_MAX_UPLOADS,
  discardUpload,
  ImportBusyError,
  type ImportDeps,
  ImportTooLargeError,
  importErrors,
  listImports,
  MAX_ACTIVE_IMPORTS,
  MAX_ERRORS_KEPT,
  readImport,
  receiveUpload,
  runImport,
  UPLOAD_RETRY_AFTER_S,
  uploadSlots,
} from '../imports/jobs.ts';
import { QueryError } from '../query-error.ts';

const FORMATS: Record<string, ImportFormat> = {
  'text/csv': 'csv',
  'application/x-ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
  'application/x-jsonlines': 'ndjson',
};

/** The job as the API shows it, with where its rejected rows are listed. */
const view = (job: ImportJob) => ({ ...job, errors: `/v1/imports/${job.id}/errors` });

export function importRoutes(deps: ImportDeps & { signal?: AbortSignal }) {
  const app = new Hono<QueryEnv>();
  // uploads being received at once per workspace, in this process (see uploadSlots)
  const uploads = uploadSlots(deps.maxUploads ?? DEFAULT_MAX_UPLOADS);

  const load = async (ws: string, id: string) => {
    const job = await readImport(deps, ws, id);
    if (!job) throw new QueryError(404, `no import ${id}`);
    return job;
  };

  app.post('/', async (c) => {
    const ws = c.get('workspaceId');
    const kind = c.req.query('kind');
    if (!IMPORT_KINDS.includes(kind as ImportKind))
      throw new QueryError(400, `kind: give ?kind=${IMPORT_KINDS.join(' or ?kind=')}`);
    const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    const format = FORMATS[type];
    if (!format) throw new QueryError(400, 'send the file as text/csv or application/x-ndjson');
    const charset = /charset=([^;]+)/i
      .exec(c.req.header('content-type') ?? '')?.[1]
      ?.trim()
      .toLowerCase();
    if (charset && charset !== 'utf-8' && charset !== 'utf8')
      throw new QueryError(400, 'the file must be UTF-8');
    const length = c.req.header('content-length');
    if (length !== undefined && Number(length) > deps.maxBytes)
      throw new QueryError(413, `upload over ${deps.maxBytes} bytes`);
    // an archived workspace takes no new data (the admin key may still act in it)
    if ((await deps.redis.sismember(workspacesArchivedKey(deps.redisPrefix), ws)) === 1)
      throw new QueryError(409, `workspace ${ws} is archived: it takes no imports (un-archive it first)`);
    if ((await activeImports(deps, ws)) >= MAX_ACTIVE_IMPORTS)
      throw new QueryError(429, new ImportBusyError().message, 30);
    // a place among the workspace's uploads in flight, taken before the body is read and given
    // back on every way out (job made, refused, the client gone, an error)
    const release = uploads.take(ws);
    if (!release)
      throw new QueryError(
        429,
        `${uploads.max} uploads are already being received in this workspace; wait for one to finish`,
        UPLOAD_RETRY_AFTER_S,
      );
    const actor = actorOf(c.get('apiKey'));
    let job: ImportJob;
    try {
      let upload: Awaited<ReturnType<typeof receiveUpload>>;
      try {
        upload = await receiveUpload(deps, ws, c.req.raw.body);
      } catch (err) {
        if (err instanceof ImportTooLargeError) throw new QueryError(413, err.message);
        throw new QueryError(400, `the upload did not arrive whole: ${(err as Error).message}`);
      }
      if (upload.bytes === 0) {
        await discardUpload(deps, ws, upload);
        throw new QueryError(400, 'the file is empty');
      }
      try {
        // takes a place atomically: uploads received at the same time are counted again here
        job = await createImport(deps, ws, kind as ImportKind, format, upload, actor);
      } catch (err) {
        if (err instanceof ImportBusyError) throw new QueryError(429, err.message, 30);
        throw err;
      }
    } finally {
      release();
    }
    // who imported which file is on the record (it changes people's data and consent)
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor,
        action: 'create',
        entityType: 'import',
        entityId: job.id,
        before: null,
        after: {
          kind: job.kind,
          format: job.format,
          sha256: job.sha256,
          bytes: job.bytes,
          duplicateOf: job.duplicateOf,
        },
      },
      deps.now(),
    );
    if (job.status === 'processing')
      void runImport(deps, ws, job.id, deps.signal).catch((err) =>
        deps.log.error({ err: (err as Error).message, importId: job.id }, 'import_run_failed'),
      );
    c.header('Location', `/v1/imports/${job.id}`);
    return c.json(view(job), 202);
  });

  app.get('/', async (c) => {
    const jobs = await listImports(deps, c.get('workspaceId'), 50);
    return c.json({ items: jobs.map(view) });
  });

  app.get('/:id', async (c) => c.json(view(await load(c.get('workspaceId'), c.req.param('id')))));

  app.get('/:id/errors', async (c) => {
    const job = await load(c.get('workspaceId'), c.req.param('id'));
    const offset = Math.max(0, Math.min(MAX_ERRORS_KEPT, Number(c.req.query('offset') ?? 0) || 0));
    const limit = Math.max(1, Math.min(MAX_ERRORS_KEPT, Number(c.req.query('limit') ?? 100) || 100));
    const items = await importErrors(deps, job.workspaceId, job.id, offset, limit);
    return c.json({
      importId: job.id,
      rowsRejected: job.rowsRejected,
      // only the first MAX_ERRORS_KEPT rejected rows are kept
      kept: Math.min(job.rowsRejected, MAX_ERRORS_KEPT),
      items,
    });
  });

  return app;
}
