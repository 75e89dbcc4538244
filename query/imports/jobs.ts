// Bulk imports of traits and consent (issue #22). An upload is streamed to a file (hashed,
// never held in memory, refused past the size limit) and answered at once with the job; the
// rows are then read from the file in batches:
//   traits  → identify events on cdp.events, so identity, segments and the history see them;
//   consent → an identify event (the person's profile is made or found by the processor),
//             then the decision on the profile in Redis (an older decision never overrides a
//             newer one there) and its proof in consent_log (source import:<id>, the file's
//             SHA-256 and line in ref, who uploaded it in actor).
// Every row's messageId is derived from (workspace, kind, file SHA-256, line), so a file sent
// again is dropped by the processor's messageId dedup; a file already imported whole is not
// applied again at all (the new job names it in duplicateOf).
//
// Progress lives in Redis (one hash per job): after each batch is acknowledged the job's
// counts and committedLine are written in one transaction with the batch's rejected rows, so
// a query process that dies mid-import is replaced by the next one taking the job's lease,
// which reads the file again and goes on after committedLine.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import { errorMessage } from '../../runtime/errors.ts';
import type { OutgoingMessage, Producer } from '../../runtime/kafka/types.ts';
import type { Logger } from '../../runtime/log.ts';
import { isCluster, type Redis } from '../../runtime/redis.ts';
import { workspacesArchivedKey } from '../../runtime/workspaces.ts';
import { type ConsentLogRow, storeConsent } from '../../schemas/consent-log.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import {
  IMPORT_ID,
  type ImportFormat,
  type ImportJob,
  type ImportKind,
  type ImportRowError,
  importKeys,
  importsActiveKey,
} from '../../schemas/import.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { eventKey, topics } from '../../schemas/topics.ts';
import { recordAudit } from '../audit.ts';
import { CsvReader, JsonLinesReader } from './parse.ts';
import {
  type Checked,
  type ConsentRow,
  checkCsvRecord,
  checkHeader,
  checkJsonRecord,
  type ImportRow,
} from './rows.ts';

export interface ImportDeps {
  redis: Redis;
  redisPrefix: string;
  clickhouse: ClickHouseClient;
  producer: Producer;
  topicPrefix: string;
  log: Logger;
  now: () => Date;
  /** Where uploads are kept while they are imported (CDP_IMPORTS_DIR). */
  dir: string;
  /** The largest upload taken (CDP_IMPORTS_MAX_MB, default 1 GiB). */
  maxBytes: number;
  /** Rows per batch (default 2000). */
  batchRows?: number;
  /** How long a consent row waits for the processor to make its person's profile (default 120 s). */
  profileWaitMs?: number;
  /** Uploads received at once per workspace by this process (CDP_IMPORTS_MAX_UPLOADS, default 2). */
  maxUploads?: number;
}

/** Imports under way at once per workspace. */
export const MAX_ACTIVE_IMPORTS = 3;
/** Uploads received at once per workspace by one query process, unless configured. */
export const DEFAULT_MAX_UPLOADS = 2;
/** Seconds a client refused for uploads in flight is told to wait (Retry-After). */
export const UPLOAD_RETRY_AFTER_S = 10;
/** Rejected rows kept for GET /v1/imports/{id}/errors (the count goes on past it). */
export const MAX_ERRORS_KEPT = 1000;
const LEASE_MS = 30_000;

export class ImportTooLargeError extends Error {}
export class ImportBusyError extends Error {
  constructor() {
    super(`${MAX_ACTIVE_IMPORTS} imports are already under way in this workspace; wait for one to finish`);
  }
}

/**
 * Uploads being received per workspace, in this process (a request holds its place from
 * before its body is read until its job is made or it is refused), so one key cannot stream
 * many bodies at once. `take` answers the release (idempotent), or undefined when the
 * workspace has `max` in flight. Per process: with several query processes behind a load
 * balancer a workspace may have up to `max` in each.
 */
export function uploadSlots(max: number) {
  const inFlight = new Map<string, number>();
  return {
    max,
    inFlight: (ws: string) => inFlight.get(ws) ?? 0,
    take(ws: string): (() => void) | undefined {
      const n = inFlight.get(ws) ?? 0;
      if (n >= max) return undefined;
      inFlight.set(ws, n + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const left = (inFlight.get(ws) ?? 1) - 1;
        if (left <= 0) inFlight.delete(ws);
        else inFlight.set(ws, left);
      };
    },
  };
}

