// Warehouse exports (issue #22): a workspace's events and profile changes written as Parquet
// files, partitioned by day, to a directory under the deployment's warehouse root or to an
// S3-compatible bucket. The definition, its storage in Redis, and the deterministic file
// names that make each file exactly once (warehouse/exporter.ts).
import { isAbsolute, normalize, resolve, sep } from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { Redis } from '../runtime/redis.ts';
import type { SealedBlob } from '../runtime/secrets-key.ts';
import { globalTag } from './redis-keys.ts';

export const WAREHOUSE_DATASETS = ['events', 'identity', 'segment_changes'] as const;
export type WarehouseDataset = (typeof WAREHOUSE_DATASETS)[number];

/** Exports per workspace (each is a consumer group of its own). */
export const MAX_WAREHOUSE_EXPORTS_PER_WORKSPACE = 10;

/** A relative path: letters, digits, `._-` segments separated by `/`, no `..`. */
const SAFE_PATH = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;
/** S3 bucket names (the DNS-compatible rule: 3–63 lowercase letters, digits, `.-`). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

const DirectoryTargetInput = Type.Object(
  { kind: Type.Literal('directory'), path: Type.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);
const S3TargetInput = Type.Object(
  {
    kind: Type.Literal('s3'),
    endpoint: Type.String({ minLength: 1, maxLength: 500 }),
    bucket: Type.String({ minLength: 3, maxLength: 63 }),
    prefix: Type.Optional(Type.String({ maxLength: 200 })),
    region: Type.String({ minLength: 1, maxLength: 40, pattern: '^[a-z0-9-]+$' }),
    accessKeyId: Type.String({ minLength: 1, maxLength: 128 }),
    /** Required on create; on update, absent keeps the stored one. */
    secretAccessKey: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  },
  { additionalProperties: false },
);

export const WarehouseExportInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    datasets: Type.Array(Type.Union(WAREHOUSE_DATASETS.map((d) => Type.Literal(d))), {
      minItems: 1,
      maxItems: WAREHOUSE_DATASETS.length,
      uniqueItems: true,
    }),
    target: Type.Union([DirectoryTargetInput, S3TargetInput]),
    /** A file is written once this many rows are buffered for one dataset and partition… */
    flushRows: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    /** …or once the oldest buffered message is this old. */
    flushMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('paused')])),
  },
  { additionalProperties: false },
);
export type WarehouseExportInput = Static<typeof WarehouseExportInput>;
export const warehouseInputCheck = TypeCompiler.Compile(WarehouseExportInput);

export type WarehouseTarget =
  | { kind: 'directory'; path: string }
  | {
      kind: 's3';
      endpoint: string;
      bucket: string;
      prefix: string;
      region: string;
      accessKeyId: string;
      /** Sealed with CDP_SECRETS_KEY, AAD warehouseAad(); never shown. */
      secretAccessKey: SealedBlob;
    };

export interface WarehouseExport {
  id: string;
  workspaceId: string;
  name: string;
  datasets: WarehouseDataset[];
  target: WarehouseTarget;
  flushRows: number;
  flushMs: number;
  status: 'active' | 'paused';
  version: number;
  createdAt: string;
  updatedAt: string;
}

export const DEFAULT_FLUSH_ROWS = 10_000;
export const DEFAULT_FLUSH_MS = 60_000;

export class WarehouseInputError extends Error {}

/** The AAD a target's secret is sealed under: bound to its workspace and export. */
export const warehouseAad = (workspaceId: string, id: string) => `warehouse:${workspaceId}:${id}`;

/** The export's own consumer group (offsets: where to read on; the files' record is in Redis). */
export const warehouseGroup = (topicPrefix: string, id: string) =>
  `${topicPrefix ? `${topicPrefix}.` : ''}cdp-warehouse-${id}`;

/** What the API shows: the secret never, only that one is set. */
export function publicWarehouseExport(def: WarehouseExport): Record<string, unknown> {
  const { target, ...rest } = def;
  if (target.kind === 'directory') return { ...rest, target };
  const { secretAccessKey: _secret, ...t } = target;
  return { ...rest, target: { ...t, secretAccessKeySet: true } };
}

/** A directory target's path, checked: relative, plain segments, never leaving its root. */
export function checkDirectoryPath(path: string): string {
  if (isAbsolute(path) || !SAFE_PATH.test(path) || path.split('/').some((s) => s === '.' || s === '..'))
    throw new WarehouseInputError(
      'target.path: a relative path of letters, digits and ._- segments separated by /, no "..", not absolute',
    );
  return path;
}

/**
 * Where a directory export writes: `<root>/<workspaceId>/<path>`. Each workspace has its own
 * subtree of the configured root (CDP_WAREHOUSE_DIR); the path was checked on save, and is
 * checked again here so a definition edited in Redis by hand cannot leave the root either.
 */
