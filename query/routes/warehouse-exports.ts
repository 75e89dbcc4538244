// Warehouse exports (schemas/warehouse.ts): created, updated, paused and deleted per workspace,
// audited (the S3 secret never: only that it was set or replaced); the warehouse service
// (warehouse/) picks each change up from the revision. Stats: rows and files written, rows
// skipped, the last error, and the export's consumer lag.
import { randomBytes } from 'node:crypto';
import { type Context, Hono } from 'hono';
import type { GuardPolicy } from '../../activation/webhook/address-guard.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { Admin } from '../../runtime/kafka/index.ts';
import type { Redis } from '../../runtime/redis.ts';
import { type Keyring, keyring, seal } from '../../runtime/secrets-key.ts';
import { topics } from '../../schemas/topics.ts';
import {
  checkDirectoryPath,
  checkS3Names,
  DEFAULT_FLUSH_MS,
  DEFAULT_FLUSH_ROWS,
  MAX_WAREHOUSE_EXPORTS_PER_WORKSPACE,
  publicWarehouseExport,
  type WarehouseExport,
  type WarehouseExportInput,
  WarehouseInputError,
  WarehouseStore,
  type WarehouseTarget,
  warehouseAad,
  warehouseGroup,
  warehouseInputCheck,
  warehouseKeys,
} from '../../schemas/warehouse.ts';
import { sourcesOf } from '../../warehouse/exporter.ts';
import { checkS3Endpoint } from '../../warehouse/targets.ts';
import { actorOf, recordAudit } from '../audit.ts';
import { type QueryEnv, readJson } from '../context.ts';
import { QueryError } from '../query-error.ts';
import { checkBody } from '../validate.ts';