const keysOf = (deps: Pick<ImportDeps, 'redisPrefix'>, ws: string) => importKeys(deps.redisPrefix, ws);
const wsDir = (deps: ImportDeps, ws: string) =>
  join(deps.dir, createHash('sha256').update(ws).digest('hex').slice(0, 16));
const fileOf = (deps: ImportDeps, job: Pick<ImportJob, 'workspaceId' | 'id'>) =>
  join(wsDir(deps, job.workspaceId), `${job.id}.upload`);

/** The messageId of a file's row: the same file in the same workspace gives the same ids. */
export const rowMessageId = (ws: string, kind: ImportKind, sha256: string, line: number) =>
  `imp-${createHash('sha256').update(`${ws}\n${kind}\n${sha256}\n${line}`).digest('hex').slice(0, 32)}`;

export interface Upload {
  id: string;
  sha256: string;
  bytes: number;
}

/**
 * Streams a request body to the workspace's upload directory, hashing it on the way;
 * ImportTooLargeError (and nothing kept) past maxBytes.
 */
export async function receiveUpload(
  deps: ImportDeps,
  ws: string,
  body: ReadableStream<Uint8Array> | null,
): Promise<Upload> {
  const id = `imp_${randomBytes(16).toString('hex')}`;
  await mkdir(wsDir(deps, ws), { recursive: true, mode: 0o700 });
  const final = fileOf(deps, { workspaceId: ws, id });
  const partial = `${final}.part`;
  const hash = createHash('sha256');
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > deps.maxBytes) return done(new ImportTooLargeError(`upload over ${deps.maxBytes} bytes`));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    const source = body
      ? Readable.fromWeb(body as import('node:stream/web').ReadableStream)
      : Readable.from([]);
    await pipeline(source, meter, createWriteStream(partial, { mode: 0o600 }));
    await rename(partial, final);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  return { id, sha256: hash.digest('hex'), bytes };
}

export async function readImport(deps: Pick<ImportDeps, 'redis' | 'redisPrefix'>, ws: string, id: string) {
  if (!IMPORT_ID.test(id)) return undefined;
  const raw = await deps.redis.hget(keysOf(deps, ws).job(id), 'job');
  return raw ? (JSON.parse(raw) as ImportJob) : undefined;
}

export async function listImports(
  deps: Pick<ImportDeps, 'redis' | 'redisPrefix'>,
  ws: string,
  limit: number,
) {
  const ids = await deps.redis.zrevrange(keysOf(deps, ws).list, 0, limit - 1);
  const jobs = await Promise.all(ids.map((id) => readImport(deps, ws, id)));
  return jobs.filter((j): j is ImportJob => j !== undefined);
}

export async function importErrors(
  deps: Pick<ImportDeps, 'redis' | 'redisPrefix'>,
  ws: string,
  id: string,
  offset: number,
  limit: number,
): Promise<ImportRowError[]> {
  const raw = await deps.redis.lrange(keysOf(deps, ws).errors(id), offset, offset + limit - 1);
  return raw.map((r) => JSON.parse(r) as ImportRowError);
}

/** Imports of the workspace still processing. */
export async function activeImports(deps: Pick<ImportDeps, 'redis' | 'redisPrefix'>, ws: string) {
  return deps.redis.scard(keysOf(deps, ws).active);
}

/** Takes one of the workspace's MAX_ACTIVE_IMPORTS places, atomically (uploads finishing at once). */
const TAKE_PLACE = `
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[2])
return 1`;

/**
 * Makes the job of an upload. A file of this kind already imported whole in the workspace is
 * not applied again: the job is done at once, naming the earlier one (and the upload is deleted).
 */