export function directoryOf(root: string, workspaceId: string, path: string): string {
  checkDirectoryPath(path);
  if (!SAFE_PATH.test(workspaceId)) throw new WarehouseInputError('workspace id not usable as a directory');
  const base = resolve(root);
  const dir = resolve(base, workspaceId, normalize(path));
  if (!dir.startsWith(base + sep)) throw new WarehouseInputError('target.path: outside the warehouse root');
  return dir;
}

export function checkS3Names(bucket: string, prefix: string): void {
  if (!BUCKET.test(bucket) || bucket.includes('..'))
    throw new WarehouseInputError('target.bucket: 3-63 lowercase letters, digits, "." and "-"');
  if (prefix !== '') checkDirectoryPath(prefix.replace(/\/$/, ''));
}

const pad = (offset: string) => offset.padStart(12, '0');

/**
 * The object key (relative path) of one file: dataset, UTC day, then the source lane and
 * partition and the first and last Kafka offsets the file covers. The same range always
 * gives the same name, so a rewrite after a crash replaces the file, never adds one.
 */
export function fileKey(opts: {
  dataset: WarehouseDataset;
  day: string;
  lane: 'main' | 'overflow';
  partition: number;
  from: string;
  to: string;
}): string {
  const lane = opts.lane === 'overflow' ? 'overflow-' : '';
  return `${opts.dataset}/dt=${opts.day}/${lane}p${opts.partition}-${pad(opts.from)}-${pad(opts.to)}.parquet`;
}

/** Redis keys of the exports, under the global hash tag (transactions take several at once). */
export const warehouseKeys = (prefix: string) => ({
  /** Hash `${workspaceId}/${id}` → WarehouseExport JSON. */
  defs: `${globalTag(prefix)}:warehouse:defs`,
  /** Counter bumped on every change; the service reloads when it moves. */
  revision: `${globalTag(prefix)}:warehouse:rev`,
  /**
   * Hash `${topic}:${partition}` → `{"done":"<offset>","pending":{"from","to"}|null}`: the last
   * offset whose file is durable, and the range being written (written before the files).
   */
  progress: (id: string) => `${globalTag(prefix)}:warehouse:progress:${id}`,
  /** Hash of counters for stats: rows, files, skipped, errors, lastError, lastFileAt. */
  stats: (id: string) => `${globalTag(prefix)}:warehouse:stats:${id}`,
});

export class WarehouseStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}
  private get keys() {
    return warehouseKeys(this.prefix);
  }
  async list(workspaceId?: string): Promise<WarehouseExport[]> {
    const all = await this.redis.hgetall(this.keys.defs);
    const out: WarehouseExport[] = [];
    for (const [field, raw] of Object.entries(all)) {
      if (workspaceId !== undefined && !field.startsWith(`${workspaceId}/`)) continue;
      try {
        out.push(JSON.parse(raw) as WarehouseExport);
      } catch {
        // a hand-edited entry that is not JSON is skipped, not fatal
      }
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }
  async get(workspaceId: string, id: string): Promise<WarehouseExport | null> {
    const raw = await this.redis.hget(this.keys.defs, `${workspaceId}/${id}`);
    return raw ? (JSON.parse(raw) as WarehouseExport) : null;
  }
  async put(def: WarehouseExport): Promise<void> {
    await this.redis
      .multi()
      .hset(this.keys.defs, `${def.workspaceId}/${def.id}`, JSON.stringify(def))
      .incr(this.keys.revision)
      .exec();
  }
  async remove(workspaceId: string, id: string): Promise<void> {
    await this.redis
      .multi()
      .hdel(this.keys.defs, `${workspaceId}/${id}`)
      .del(this.keys.progress(id), this.keys.stats(id))
      .incr(this.keys.revision)
      .exec();
  }
  async revision(): Promise<string> {
    return (await this.redis.get(this.keys.revision)) ?? '0';
  }
}

export interface WarehouseOptions {
  /** The directory every directory export lives under (one subdirectory per workspace). */
  root: string;
  pollMs: number;
}

/** CDP_WAREHOUSE_* (documented in the README's Configuration). */
export function warehouseOptions(dataDir: string, env: NodeJS.ProcessEnv = process.env): WarehouseOptions {
  const raw = env.CDP_WAREHOUSE_POLL_MS;
  const pollMs = raw === undefined || raw === '' ? 2000 : Number(raw);
  if (!Number.isInteger(pollMs) || pollMs <= 0)
    throw new Error(`CDP_WAREHOUSE_POLL_MS: a positive integer, not "${raw}"`);
  return { root: resolve(env.CDP_WAREHOUSE_DIR || `${dataDir}/warehouse`), pollMs };
}
