// Data exports: a segment's members, an event query or a whole BI view to a CSV or Parquet
// file, for data teams' offline work. A job, not a long response: the request answers 202,
// the work runs in slices (a few days of rows, or a page of members) so the engine is never
// held for long and progress can be read; the file is downloaded when done and deleted after
// its TTL. State lives in Redis (one hash per job), so a query process that dies mid-export
// is replaced by the next one taking the lease, which goes on from the last finished slice.
//
// Privacy: the request is audited (who exported what); a file made before an erasure in its
// workspace is deleted (it may hold the erased person), and an export under way when an
// erasure runs fails at its next slice (its parts and member snapshot deleted) and must be
// asked for again. The erasure itself takes the erased profile ids out of every member
// snapshot of the workspace (query/erase-profile.ts forgetExportMembers).
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { readProfile } from '../profiles/read.ts';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import { backoffDelayMs, errorMessage } from '../runtime/errors.ts';
import type { Logger } from '../runtime/log.ts';
import { isCluster, type Redis } from '../runtime/redis.ts';
import {
  EXPORT_TABLES,
  type ExportInput,
  type ExportJob,
  type ExportSlice,
  type ExportTable,
} from '../schemas/export.ts';
import { globalKeys, workspaceKeys } from '../schemas/redis-keys.ts';
import { InputError, SqlParams } from './analytics/sql-params.ts';
import { stitchedEvents } from './analytics/stitched-events.ts';
import { parseTime } from './analytics/time.ts';
import { compileWhere } from './analytics/where.ts';

export interface ExportDeps {
  redis: Redis;
  redisPrefix: string;
  clickhouse: ClickHouseClient;
  log: Logger;
  now: () => Date;
  /** Where the files are written (CDP_EXPORTS_DIR). */
  dir: string;
  /** How long a finished file is kept (CDP_EXPORTS_TTL_HOURS). */
  ttlMs: number;
  /** chDB merges Parquet slices into one file; a ClickHouse server streams Parquet in one slice. */
  engine: 'chdb' | 'server';
  /** Rows per slice (default 200,000). */
  sliceRows?: number;
}

export const EXPORT_ID = /^exp_[0-9a-f]{32}$/;
/** Exports pending or running at once per workspace. */
export const MAX_ACTIVE_EXPORTS = 3;
const LEASE_MS = 60_000;
const MAX_ATTEMPTS = 5;
const MEMBER_READS_AT_ONCE = 16;

const EVENT_COLUMNS = [
  'type',
  'event',
  'name',
  'timestamp',
  'received_at',
  'user_id',
  'anonymous_id',
  'group_id',
  'properties',
  'traits',
  'context',
  'page_url',
  'page_path',
  'page_referrer',
  'campaign_name',
  'campaign_source',
  'campaign_medium',
  'campaign_term',
  'campaign_content',
  'revenue',
  'value',
];
const MEMBER_STRUCTURE =
  "profile_id String, user_ids Array(String), anonymous_ids Array(String), emails Array(String), traits String, entered_at DateTime64(3, 'UTC'), first_seen_at Nullable(DateTime64(3, 'UTC')), last_seen_at Nullable(DateTime64(3, 'UTC'))";
const MEMBER_HEADER = [
  'profile_id',
  'user_ids',
  'anonymous_ids',
  'emails',
  'traits',
  'entered_at',
  'first_seen_at',
  'last_seen_at',
];

const keysOf = (deps: Pick<ExportDeps, 'redisPrefix'>, ws: string) => workspaceKeys(deps.redisPrefix, ws);
const wsDir = (deps: ExportDeps, ws: string) =>
  join(deps.dir, createHash('sha256').update(ws).digest('hex').slice(0, 16));
export const exportFile = (deps: ExportDeps, job: Pick<ExportJob, 'workspaceId' | 'id' | 'format'>) =>
  join(wsDir(deps, job.workspaceId), `${job.id}.${job.format}`);