export async function createImport(
  deps: ImportDeps,
  ws: string,
  kind: ImportKind,
  format: ImportFormat,
  upload: Upload,
  requestedBy: string,
): Promise<ImportJob> {
  const k = keysOf(deps, ws);
  const at = deps.now().toISOString();
  const earlierId = await deps.redis.hget(k.byHash, `${kind}:${upload.sha256}`);
  const earlier = earlierId ? await readImport(deps, ws, earlierId) : undefined;
  if (!earlier && (await deps.redis.eval(TAKE_PLACE, 1, k.active, MAX_ACTIVE_IMPORTS, upload.id)) !== 1) {
    await rm(fileOf(deps, { workspaceId: ws, id: upload.id }), { force: true });
    throw new ImportBusyError();
  }
  const job: ImportJob = {
    id: upload.id,
    workspaceId: ws,
    kind,
    format,
    status: earlier ? 'done' : 'processing',
    sha256: upload.sha256,
    bytes: upload.bytes,
    requestedBy,
    createdAt: at,
    updatedAt: at,
    finishedAt: earlier ? at : null,
    duplicateOf: earlier?.id ?? null,
    rowsRead: earlier?.rowsRead ?? 0,
    rowsAccepted: earlier?.rowsAccepted ?? 0,
    rowsRejected: earlier?.rowsRejected ?? 0,
    committedLine: earlier?.committedLine ?? 0,
    error: null,
  };
  // On a Redis Cluster the imports under way (a global key) and the job (the workspace's) are
  // on two slots: the resume entry first, so a crash after the job is written still resumes it
  // (an entry whose job is not there is dropped by the resumer)
  const apart = isCluster(deps.redis);
  if (apart && !earlier)
    await deps.redis.zadd(importsActiveKey(deps.redisPrefix), Date.parse(at), `${ws}/${job.id}`);
  const m = deps.redis
    .multi()
    .hset(k.job(job.id), 'job', JSON.stringify(job))
    .zadd(k.list, Date.parse(at), job.id);
  if (!earlier && !apart) m.zadd(importsActiveKey(deps.redisPrefix), Date.parse(at), `${ws}/${job.id}`);
  await m.exec();
  if (earlier) await rm(fileOf(deps, job), { force: true });
  return job;
}

/** Deletes an upload that never became a job (refused after it was received). */
export async function discardUpload(deps: ImportDeps, ws: string, upload: Upload): Promise<void> {
  await rm(fileOf(deps, { workspaceId: ws, id: upload.id }), { force: true });
}

const LEASE_RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

/**
 * Runs (or resumes) one import while holding its lease; returns false when another process
 * holds it. Resolves once the job is done or failed.
 */
export async function runImport(
  deps: ImportDeps,
  ws: string,
  id: string,
  signal?: AbortSignal,
): Promise<boolean> {
  const k = keysOf(deps, ws);
  const token = randomBytes(8).toString('hex');
  if ((await deps.redis.set(k.lease(id), token, 'PX', LEASE_MS, 'NX')) !== 'OK') return false;
  const log = deps.log.child({ workspaceId: ws, importId: id });
  let job = await readImport(deps, ws, id);
  try {
    if (job?.status !== 'processing') {
      if (isCluster(deps.redis)) {
        // two slots (see createImport): either order is safe, this runs again for what is left
        await deps.redis.srem(k.active, id);
        await deps.redis.zrem(importsActiveKey(deps.redisPrefix), `${ws}/${id}`);
      } else
        await deps.redis
          .multi()
          .zrem(importsActiveKey(deps.redisPrefix), `${ws}/${id}`)
          .srem(k.active, id)
          .exec();
      return true;
    }
    job = await processFile(deps, job, async () => {
      // stopping: the job stays processing and the next holder of the lease goes on
      if (signal?.aborted) throw new LeaseLostError();
      // an archived workspace takes no new data: the job fails before its next batch
      if ((await deps.redis.sismember(workspacesArchivedKey(deps.redisPrefix), ws)) === 1)
        throw new ImportFileError(
          `workspace ${ws} was archived: the import stopped (the rows counted as accepted were applied)`,
        );
      if ((await deps.redis.eval(LEASE_RENEW, 1, k.lease(id), token, LEASE_MS)) !== 1)
        throw new LeaseLostError();
    });
    await finish(deps, job, 'done', null);
    log.info({ rows: job.rowsRead, rejected: job.rowsRejected }, 'import_done');
  } catch (err) {
    if (err instanceof LeaseLostError) {
      if (!signal?.aborted) log.warn('import_lease_lost');
      return true;
    }
    const latest = (await readImport(deps, ws, id).catch(() => undefined)) ?? job;
    const reason =
      err instanceof ImportFileError
        ? err.message
        : (err as NodeJS.ErrnoException).code === 'ENOENT'
          ? 'the uploaded file is gone (CDP_IMPORTS_DIR must be shared by the query processes); upload it again'
          : `import stopped: ${errorMessage(err)}`;
    log.error({ err: errorMessage(err) }, 'import_failed');
    if (latest) await finish(deps, latest, 'failed', reason).catch(() => {});
  } finally {
    await deps.redis.eval(
      "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
      1,
      k.lease(id),
      token,
    );
  }
  return true;
}

