// Composition root of the query service.

import { AuthFailureLimiter } from '../runtime/auth-failures.ts';
import { pingClickHouse } from '../runtime/clickhouse.ts';
import type { Clients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { DefinitionStore } from '../runtime/definitions.ts';
import { listen, mountHealth } from '../runtime/http.ts';
import type { Logger } from '../runtime/log.ts';
import { pingRedis } from '../runtime/redis.ts';
import type { RunningService } from '../runtime/service.ts';
import { WorkspaceStore } from '../runtime/workspaces.ts';
import { WriteKeyStore } from '../runtime/write-keys.ts';
import { confirmSecret } from '../schemas/double-opt-in.ts';
import { TOMBSTONE_REFRESH_MS } from '../schemas/erasure.ts';
import { createQueryApp } from './app.ts';
import { startAuditQueueWorker } from './audit-queue.ts';
import { BiCredentialStore } from './bi-sql/credentials.ts';
import { createBiSqlApp } from './bi-sql/server.ts';
import { createDoubleOptIn } from './double-opt-in.ts';
import { startErasureWorker } from './erasure-job.ts';
import { startExportWorker } from './exports.ts';
import { startFormConsentWorker } from './form-consent.ts';
import { startImportWorker } from './imports/jobs.ts';
import { startSmsConsentLogWorker } from './sms-consent-log.ts';

export async function startQuery(cfg: Config, clients: Clients, log: Logger): Promise<RunningService> {
  const redis = clients.redis();
  const clickhouse = await clients.clickhouse();
  const adminKeys = new Map([[cfg.keys.adminKey, cfg.keys.workspace]]);
  // consumer lag for the console's live view; connects on first use
  const kafkaAdmin = clients.kafka().admin();
  // replays of quarantined events (tracking plans); connects on first use
  const producer = clients.kafka().producer({ lingerMs: 1 });
  // an erasure's sweep waits until every history sink has seen the tombstones and inserted
  // what it had accepted before them
  const erasureSweepDelayMs = cfg.history.flushMs + 2 * TOMBSTONE_REFRESH_MS + 2000;
  const defs = new DefinitionStore(redis, cfg.redis.prefix);
  const exportCfg = {
    dir: cfg.exports.dir,
    ttlMs: cfg.exports.ttlMs,
    engine: cfg.clickhouse.kind === 'chdb' ? ('chdb' as const) : ('server' as const),
  };
  // bulk imports: resumed after a restart from their last committed line (uploads wait in
  // cfg.imports.dir, which every query process of a deployment must share)
  const importsWorker = startImportWorker({
    ...cfg.imports,
    redis,
    clickhouse,
    producer,
    topicPrefix: cfg.kafka.topicPrefix,
    redisPrefix: cfg.redis.prefix,
    log: log.child({ worker: 'imports' }),
    now: () => new Date(),
  });
  // double opt-in: pending grants, their confirmation mails and the confirmations' log rows
  const optIn = createDoubleOptIn({
    redis,
    clickhouse,
    redisPrefix: cfg.redis.prefix,
    log: log.child({ worker: 'double-opt-in' }),
    now: () => new Date(),
    secret: confirmSecret(cfg.unsubscribe.secret),
    confirmBaseUrl: cfg.ingest.publicUrl,
    smtp: {
      url: cfg.channels.email.smtpUrl,
      from: cfg.channels.email.from,
      timeoutMs: cfg.channels.timeoutMs,
    },
  });
  optIn.start();
  const app = createQueryApp({
    redis,
    clickhouse,
    defs,
    writeKeys: new WriteKeyStore(redis, cfg.redis.prefix),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k) => adminKeys.get(k),
    workspaces: new WorkspaceStore(redis, cfg.redis.prefix, cfg.keys.workspace),
    unsubscribeSecret: cfg.unsubscribe.secret,
    ingestPublicUrl: cfg.ingest.publicUrl,
    log,
    analytics: cfg.analytics,
    kafkaAdmin,
    producer,
    topicPrefix: cfg.kafka.topicPrefix,
    adminAuthFailures: new AuthFailureLimiter({ maxFailures: cfg.query.adminAuthMaxFailures }),
    erasureSweepDelayMs,
    clientKeysDefault: cfg.processor.clientKeys,
    exports: { ...exportCfg },
    imports: { ...cfg.imports, signal: importsWorker.signal },
    optIn,
    secrets: cfg.channels.secrets,
    destinationAddressPolicy: {
      allowLoopback: cfg.activation.allowLoopback,
      allowPrivate: cfg.activation.allowPrivate,
    },
  });
  mountHealth(
    app as never,
    { redis: () => pingRedis(redis), clickhouse: () => pingClickHouse(clickhouse) },
    2000,
    log,
  );
  // erasures a DELETE left unfinished, after a restart too
  const erasures = startErasureWorker({
    redis,
    clickhouse,
    defs,
    redisPrefix: cfg.redis.prefix,
    log: log.child({ worker: 'erasures' }),
    now: () => new Date(),
    sweepDelayMs: erasureSweepDelayMs,
  });
  // data exports, resumed after a restart from their last finished slice
  const exportsWorker = startExportWorker({
    ...exportCfg,
    redis,
    clickhouse,
    redisPrefix: cfg.redis.prefix,
    log: log.child({ worker: 'exports' }),
    now: () => new Date(),
  });
  // consent ticked on forms, recorded once the submission has a profile
  const formConsent = startFormConsentWorker({
    redis,
    clickhouse,
    redisPrefix: cfg.redis.prefix,
    log: log.child({ worker: 'form-consent' }),
    now: () => new Date(),
    optIn,
  });
  // STOP / START replies taken by the ingest host, into consent_log
  const smsConsentLog = startSmsConsentLogWorker({
    redis,
    clickhouse,
    redisPrefix: cfg.redis.prefix,
    log: log.child({ worker: 'sms-consent-log' }),
    now: () => new Date(),
  });
  // audit rows queued by services without ClickHouse (the ingest host's email webhooks)
  const auditQueue = startAuditQueueWorker({
    redis,
    clickhouse,
    redisPrefix: cfg.redis.prefix,
    log: log.child({ worker: 'audit-queue' }),
    now: () => new Date(),
  });
  const server = await listen(app as never, cfg.query.host, cfg.query.port);
  const url = `http://${cfg.query.host}:${server.port}`;
  log.info({ url }, 'query_listening');
  // BI tools: the ClickHouse HTTP interface over chDB, which lives in this process; with a
  // ClickHouse server, BI tools connect to the server itself (infra/clickhouse/bi-readonly.sql)
  let bi: Awaited<ReturnType<typeof listen>> | undefined;
  if (cfg.bi && cfg.clickhouse.kind === 'chdb') {
    const biApp = createBiSqlApp({
      clickhouse,
      credentials: new BiCredentialStore(redis, cfg.redis.prefix),
      limits: cfg.bi.limits,
      log: log.child({ component: 'bi-sql' }),
      authFailures: new AuthFailureLimiter({ maxFailures: cfg.query.adminAuthMaxFailures }),
    });
    bi = await listen(biApp as never, cfg.bi.host, cfg.bi.port);
    log.info({ url: `http://${cfg.bi.host}:${bi.port}` }, 'bi_sql_listening');
  }
  return {
    name: 'query',
    url,
    stop: async () => {
      await server.close();
      await bi?.close();
      await erasures.stop();
      await exportsWorker.stop();
      await importsWorker.stop();
      await formConsent.stop();
      await smsConsentLog.stop();
      await auditQueue.stop();
      await optIn.stop();
      await kafkaAdmin.disconnect().catch(() => {});
      await producer.disconnect().catch(() => {});
    },
  };
}