const partsDir = (deps: ExportDeps, job: ExportJob) => join(wsDir(deps, job.workspaceId), `${job.id}.parts`);
const partFile = (deps: ExportDeps, job: ExportJob, i: number) =>
  join(partsDir(deps, job), `part-${String(i).padStart(6, '0')}.${job.format}`);

/** The range of an events or table source, checked; undefined ends for a whole table. */
function rangeOf(source: ExportJob['source']): { fromMs?: number; toMs?: number } {
  const r = source.events ?? source.table;
  if (!r) return {};
  const fromMs =
    r.from === undefined ? undefined : parseTime(r.from, source.events ? 'events.from' : 'table.from');
  const toMs = r.to === undefined ? undefined : parseTime(r.to, source.events ? 'events.to' : 'table.to');
  if (fromMs !== undefined && toMs !== undefined && toMs <= fromMs)
    throw new InputError(source.events ? 'events.to' : 'table.to', 'must be after from');
  return { fromMs, toMs };
}

/** Checks a request beyond its schema (400s as InputError); compiles the filter once to find errors early. */
export function checkExportSource(input: ExportInput): Omit<ExportInput, 'format'> {
  const { format: _, ...source } = input;
  const given = (['segment', 'events', 'table'] as const).filter((k) => source[k] !== undefined);
  if (given.length !== 1) throw new InputError('source', 'give exactly one of segment, events, table');
  rangeOf(source);
  if (source.events?.where !== undefined) compileWhere(source.events.where, 'events.where', new SqlParams());
  return source;
}

export async function createExport(
  deps: ExportDeps,
  ws: string,
  format: ExportJob['format'],
  source: ExportJob['source'],
  requestedBy: string,
): Promise<ExportJob> {
  const k = keysOf(deps, ws);
  const recent = await listExports(deps, ws, 50);
  if (recent.filter((j) => j.status === 'pending' || j.status === 'running').length >= MAX_ACTIVE_EXPORTS)
    throw new ExportBusyError();
  const at = deps.now();
  const job: ExportJob = {
    id: `exp_${randomBytes(16).toString('hex')}`,
    workspaceId: ws,
    status: 'pending',
    format,
    source,
    requestedBy,
    createdAt: at.toISOString(),
    updatedAt: at.toISOString(),
    startedAt: null,
    finishedAt: null,
    expiresAt: null,
    rowsTotal: null,
    rowsDone: 0,
    slicesTotal: null,
    slicesDone: 0,
    bytes: null,
    error: null,
  };
  const due = globalKeys(deps.redisPrefix).exportsDue;
  if (isCluster(deps.redis)) {
    // On a Redis Cluster the due set (global tag) and the job (the workspace's) are on two
    // slots: no one transaction. Due a minute late first, so a crash before the job is written
    // leaves a member the runner drops (no job), one after it a job that runs a minute late;
    // then due now.
    await deps.redis.zadd(due, at.getTime() + 60_000, `${ws}/${job.id}`);
    await deps.redis
      .multi()
      .hset(k.exportJob(job.id), 'job', JSON.stringify(job), 'attempts', '0')
      .zadd(k.exports, at.getTime(), job.id)
      .exec();
    await deps.redis.zadd(due, 'XX', at.getTime(), `${ws}/${job.id}`);
    return job;
  }
  await deps.redis
    .multi()
    .hset(k.exportJob(job.id), 'job', JSON.stringify(job), 'attempts', '0')
    .zadd(k.exports, at.getTime(), job.id)
    .zadd(due, at.getTime(), `${ws}/${job.id}`)
    .exec();
  return job;
}

export class ExportBusyError extends Error {
  constructor() {
    super(`${MAX_ACTIVE_EXPORTS} exports are already under way in this workspace; wait for one to finish`);
  }
}

export async function readExport(deps: ExportDeps, ws: string, id: string): Promise<ExportJob | undefined> {
  if (!EXPORT_ID.test(id)) return undefined;
  const raw = await deps.redis.hget(keysOf(deps, ws).exportJob(id), 'job');
  if (!raw) return undefined;
  return removeIfErased(deps, JSON.parse(raw) as ExportJob);
}