class LeaseLostError extends Error {}
/** The file itself is unusable (its header, its encoding): the job fails with this reason. */
class ImportFileError extends Error {}

async function finish(deps: ImportDeps, job: ImportJob, status: 'done' | 'failed', error: string | null) {
  const k = keysOf(deps, job.workspaceId);
  const at = deps.now();
  const done: ImportJob = {
    ...job,
    status,
    error,
    updatedAt: at.toISOString(),
    finishedAt: at.toISOString(),
  };
  const apart = isCluster(deps.redis);
  const m = deps.redis.multi().hset(k.job(job.id), 'job', JSON.stringify(done)).srem(k.active, job.id);
  if (!apart) m.zrem(importsActiveKey(deps.redisPrefix), `${job.workspaceId}/${job.id}`);
  if (status === 'done') m.hset(k.byHash, `${job.kind}:${job.sha256}`, job.id);
  await m.exec();
  // on a cluster (two slots) the resume entry after the job: one left by a crash finds the job
  // finished and is dropped
  if (apart) await deps.redis.zrem(importsActiveKey(deps.redisPrefix), `${job.workspaceId}/${job.id}`);
  await rm(fileOf(deps, job), { force: true });
  // the outcome on the record, next to the upload's entry
  await recordAudit(
    deps.clickhouse,
    {
      workspaceId: job.workspaceId,
      actor: job.requestedBy,
      action: 'update',
      entityType: 'import',
      entityId: job.id,
      before: null,
      after: {
        kind: job.kind,
        sha256: job.sha256,
        status,
        rowsRead: job.rowsRead,
        rowsAccepted: job.rowsAccepted,
        rowsRejected: job.rowsRejected,
        error,
      },
    },
    at,
  );
}