export function warehouseExportRoutes(deps: {
  clickhouse: ClickHouseClient;
  redis: Redis;
  redisPrefix: string;
  now: () => Date;
  /** Which literal addresses an S3 endpoint may name (the destinations' address policy). */
  addressPolicy: GuardPolicy;
  kafkaAdmin?: Admin;
  topicPrefix?: string;
  /** Seals S3 secrets (CDP_SECRETS_KEY); none: an S3 export cannot be saved. */
  secrets?: Keyring;
}) {
  const app = new Hono<QueryEnv>();
  const store = new WarehouseStore(deps.redis, deps.redisPrefix);
  const ring = deps.secrets ?? keyring();

  const save = async (
    c: Context<QueryEnv>,
    before: WarehouseExport | null,
    after: WarehouseExport | null,
  ) => {
    const ws = c.get('workspaceId');
    const entity = (after ?? before)!;
    if (after) await store.put(after);
    else await store.remove(ws, entity.id);
    const replaced =
      after?.target.kind === 's3' &&
      JSON.stringify(after.target.secretAccessKey) !==
        JSON.stringify(before?.target.kind === 's3' ? before.target.secretAccessKey : undefined);
    await recordAudit(
      deps.clickhouse,
      {
        workspaceId: ws,
        actor: actorOf(c.get('apiKey')),
        action: before === null ? 'create' : after === null ? 'delete' : 'update',
        entityType: 'warehouse_export',
        entityId: entity.id,
        before: before ? publicWarehouseExport(before) : null,
        after: after
          ? { ...publicWarehouseExport(after), ...(replaced ? { secretReplaced: true } : {}) }
          : null,
      },
      deps.now(),
    );
  };

  const validate = (raw: unknown): WarehouseExportInput => {
    const body = checkBody(warehouseInputCheck, raw);
    try {
      if (body.target.kind === 'directory') checkDirectoryPath(body.target.path);
      else {
        checkS3Endpoint(body.target.endpoint, deps.addressPolicy);
        checkS3Names(body.target.bucket, body.target.prefix ?? '');
      }
    } catch (err) {
      if (err instanceof WarehouseInputError) throw new QueryError(400, err.message);
      throw err;
    }
    return body;
  };

  const targetOf = (
    input: WarehouseExportInput,
    ws: string,
    id: string,
    before?: WarehouseExport,
  ): WarehouseTarget => {
    const t = input.target;
    if (t.kind === 'directory') return { kind: 'directory', path: t.path };
    let secret = before?.target.kind === 's3' ? before.target.secretAccessKey : undefined;
    if (t.secretAccessKey !== undefined) {
      if (!ring.current)
        throw new QueryError(
          400,
          'target.secretAccessKey: CDP_SECRETS_KEY is not set, secrets cannot be stored',
        );
      secret = seal(ring, t.secretAccessKey, warehouseAad(ws, id));
    }
    if (!secret) throw new QueryError(400, 'target.secretAccessKey: required');
    return {
      kind: 's3',
      endpoint: new URL(t.endpoint).origin,
      bucket: t.bucket,
      prefix: (t.prefix ?? '').replace(/\/$/, ''),
      region: t.region,
      accessKeyId: t.accessKeyId,
      secretAccessKey: secret,
    };
  };

  const load = async (ws: string, id: string) => {
    const def = await store.get(ws, id);
    if (!def) throw new QueryError(404, `no warehouse export ${id}`);
    return def;
  };

  app.get('/', async (c) => {
    const list = await store.list(c.get('workspaceId'));
    return c.json({ exports: list.map(publicWarehouseExport) });
  });

  app.post('/', async (c) => {
    const ws = c.get('workspaceId');
    const input = validate(await readJson(c.req.raw));
    if ((await store.list(ws)).length >= MAX_WAREHOUSE_EXPORTS_PER_WORKSPACE)
      throw new QueryError(
        409,
        `at most ${MAX_WAREHOUSE_EXPORTS_PER_WORKSPACE} warehouse exports per workspace`,
      );
    const id = `wh_${randomBytes(8).toString('hex')}`;
    const at = deps.now().toISOString();
    const def: WarehouseExport = {
      id,
      workspaceId: ws,
      name: input.name,
      datasets: input.datasets,
      target: targetOf(input, ws, id),
      flushRows: input.flushRows ?? DEFAULT_FLUSH_ROWS,
      flushMs: input.flushMs ?? DEFAULT_FLUSH_MS,
      status: input.status ?? 'active',
      version: 1,
      createdAt: at,
      updatedAt: at,
    };
    await save(c, null, def);
    return c.json(publicWarehouseExport(def), 201);
  });

  app.get('/:id', async (c) =>
    c.json(publicWarehouseExport(await load(c.get('workspaceId'), c.req.param('id')))),
  );

  app.put('/:id', async (c) => {
    const ws = c.get('workspaceId');
    const before = await load(ws, c.req.param('id'));
    const input = validate(await readJson(c.req.raw));
    const after: WarehouseExport = {
      ...before,
      name: input.name,
      datasets: input.datasets,
      target: targetOf(input, ws, before.id, before),
      flushRows: input.flushRows ?? before.flushRows,
      flushMs: input.flushMs ?? before.flushMs,
      status: input.status ?? before.status,
      version: before.version + 1,
      updatedAt: deps.now().toISOString(),
    };
    await save(c, before, after);
    return c.json(publicWarehouseExport(after));
  });

  app.delete('/:id', async (c) => {
    const before = await load(c.get('workspaceId'), c.req.param('id'));
    await save(c, before, null);
    return c.body(null, 204);
  });

  app.get('/:id/stats', async (c) => {
    const def = await load(c.get('workspaceId'), c.req.param('id'));
    const keys = warehouseKeys(deps.redisPrefix);
    const [s, progress] = await Promise.all([
      deps.redis.hgetall(keys.stats(def.id)),
      deps.redis.hgetall(keys.progress(def.id)),
    ]);
    let lag: number | null = null;
    if (deps.kafkaAdmin?.groupLag) {
      const t = topics(deps.topicPrefix ?? '');
      const parts = await deps.kafkaAdmin
        .groupLag(warehouseGroup(deps.topicPrefix ?? '', def.id), [...sourcesOf(def, t).keys()])
        .catch(() => null);
      if (parts) lag = parts.reduce((n, p) => n + p.lag, 0);
    }
    const pending = Object.values(progress).filter((v) => {
      try {
        return JSON.parse(v).pending !== null;
      } catch {
        return false;
      }
    }).length;
    return c.json({
      id: def.id,
      rows: Number(s.rows ?? 0),
      files: Number(s.files ?? 0),
      skipped: Number(s.skipped ?? 0),
      errors: Number(s.errors ?? 0),
      lastError: s.lastError ?? null,
      lastErrorAt: s.lastErrorAt ?? null,
      lastFileAt: s.lastFileAt ?? null,
      rangesPending: pending,
      lag,
    });
  });

  return app;
}