export async function listExports(deps: ExportDeps, ws: string, limit: number): Promise<ExportJob[]> {
  const ids = await deps.redis.zrevrange(keysOf(deps, ws).exports, 0, limit - 1);
  const jobs = await Promise.all(ids.map((id) => readExport(deps, ws, id)));
  return jobs.filter((j): j is ExportJob => j !== undefined);
}

/** Deletes the job's file (or parts) and forgets the job. */
export async function deleteExport(deps: ExportDeps, job: ExportJob): Promise<void> {
  const k = keysOf(deps, job.workspaceId);
  const member = `${job.workspaceId}/${job.id}`;
  const g = globalKeys(deps.redisPrefix);
  if (isCluster(deps.redis)) {
    // two slots (see createExport): the job first; a member left by a crash is dropped by the
    // runner and the expirer, which find no job
    await deps.redis.multi().del(k.exportJob(job.id), k.exportMembers(job.id)).zrem(k.exports, job.id).exec();
    await deps.redis.multi().zrem(g.exportsDue, member).zrem(g.exportsExpire, member).exec();
  } else
    await deps.redis
      .multi()
      .del(k.exportJob(job.id), k.exportMembers(job.id))
      .zrem(k.exports, job.id)
      .zrem(g.exportsDue, member)
      .zrem(g.exportsExpire, member)
      .exec();
  await removeFiles(deps, job);
}

async function removeFiles(deps: ExportDeps, job: ExportJob): Promise<void> {
  await rm(exportFile(deps, job), { force: true });
  await rm(partsDir(deps, job), { recursive: true, force: true });
}

async function save(deps: ExportDeps, job: ExportJob): Promise<void> {
  job.updatedAt = deps.now().toISOString();
  await deps.redis.hset(keysOf(deps, job.workspaceId).exportJob(job.id), 'job', JSON.stringify(job));
}

/** A finished file made before an erasure in its workspace is deleted: it may hold the erased person. */
async function removeIfErased(deps: ExportDeps, job: ExportJob): Promise<ExportJob> {
  if (job.status !== 'done' || !job.finishedAt) return job;
  const erasedAt = await deps.redis.zscore(globalKeys(deps.redisPrefix).erasedWorkspaces, job.workspaceId);
  if (erasedAt === null || Number(erasedAt) < Date.parse(job.createdAt)) return job;
  await removeFiles(deps, job);
  await deps.redis.del(keysOf(deps, job.workspaceId).exportMembers(job.id));
  job.status = 'expired';
  job.error = 'deleted: an erasure ran in this workspace after the export was requested; export again';
  job.expiresAt = null;
  await save(deps, job);
  await deps.redis.zrem(globalKeys(deps.redisPrefix).exportsExpire, `${job.workspaceId}/${job.id}`);
  return job;
}

// ---- the worker -------------------------------------------------------------------------

/** Takes the earliest due job whose time has come, moving it a lease ahead; null when none. */
const CLAIM = `
local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)[1]
if not m then return false end
redis.call('ZADD', KEYS[1], ARGV[2], m)
return m`;

/** One round: deletes expired and erased files, then runs the jobs that are due (at most 10). */
export async function runDueExports(deps: ExportDeps, stopped: () => boolean = () => false): Promise<void> {
  await expireFiles(deps);
  for (let n = 0; n < 10 && !stopped(); n++) {
    const now = deps.now().getTime();
    const member = (await deps.redis.eval(
      CLAIM,
      1,
      globalKeys(deps.redisPrefix).exportsDue,
      now,
      now + LEASE_MS,
    )) as string | null;
    if (!member) return;
    const slash = member.indexOf('/');
    await runExport(deps, member.slice(0, slash), member.slice(slash + 1), stopped);
  }
}