/** Reads the job's file from the start, skipping what is committed, and applies the rest in batches. */
async function processFile(
  deps: ImportDeps,
  start: ImportJob,
  renew: () => Promise<void>,
): Promise<ImportJob> {
  let job = { ...start };
  const nowMs = deps.now().getTime();
  const batchRows = deps.batchRows ?? 2000;
  let header: string[] | undefined;
  let rows: ImportRow[] = [];
  let errors: ImportRowError[] = [];
  let lastLine = job.committedLine;
  let read = 0;
  const take = (c: Checked) => {
    read++;
    if (c.ok) rows.push(c.row);
    else errors.push({ line: c.line, reason: c.reason });
  };
  const csv = new CsvReader();
  const jsonl = new JsonLinesReader();
  const queue: Array<{ line: number; fields?: string[]; value?: unknown; error?: string }> = [];
  const onRecord = (r: { line: number; fields?: string[]; value?: unknown; error?: string }) => queue.push(r);

  const handle = (r: { line: number; fields?: string[]; value?: unknown; error?: string }) => {
    if (job.format === 'csv' && header === undefined) {
      // the header is line 1's record; a file without a usable one fails as a whole
      if (r.error !== undefined) throw new ImportFileError(`header: ${r.error}`);
      try {
        header = checkHeader(job.kind, r.fields!);
      } catch (err) {
        throw new ImportFileError((err as Error).message);
      }
      lastLine = Math.max(lastLine, r.line);
      return;
    }
    if (r.line <= start.committedLine) return;
    lastLine = r.line;
    if (r.error !== undefined) take({ ok: false, line: r.line, reason: r.error });
    else if (job.format === 'csv') take(checkCsvRecord(job.kind, header!, r.fields!, r.line, nowMs));
    else take(checkJsonRecord(job.kind, r.value, r.line, nowMs));
  };

  // Batches are sent while the next ones are read (traits: up to 3 under way; consent: one
  // at a time), and committed strictly in order, each after its own acknowledgement.
  const depth = job.kind === 'traits' ? 3 : 1;
  let committed: Promise<void> = Promise.resolve();
  const pending: Array<Promise<void>> = [];
  const flush = async () => {
    if (read === 0 && lastLine === job.committedLine && pending.length === 0) return;
    await renew();
    const batch = { rows, errors, read, lastLine };
    rows = [];
    errors = [];
    read = 0;
    const applied = applyBatch(deps, job, batch.rows);
    // no unhandled rejection while it waits for the commits before it
    applied.catch(() => {});
    const commit = committed.then(async () => {
      const outcome = await applied;
      const errs = [...batch.errors, ...outcome.rejected].sort((a, b) => a.line - b.line);
      const next: ImportJob = {
        ...job,
        rowsRead: job.rowsRead + batch.read,
        rowsAccepted: job.rowsAccepted + batch.rows.length - outcome.rejected.length,
        rowsRejected: job.rowsRejected + errs.length,
        committedLine: batch.lastLine,
        updatedAt: deps.now().toISOString(),
      };
      const k = keysOf(deps, job.workspaceId);
      const m = deps.redis.multi().hset(k.job(job.id), 'job', JSON.stringify(next));
      const room = MAX_ERRORS_KEPT - job.rowsRejected;
      if (room > 0 && errs.length > 0) {
        m.rpush(k.errors(job.id), ...errs.slice(0, room).map((e) => JSON.stringify(e)));
        m.ltrim(k.errors(job.id), 0, MAX_ERRORS_KEPT - 1);
      }
      await m.exec();
      job = next;
    });
    commit.catch(() => {});
    committed = commit;
    pending.push(commit);
    while (pending.length >= depth) await pending.shift();
  };
  const settle = async () => {
    while (pending.length > 0) await pending.shift();
  };

  try {
    const decoder = new StringDecoder('utf8');
    const stream = createReadStream(fileOf(deps, job), { highWaterMark: 256 * 1024 });
    const drain = async () => {
      for (const r of queue.splice(0)) {
        handle(r);
        if (rows.length + errors.length >= batchRows) await flush();
      }
    };
    for await (const chunk of stream) {
      const text = decoder.write(chunk as Buffer);
      if (job.format === 'csv') csv.write(text, onRecord);
      else jsonl.write(text, onRecord);
      await drain();
    }
    const tail = decoder.end();
    if (job.format === 'csv') {
      csv.write(tail, onRecord);
      csv.end(onRecord);
    } else {
      jsonl.write(tail, onRecord);
      jsonl.end(onRecord);
    }
    await drain();
    if (job.format === 'csv' && header === undefined)
      throw new ImportFileError('the file is empty: no header');
    await flush();
    await settle();
  } catch (err) {
    // nothing of this run writes after it gave the job up
    await Promise.allSettled(pending);
    throw err;
  }
  return job;
}

/** Applies a batch's valid rows; answers the rows rejected on the way (a consent row's person erased, say). */
async function applyBatch(
  deps: ImportDeps,
  job: ImportJob,
  rows: ImportRow[],
): Promise<{ rejected: ImportRowError[] }> {
  if (rows.length === 0) return { rejected: [] };
  const eventsTopic = topics(deps.topicPrefix).events;
  const receivedAt = deps.now().toISOString();
  const messages: OutgoingMessage[] = rows.map((r) => {
    const anonymousId = r.userId
      ? null
      : `import-email:${createHash('sha256').update(r.email!).digest('hex').slice(0, 32)}`;
    const traits: Record<string, unknown> = r.kind === 'traits' ? { ...r.traits } : {};
    if (r.email) traits.email = r.email;
    const e: NormalizedEvent = {
      workspaceId: job.workspaceId,
      type: 'identify',
      messageId: rowMessageId(job.workspaceId, job.kind, job.sha256, r.line),
      userId: r.userId ?? null,
      anonymousId,
      properties: {},
      traits,
      context: { import: { id: job.id, line: r.line } },
      integrations: {},
      timestamp: new Date(r.atMs ?? Date.parse(job.createdAt)).toISOString(),
      receivedAt,
      keyKind: 'server',
    };
    return { key: eventKey(job.workspaceId, e.userId ?? anonymousId!), value: JSON.stringify(e) };
  });
  await deps.producer.send(eventsTopic, messages);
  if (job.kind === 'traits') return { rejected: [] };
  return applyConsent(deps, job, rows as ConsentRow[]);
}