/** Rounds every `pollMs` until stopped; a job cut short by `stop` is resumed when its lease ends. */
export function startExportWorker(deps: ExportDeps, pollMs = 500): { stop(): Promise<void> } {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const loop = async () => {
    while (!stopped) {
      running = runDueExports(deps, () => stopped).catch((err) =>
        deps.log.warn({ err: errorMessage(err) }, 'export_round_failed'),
      );
      await running;
      if (!stopped) await new Promise((r) => setTimeout(r, pollMs));
    }
  };
  void loop();
  return {
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}

async function expireFiles(deps: ExportDeps): Promise<void> {
  const g = globalKeys(deps.redisPrefix);
  const live = await deps.redis.zrange(g.exportsExpire, 0, -1, 'WITHSCORES');
  const now = deps.now().getTime();
  for (let i = 0; i < live.length; i += 2) {
    const member = live[i]!;
    const slash = member.indexOf('/');
    const ws = member.slice(0, slash);
    const raw = await deps.redis.hget(keysOf(deps, ws).exportJob(member.slice(slash + 1)), 'job');
    if (!raw) {
      await deps.redis.zrem(g.exportsExpire, member);
      continue;
    }
    const job = await removeIfErased(deps, JSON.parse(raw) as ExportJob);
    if (job.status !== 'done' || Number(live[i + 1]) > now) continue;
    await removeFiles(deps, job);
    job.status = 'expired';
    job.error = 'deleted after its time to live';
    await save(deps, job);
    await deps.redis.zrem(g.exportsExpire, member);
  }
}

/** Runs one claimed job to its end (or until stopped, or a failure: then it is retried with backoff). */
async function runExport(deps: ExportDeps, ws: string, id: string, stopped: () => boolean): Promise<void> {
  const g = globalKeys(deps.redisPrefix);
  const k = keysOf(deps, ws);
  const member = `${ws}/${id}`;
  const [raw, attemptsRaw] = await deps.redis.hmget(k.exportJob(id), 'job', 'attempts');
  if (!raw) {
    await deps.redis.zrem(g.exportsDue, member);
    return;
  }
  const job = JSON.parse(raw) as ExportJob;
  if (job.status !== 'pending' && job.status !== 'running') {
    await deps.redis.zrem(g.exportsDue, member);
    return;
  }
  const fail = async (error: string) => {
    job.status = 'failed';
    job.error = error;
    job.finishedAt = deps.now().toISOString();
    await save(deps, job);
    await deps.redis.zrem(g.exportsDue, member);
    // the parts and the member snapshot (profile ids) go with the job's failure
    await deps.redis.del(k.exportMembers(id));
    await removeFiles(deps, job);
  };
  /** An erasure in the workspace since the job was requested: the rows may hold the erased person. */
  const erasedSince = async () => {
    const erasedAt = await deps.redis.zscore(g.erasedWorkspaces, ws);
    return erasedAt !== null && Number(erasedAt) >= Date.parse(job.createdAt);
  };
  const ERASED = 'an erasure ran in this workspace while the export was under way; export again';
  try {
    if (await erasedSince()) return await fail(ERASED);
    if (job.status === 'pending') {
      job.status = 'running';
      job.startedAt = deps.now().toISOString();
    }
    let slices = await readSlices(deps, job);
    if (!slices) {
      slices = await plan(deps, job);
      await deps.redis.hset(k.exportJob(id), 'slices', JSON.stringify(slices));
      job.slicesTotal = slices.length;
      job.rowsTotal = slices.reduce((n, s) => n + s.rows, 0);
      job.slicesDone = 0;
      job.rowsDone = 0;
      await rm(partsDir(deps, job), { recursive: true, force: true });
      await mkdir(partsDir(deps, job), { recursive: true });
      await save(deps, job);
    }
    for (let i = job.slicesDone; i < slices.length; i++) {
      if (stopped()) return;
      // checked before every slice, not only when the job is claimed: a long export stops soon
      if (await erasedSince()) return await fail(ERASED);
      await writeSlice(deps, job, slices, i);
      job.slicesDone = i + 1;
      job.rowsDone += slices[i]!.rows;
      await save(deps, job);
      // still ours: a lease further on
      await deps.redis.zadd(g.exportsDue, 'XX', deps.now().getTime() + LEASE_MS, member);
    }
    job.bytes = await assemble(deps, job, slices.length);
    job.status = 'done';
    job.finishedAt = deps.now().toISOString();
    const expires = deps.now().getTime() + deps.ttlMs;
    job.expiresAt = new Date(expires).toISOString();
    await save(deps, job);
    if (isCluster(deps.redis)) {
      // two slots: the snapshot of members is only garbage if a crash comes between
      await deps.redis.multi().zrem(g.exportsDue, member).zadd(g.exportsExpire, expires, member).exec();
      await deps.redis.del(k.exportMembers(id));
    } else
      await deps.redis
        .multi()
        .zrem(g.exportsDue, member)
        .zadd(g.exportsExpire, expires, member)
        .del(k.exportMembers(id))
        .exec();
    deps.log.info({ ws, id, rows: job.rowsDone, bytes: job.bytes }, 'export_done');
  } catch (err) {
    if (err instanceof InputError) return await fail(err.message);
    const attempts = Number(attemptsRaw ?? 0) + 1;
    deps.log.warn({ ws, id, attempts, err: errorMessage(err) }, 'export_failed');
    if (attempts >= MAX_ATTEMPTS)
      return await fail(`failed ${attempts} times; the query service log has why (job ${id})`);
    await deps.redis.hset(k.exportJob(id), 'attempts', String(attempts));
    await deps.redis.zadd(g.exportsDue, 'XX', deps.now().getTime() + backoffDelayMs(attempts), member);
  }
}

/** The planned slices, if planned and every finished slice's part is still on disk. */
async function readSlices(deps: ExportDeps, job: ExportJob): Promise<ExportSlice[] | undefined> {
  const raw = await deps.redis.hget(keysOf(deps, job.workspaceId).exportJob(job.id), 'slices');
  if (!raw) return undefined;
  const slices = JSON.parse(raw) as ExportSlice[];
  const parts = await readdir(partsDir(deps, job)).catch(() => [] as string[]);
  // parts of finished slices only count when all are there (a lost disk starts again)
  if (parts.filter((p) => !p.endsWith('.tmp')).length < job.slicesDone) return undefined;
  return slices;
}

const sliceRows = (deps: ExportDeps, job: ExportJob) =>
  job.format === 'parquet' && deps.engine === 'server'
    ? Number.POSITIVE_INFINITY
    : (deps.sliceRows ?? 200_000);

/** Splits the work into slices of about sliceRows rows: whole UTC days of rows, or pages of members. */
async function plan(deps: ExportDeps, job: ExportJob): Promise<ExportSlice[]> {
  const per = sliceRows(deps, job);
  if (job.source.segment) {
    const k = keysOf(deps, job.workspaceId);
    // a snapshot: people entering or leaving while it runs neither shift nor repeat a page
    const n = Number(
      await deps.redis.zrangestore(k.exportMembers(job.id), k.segmentMembers(job.source.segment.id), 0, -1),
    );
    await deps.redis.pexpire(k.exportMembers(job.id), 7 * 86_400_000);
    // pages of members by rank in the snapshot (fromMs/toMs hold ranks here)
    const page = Number.isFinite(per) ? Math.min(per, 10_000) : Math.max(n, 1);
    const slices: ExportSlice[] = [];
    for (let start = 0; start < n; start += page)
      slices.push({ fromMs: start, toMs: Math.min(n, start + page), rows: Math.min(page, n - start) });
    return slices.length ? slices : [{ fromMs: 0, toMs: 0, rows: 0 }];
  }
  const { sql, params, timeColumn } = sourceSql(job, rangeOf(job.source), true);
  const rs = await deps.clickhouse.query({
    query: `SELECT toUnixTimestamp64Milli(toDateTime64(toStartOfDay(${timeColumn}), 3)) AS d, ${
      job.source.events || job.source.table?.name === 'bi_events' ? 'uniqExact(message_id)' : 'count()'
    } AS n FROM (${sql}) GROUP BY d ORDER BY d`,
    query_params: params.values,
    format: 'JSONEachRow',
  });
  const days = (await rs.json<{ d: string; n: string }>()).map((r) => ({ d: Number(r.d), n: Number(r.n) }));
  const slices: ExportSlice[] = [];
  for (const { d, n } of days) {
    const last = slices.at(-1);
    if (last && last.rows + n <= per) {
      last.toMs = d + 86_400_000;
      last.rows += n;
    } else slices.push({ fromMs: d, toMs: d + 86_400_000, rows: n });
  }
  // the first and last slices reach the range's ends (rows at its edges are in their days)
  return slices.length ? slices : [{ fromMs: 0, toMs: 0, rows: 0 }];
}

/**
 * The rows of an events or table source in [fromMs, toMs) (the range's own bounds apply
 * too), with `ts` for ordering. `forPlan`: the same rows, for counting by day.
 */
function sourceSql(
  job: ExportJob,
  slice: { fromMs?: number; toMs?: number },
  forPlan = false,
): { sql: string; params: SqlParams; timeColumn: string } {
  const params = new SqlParams();
  const range = rangeOf(job.source);
  const fromMs = Math.max(range.fromMs ?? 0, slice.fromMs ?? 0);
  const toMs = Math.min(range.toMs ?? 10_000_000_000_000, slice.toMs ?? 10_000_000_000_000);
  const ws = job.workspaceId;
  const events = job.source.events;
  if (events || job.source.table?.name === 'bi_events') {
    const where =
      events?.where === undefined ? undefined : compileWhere(events.where, 'events.where', params);
    if (forPlan) {
      const w = params.bind(ws, 'String');
      return {
        sql: `SELECT message_id, timestamp FROM events WHERE workspace_id = ${w}
          AND timestamp >= fromUnixTimestamp64Milli(${params.bind(fromMs, 'Int64')})
          AND timestamp < fromUnixTimestamp64Milli(${params.bind(toMs, 'Int64')})
          ${events?.events ? `AND event IN ${params.bind(events.events, 'Array(String)')}` : ''}
          ${where ? `AND ${where}` : ''}`,
        params,
        timeColumn: 'timestamp',
      };
    }
    const stitched = stitchedEvents(
      {
        workspaceId: ws,
        fromMs,
        toMs,
        events: events?.events,
        where,
        columns: Object.fromEntries(EVENT_COLUMNS.map((c) => [`c_${c}`, c])),
        persons: true,
      },
      params,
    );
    const cols = EVENT_COLUMNS.map((c) =>
      c === 'user_id' ? `c_${c} AS ${c}, person AS person_id` : `c_${c} AS ${c}`,
    );
    return {
      sql: `SELECT message_id, ${cols.join(', ')} FROM ${stitched} ORDER BY ts, message_id`,
      params,
      timeColumn: 'timestamp',
    };
  }
  const table = job.source.table!.name;
  const t = EXPORT_TABLES[table as ExportTable];
  return {
    // `table` is one of EXPORT_TABLES (the schema allows nothing else), so naming it is safe
    sql: `SELECT * FROM ${table} WHERE workspace_id = ${params.bind(ws, 'String')}
      AND ${t} >= fromUnixTimestamp64Milli(${params.bind(fromMs, 'Int64')})
      AND ${t} < fromUnixTimestamp64Milli(${params.bind(toMs, 'Int64')})
      ${forPlan ? '' : `ORDER BY ${t}`}`,
    params,
    timeColumn: t,
  };
}

async function writeSlice(deps: ExportDeps, job: ExportJob, slices: ExportSlice[], i: number): Promise<void> {
  const target = partFile(deps, job, i);
  const tmp = `${target}.tmp`;
  const slice = slices[i]!;
  if (job.source.segment) {
    const data = await memberRows(deps, job, slice);
    if (job.format === 'csv') {
      const lines = data.map((r) => MEMBER_HEADER.map((h) => csvValue(r[h])).join(','));
      const text = `${i === 0 ? `${MEMBER_HEADER.join(',')}\r\n` : ''}${lines.map((l) => `${l}\r\n`).join('')}`;
      await pipeline([text], createWriteStream(tmp));
    } else {
      const r = await deps.clickhouse.exec({
        query: `SELECT * FROM format(JSONEachRow, '${MEMBER_STRUCTURE.replace(/'/g, "\\'")}', {data:String}) FORMAT Parquet`,
        query_params: { data: data.map((r) => JSON.stringify(r)).join('\n') },
      });
      await pipeline(r.stream, createWriteStream(tmp));
    }
  } else {
    const { sql, params } = sourceSql(job, slice);
    const format = job.format === 'parquet' ? 'Parquet' : i === 0 ? 'CSVWithNames' : 'CSV';
    const r = await deps.clickhouse.exec({
      query: `${sql} FORMAT ${format}`,
      query_params: params.values,
      clickhouse_settings: { output_format_csv_crlf_end_of_line: 1 },
    });
    await pipeline(r.stream, createWriteStream(tmp));
  }
  await rename(tmp, target);
}

/** A page of the member snapshot, each with their profile now (gone ones skipped). */
async function memberRows(
  deps: ExportDeps,
  job: ExportJob,
  slice: ExportSlice,
): Promise<Record<string, unknown>[]> {
  if (slice.toMs <= slice.fromMs) return [];
  const k = keysOf(deps, job.workspaceId);
  const page = await deps.redis.zrange(k.exportMembers(job.id), slice.fromMs, slice.toMs - 1, 'WITHSCORES');
  const members: Array<[string, number]> = [];
  for (let i = 0; i < page.length; i += 2) members.push([page[i]!, Number(page[i + 1])]);
  const rows: Array<Record<string, unknown> | undefined> = new Array(members.length);
  let next = 0;
  const worker = async () => {
    while (next < members.length) {
      const at = next++;
      const [id, enteredAt] = members[at]!;
      const p = await readProfile(deps.redis, deps.redisPrefix, job.workspaceId, id);
      if (!p) continue;
      rows[at] = {
        profile_id: p.id,
        user_ids: p.userIds,
        anonymous_ids: p.anonymousIds,
        emails: p.emails,
        traits: JSON.stringify(p.traits),
        entered_at: new Date(enteredAt).toISOString().replace('T', ' ').replace('Z', ''),
        first_seen_at: p.firstSeenAt ? p.firstSeenAt.replace('T', ' ').replace('Z', '') : null,
        last_seen_at: p.lastSeenAt ? p.lastSeenAt.replace('T', ' ').replace('Z', '') : null,
      };
    }
  };
  await Promise.all(Array.from({ length: MEMBER_READS_AT_ONCE }, worker));
  return rows.filter((r): r is Record<string, unknown> => r !== undefined);
}

/** RFC 4180: quoted when needed, quotes doubled; arrays as ClickHouse writes them (['a','b']). */
function csvValue(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = Array.isArray(v)
    ? `[${v.map((x) => `'${String(x).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`).join(',')}]`
    : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Joins the parts into the file; its size. */
async function assemble(deps: ExportDeps, job: ExportJob, parts: number): Promise<number> {
  const target = exportFile(deps, job);
  const tmp = `${target}.tmp`;
  if (parts === 1) await rename(partFile(deps, job, 0), tmp);
  else if (job.format === 'csv') {
    const out = createWriteStream(tmp);
    for (let i = 0; i < parts; i++)
      await pipeline(createReadStream(partFile(deps, job, i)), out, { end: false });
    await new Promise<void>((resolve, reject) =>
      out.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
  } else {
    // chDB reads the parts and writes one Parquet file (a server gets Parquet in one slice)
    const quote = (p: string) => `'${p.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    const list = Array.from(
      { length: parts },
      (_, i) => `SELECT * FROM file(${quote(partFile(deps, job, i))}, Parquet)`,
    );
    await deps.clickhouse.command({
      query: `SELECT * FROM (${list.join(' UNION ALL ')}) INTO OUTFILE ${quote(tmp)} TRUNCATE FORMAT Parquet`,
    });
  }
  await rename(tmp, target);
  await rm(partsDir(deps, job), { recursive: true, force: true });
  return (await stat(target)).size;
}