/** Each decision on its person's profile (made by the identify just sent), then its proof in consent_log. */
async function applyConsent(
  deps: ImportDeps,
  job: ImportJob,
  rows: ConsentRow[],
): Promise<{ rejected: ImportRowError[] }> {
  const wk = workspaceKeys(deps.redisPrefix, job.workspaceId);
  const pids = new Map<number, string>();
  const deadline = Date.now() + (deps.profileWaitMs ?? 120_000);
  let waiting = rows;
  for (;;) {
    const found = await Promise.all(
      waiting.map(
        async (r) =>
          (r.userId ? await deps.redis.get(wk.identity('user', r.userId)) : null) ??
          (r.email ? await deps.redis.get(wk.identity('email', r.email)) : null),
      ),
    );
    const still: ConsentRow[] = [];
    waiting.forEach((r, i) => {
      if (found[i]) pids.set(r.line, found[i]!);
      else still.push(r);
    });
    waiting = still;
    if (waiting.length === 0 || Date.now() > deadline) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  const rejected: ImportRowError[] = waiting.map((r) => ({
    line: r.line,
    reason: 'the pipeline did not make a profile for this person in time; upload the file again',
  }));
  const logRows: ConsentLogRow[] = [];
  // the proof: which file (its SHA-256), which line, and where the decision was made
  const ref = (r: ConsentRow) => `sha256:${job.sha256}#line=${r.line};source=${r.origin}`;
  for (const r of rows) {
    const pid = pids.get(r.line);
    if (!pid) continue;
    const decision = { channel: r.channel, purpose: r.purpose, subscribed: r.subscribed };
    // older than what the profile has: kept in the log as history, not applied
    const person = await storeConsent(
      deps.redis,
      deps.redisPrefix,
      job.workspaceId,
      pid,
      [decision],
      r.atMs,
      `import:${job.id}`,
      'newer',
    );
    if (!person) {
      rejected.push({ line: r.line, reason: 'this person was erased; nothing was recorded' });
      continue;
    }
    logRows.push({
      workspace_id: job.workspaceId,
      at: r.atMs,
      profile_id: person.profileId,
      identifiers: person.identifiers,
      channel: r.channel,
      purpose: r.purpose,
      subscribed: r.subscribed ? 1 : 0,
      source: `import:${job.id}`,
      actor: job.requestedBy,
      campaign_id: '',
      ip: '',
      user_agent: '',
      text: r.text ?? '',
      status: r.subscribed ? 'subscribed' : 'revoked',
      ref: ref(r),
    });
  }
  if (logRows.length > 0)
    await deps.clickhouse.insert({ table: 'consent_log', format: 'JSONEachRow', values: logRows });
  return { rejected };
}

/** Resumes imports whose process stopped (their lease ended), every `pollMs`. */
export function startImportWorker(
  deps: ImportDeps,
  pollMs = 5_000,
): { stop(): Promise<void>; round(): Promise<void>; signal: AbortSignal } {
  let stopped = false;
  const abort = new AbortController();
  const running = new Set<Promise<unknown>>();
  const round = async () => {
    const members = await deps.redis.zrange(importsActiveKey(deps.redisPrefix), 0, 99);
    for (const m of members) {
      if (stopped) return;
      const [ws, id] = m.split('/') as [string, string];
      if (await deps.redis.exists(keysOf(deps, ws).lease(id))) continue;
      const p = runImport(deps, ws, id, abort.signal).catch((err) =>
        deps.log.error({ err: errorMessage(err), importId: id }, 'import_resume_failed'),
      );
      running.add(p);
      void p.finally(() => running.delete(p));
    }
  };
  const timer = setInterval(() => {
    if (!stopped)
      void round().catch((err) => deps.log.warn({ err: errorMessage(err) }, 'import_round_failed'));
  }, pollMs);
  timer.unref();
  return {
    round,
    signal: abort.signal,
    async stop() {
      stopped = true;
      abort.abort();
      clearInterval(timer);
      await Promise.allSettled([...running]);
    },
  };
}
