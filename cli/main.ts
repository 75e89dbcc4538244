// The `cdp` command.
//   cdp dev                      local stack + every service, in child processes (npm start)
//   cdp start all|<service>...   services against configured Kafka/Redis/ClickHouse
//   cdp migrate                  create topics and apply ClickHouse migrations
//   cdp infra up|down            run (or stop) the local Kafka and Redis in the foreground
//   cdp dlq replay [--topic-prefix P] [--limit N] [--only activation|history]
//                                dead letters → retry topic / back to their topic for the history sink
//   cdp secrets rotate           re-encrypt stored channel credentials and destination secrets with CDP_SECRETS_KEY
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { reencryptDestinationCredentials } from '../destinations/rotate-credentials.ts';
import { ensureKafkaJars } from '../infra/local/kafka.ts';
import { startLocalStack } from '../infra/local/stack.ts';
import { runRebuild } from '../processor/main.ts';
import { ChannelCredentialStore } from '../runtime/channel-credentials.ts';
import { createClients } from '../runtime/clients.ts';
import { ConfigError, loadConfig } from '../runtime/config.ts';
import { withTimeout } from '../runtime/http.ts';
import { createLogger } from '../runtime/log.ts';
import { localSecretsKey } from '../runtime/secrets-key.ts';
import { devProcesses, type StartedMessage, superviseDevProcesses } from './dev-processes.ts';
import { replayDeadLetters } from './dlq-replay.ts';
import { isIngestWorker, STOP_MESSAGE, startIngestWorkers } from './ingest-workers.ts';
import { migrateAll, SERVICE_NAMES, type ServiceName, startServices } from './services.ts';
import { runWorkspacesCli, WORKSPACES_USAGE, WorkspacesUsageError } from './workspaces.ts';

const USAGE = `usage: cdp <command>
  dev                          start the local stack and every service (what npm start runs):
                               ingest, activation and the ClickHouse side each in a process of
                               their own; CDP_ONE_PROCESS=1 runs them all in this one
  start all|ingest|processor|activation|journeys|destinations|ledger|query ...
                               start services against KAFKA_BROKERS, REDIS_URL, CLICKHOUSE_URL
  migrate                      create Kafka topics and apply ClickHouse migrations
  rebuild [--workspace=<id>]   rebuild Redis profile state from ClickHouse history
                               (processor stopped; no campaign fires again)
  infra up                     run local Kafka and Redis in the foreground (Ctrl-C stops)
  infra down                   stop the local stack started by 'cdp infra up'
  infra fetch                  resolve the Kafka jars from Maven Central (done by infra up too)
  dlq replay [--topic-prefix P] [--limit N] [--only activation|history]
                               re-publish activation dead letters to the activation retry topic,
                               history dead letters to the topic they came from (history sink only)
  secrets rotate               re-encrypt every stored channel credential and destination
                               secret with CDP_SECRETS_KEY
                               (run with the old key as CDP_SECRETS_KEY_PREVIOUS)
${WORKSPACES_USAGE}`;

const SHUTDOWN_DEADLINE_MS = 30_000;
/** `cdp dev` stops its service processes one stage after another (cli/dev-processes.ts), then the stack. */
const DEV_SHUTDOWN_DEADLINE_MS = 90_000;
/** After the parent is gone its Kafka and Redis are gone too: nothing left to flush into. */
const ORPHAN_SHUTDOWN_DEADLINE_MS = 5_000;

/**
 * Runs `stop` once on SIGINT/SIGTERM, or when the parent process goes away (a wrapper
 * such as `npm start` killed without forwarding the signal), then exits. A second signal,
 * or a shutdown that overruns its deadline, exits at once; the local stack's processes
 * are tied to this one and go with it.
 */
function onShutdown(
  stop: () => Promise<void>,
  deadlineMs = SHUTDOWN_DEADLINE_MS,
): (reason: string, exitCode?: number) => void {
  let stopping = false;
  const handler = (reason: string, repeatExits = true, exitCode = 0, deadline = deadlineMs) => {
    if (stopping) {
      if (repeatExits) process.exit(130);
      return;
    }
    stopping = true;
    process.stderr.write(`\n${reason}: stopping...\n`);
    setTimeout(() => {
      process.stderr.write(`shutdown overran ${deadline} ms; exiting\n`);
      process.exit(1);
    }, deadline).unref();
    stop()
      .catch((err) => process.stderr.write(`shutdown error: ${(err as Error).message}\n`))
      .finally(() => process.exit(exitCode));
  };
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
  // an ingest worker is asked by its primary, which may come after a Ctrl-C reached both
  process.on('message', (m) => {
    if (m === STOP_MESSAGE) handler('asked by the primary process', false);
  });
  // a `cdp dev` child: the IPC channel closes when the parent dies, even by SIGKILL
  if (process.send && !isIngestWorker())
    process.once('disconnect', () => handler('parent process exited', false, 0, ORPHAN_SHUTDOWN_DEADLINE_MS));
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) handler('parent process exited', true, 0, ORPHAN_SHUTDOWN_DEADLINE_MS);
  }, 1000).unref();
  return (reason, exitCode = 0) => handler(reason, false, exitCode);
}

/** Tells a `cdp dev` parent (cli/dev-processes.ts) that this child's services run. */
function reportStarted(urls: StartedMessage['urls']): void {
  if (!process.send || isIngestWorker()) return;
  const m: StartedMessage = { type: 'cdp:started', urls };
  process.send(m);
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  const env = process.env;
  switch (cmd) {
    case 'dev': {
      const dataDir = resolve(env.CDP_DATA_DIR ?? '.data');
      mkdirSync(dataDir, { recursive: true });
      const log = createLogger({ level: env.LOG_LEVEL ?? 'info', name: 'cdp' });
      // per-workspace channel credentials are encrypted with CDP_SECRETS_KEY: the one-box
      // default is a key generated once into the data directory (mode 0600)
      let secretsKey = env.CDP_SECRETS_KEY;
      if (!secretsKey) {
        const keyFile = join(dataDir, 'secrets.key');
        const local = localSecretsKey(keyFile);
        secretsKey = local.text;
        log.info(
          { file: keyFile },
          local.created
            ? 'secrets_key_generated: CDP_SECRETS_KEY was unset; a new key (mode 0600) encrypts stored channel credentials. Keep this file: without it they cannot be read'
            : 'secrets_key_loaded: CDP_SECRETS_KEY unset; using the key in the data directory',
        );
      }
      const started = Date.now();
      process.stderr.write('starting the local stack (first run downloads Kafka from Maven Central)...\n');
      const stack = await startLocalStack({
        dataDir,
        env,
        kafkaPort: Number(env.CDP_KAFKA_PORT ?? 19092),
        redisPort: Number(env.CDP_REDIS_PORT ?? 16379),
      });
      const serviceEnv = {
        ...env,
        CDP_DATA_DIR: dataDir,
        KAFKA_BROKERS: stack.kafkaBrokers,
        REDIS_URL: stack.redisUrl,
        CDP_SECRETS_KEY: secretsKey,
      };
      const cfg = loadConfig(serviceEnv);
      let urls: Partial<Record<ServiceName, string>>;
      if (env.CDP_ONE_PROCESS === '1' || env.CDP_ONE_PROCESS === 'true') {
        // the opt-out: every service on this process's event loop
        let stopServices: (() => Promise<void>) | undefined;
        onShutdown(async () => {
          // services first (they flush into Kafka, Redis and ClickHouse), the stack last
          await withTimeout(stopServices?.() ?? Promise.resolve(), 15_000, 'stopping services').catch((err) =>
            process.stderr.write(`${(err as Error).message}\n`),
          );
          await stack.stop();
        });
        const running = await startServices(cfg, SERVICE_NAMES, log);
        stopServices = running.stop;
        urls = running.urls;
      } else {
        let fatal: (reason: string, exitCode?: number) => void = () => {};
        const children = superviseDevProcesses({
          processes: devProcesses(),
          env: serviceEnv,
          log,
          onFatal: (reason) => fatal(reason, 1),
        });
        fatal = onShutdown(async () => {
          await children.stop();
          await stack.stop();
        }, DEV_SHUTDOWN_DEADLINE_MS);
        try {
          urls = await children.started;
        } catch (err) {
          process.stderr.write(`cdp: ${(err as Error).message}\n`);
          fatal('a service process did not start', 1);
          return;
        }
      }
      process.stdout.write(
        [
          '',
          `cdp is running (${((Date.now() - started) / 1000).toFixed(1)} s)`,
          `  ingest     ${urls.ingest}   (Segment HTTP API: POST /v1/track, /v1/identify, ...)`,
          `  query      ${urls.query}   (GET /v1/profiles, POST /v1/segments, /v1/campaigns)`,
          `  write key  ${cfg.keys.writeKey}   (HTTP Basic user name)`,
          `  admin key  ${cfg.keys.adminKey}   (Authorization: Bearer)`,
          `  kafka      ${stack.kafkaBrokers}`,
          `  redis      ${stack.redisUrl}`,
          `  clickhouse ${cfg.clickhouse.kind === 'chdb' ? `chDB in process, ${cfg.clickhouse.path}` : cfg.clickhouse.url}`,
          env.CDP_ONE_PROCESS === '1' || env.CDP_ONE_PROCESS === 'true'
            ? '  services   all in this process (CDP_ONE_PROCESS)'
            : `  services   ${devProcesses()
                .map((p) => `${p.name} (${p.services.join(', ')})`)
                .join('; ')}: a process each`,
          'Ctrl-C stops everything.',
          '',
        ].join('\n'),
      );
      return;
    }
    case 'start': {
      const names = rest.includes('all') || rest.length === 0 ? [...SERVICE_NAMES] : rest;
      const unknown = names.filter((n) => !(SERVICE_NAMES as readonly string[]).includes(n));
      if (unknown.length > 0) throw new UsageError(`unknown service ${unknown.join(', ')}`);
      const cfg = loadConfig(env);
      const log = createLogger({ level: cfg.logLevel, name: env.CDP_PROCESS_NAME || 'cdp' });
      if (names.includes('ingest') && cfg.ingest.workers > 1) {
        // ingest in CDP_INGEST_WORKERS processes on one port (cli/ingest-workers.ts)
        if (isIngestWorker()) {
          // a stop asked for while this worker still starts is kept, and done once it runs
          let asked = false;
          const early = (m: unknown) => {
            if (m === STOP_MESSAGE) asked = true;
          };
          process.on('message', early);
          const running = await startServices(cfg, ['ingest'], log);
          process.off('message', early);
          const stop = onShutdown(running.stop);
          if (asked) stop('asked by the primary process while starting');
          log.info({ services: ['ingest'], urls: running.urls, pid: process.pid }, 'started');
          return;
        }
        const others = names.filter((n) => n !== 'ingest') as ServiceName[];
        const running = others.length > 0 ? await startServices(cfg, others, log) : undefined;
        const edge = startIngestWorkers(cfg.ingest.workers, log);
        onShutdown(async () => {
          await Promise.all([edge.stop(), running?.stop()]);
        });
        log.info(
          { services: names, urls: running?.urls ?? {}, ingestWorkers: cfg.ingest.workers },
          'started',
        );
        reportStarted({ ...running?.urls, ingest: `http://${cfg.ingest.host}:${cfg.ingest.port}` });
        return;
      }
      const running = await startServices(cfg, names as ServiceName[], log);
      onShutdown(running.stop);
      log.info({ services: names, urls: running.urls }, 'started');
      reportStarted(running.urls);
      return;
    }
    case 'migrate': {
      const cfg = loadConfig(env);
      await migrateAll(cfg, createLogger({ level: cfg.logLevel, name: 'cdp' }));
      return;
    }
    case 'rebuild': {
      const ws = rest.find((r) => r.startsWith('--workspace='))?.slice('--workspace='.length);
      const unknownArgs = rest.filter((r) => !r.startsWith('--workspace='));
      if (unknownArgs.length > 0 || ws === '')
        throw new UsageError(`rebuild: unexpected ${unknownArgs.join(' ') || '--workspace='}`);
      const cfg = loadConfig(env);
      const log = createLogger({ level: cfg.logLevel, name: 'cdp' });
      const clients = createClients(cfg, log);
      try {
        await migrateAll(cfg, log);
        const { events, consent } = await runRebuild(cfg, clients, log, ws);
        process.stdout.write(
          `rebuilt profiles from ${events} events; ${consent.applied} consent decisions restored` +
            (consent.skipped ? ` (${consent.skipped} for people no longer known)` : '') +
            '\n',
        );
      } finally {
        await clients.close();
      }
      return;
    }
    case 'infra': {
      const dataDir = resolve(env.CDP_DATA_DIR ?? '.data');
      const pidFile = join(dataDir, 'infra.pid');
      if (rest[0] === 'up') {
        mkdirSync(dataDir, { recursive: true });
        const stack = await startLocalStack({
          dataDir,
          env: { CDP_REDIS_DURABILITY: env.CDP_REDIS_DURABILITY },
          kafkaPort: Number(env.CDP_KAFKA_PORT ?? 19092),
          redisPort: Number(env.CDP_REDIS_PORT ?? 16379),
        });
        writeFileSync(pidFile, String(process.pid));
        onShutdown(async () => {
          await stack.stop();
          rmSync(pidFile, { force: true });
        });
        process.stdout.write(`KAFKA_BROKERS=${stack.kafkaBrokers}\nREDIS_URL=${stack.redisUrl}\n`);
        return;
      }
      if (rest[0] === 'fetch') {
        process.stdout.write(`Kafka jars in ${await ensureKafkaJars()}\n`);
        return;
      }
      if (rest[0] === 'down') {
        if (!existsSync(pidFile)) {
          process.stdout.write('no local stack is running\n');
          return;
        }
        const pid = Number(readFileSync(pidFile, 'utf8'));
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          rmSync(pidFile, { force: true });
          return;
        }
        for (let i = 0; i < 300 && existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 100));
        return;
      }
      throw new UsageError('cdp infra up|down|fetch');
    }
    case 'dlq': {
      if (rest[0] !== 'replay')
        throw new UsageError('cdp dlq replay [--topic-prefix P] [--limit N] [--only activation|history]');
      const cfg = loadConfig(env);
      const flag = (name: string) => {
        const i = rest.indexOf(name);
        if (i < 0) return undefined;
        const v = rest[i + 1];
        if (v === undefined) throw new UsageError(`${name} needs a value`);
        return v;
      };
      const limitArg = flag('--limit');
      const limit = limitArg === undefined ? undefined : Number(limitArg);
      if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
        throw new UsageError('--limit must be a positive integer');
      const only = flag('--only');
      if (only !== undefined && only !== 'activation' && only !== 'history')
        throw new UsageError('--only must be activation or history');
      const r = await replayDeadLetters({
        brokers: cfg.kafka.brokers,
        topicPrefix: flag('--topic-prefix') ?? cfg.kafka.topicPrefix,
        limit,
        only,
      });
      process.stdout.write(`replayed ${r.replayed} dead letters (skipped ${r.skipped} others)\n`);
      return;
    }
    case 'secrets': {
      if (rest[0] !== 'rotate' || rest.length > 1) throw new UsageError('cdp secrets rotate');
      const cfg = loadConfig(env);
      if (!cfg.channels.secrets.current)
        throw new ConfigError([
          'CDP_SECRETS_KEY: required by cdp secrets rotate (the new key; the old one as CDP_SECRETS_KEY_PREVIOUS)',
        ]);
      const log = createLogger({ level: cfg.logLevel, name: 'cdp' });
      const clients = createClients(cfg, log);
      try {
        const store = new ChannelCredentialStore(clients.redis(), cfg.redis.prefix, cfg.channels.secrets);
        const r = await store.reencrypt();
        process.stdout.write(
          `re-encrypted ${r.reencrypted} stored channel credentials with key ${cfg.channels.secrets.current?.id}; ${r.current} already were\n`,
        );
        for (const u of r.unreadable)
          process.stderr.write(
            `unreadable, left as it is: workspace ${u.workspaceId} ${u.channel}: ${u.error}\n`,
          );
        // built-in destinations' tokens and webhooks' signing secrets, sealed in their definitions
        const d = await reencryptDestinationCredentials(
          clients.redis(),
          cfg.redis.prefix,
          cfg.channels.secrets,
        );
        process.stdout.write(
          `re-encrypted ${d.reencrypted} destination secrets (tokens, webhook signing secrets) with key ${cfg.channels.secrets.current?.id}; ${d.current} already were\n`,
        );
        for (const u of d.unreadable)
          process.stderr.write(
            `unreadable, left as it is: workspace ${u.workspaceId} destination ${u.destinationId}: ${u.error}\n`,
          );
        if (r.unreadable.length > 0 || d.unreadable.length > 0) process.exitCode = 1;
      } finally {
        await clients.close();
      }
      return;
    }
    case 'workspaces':
    case 'people': {
      const cfg = loadConfig(env);
      try {
        await runWorkspacesCli(cmd, rest, {
          url: env.CDP_QUERY_URL ?? `http://${cfg.query.host}:${cfg.query.port}`,
          key: env.CDP_TOKEN ?? cfg.keys.adminKey,
          out: (line) => process.stdout.write(`${line}\n`),
        });
      } catch (err) {
        throw err instanceof WorkspacesUsageError ? new UsageError(err.message) : err;
      }
      return;
    }
    default:
      throw new UsageError(cmd ? `unknown command ${cmd}` : 'no command given');
  }
}

class UsageError extends Error {}

main(process.argv.slice(2)).catch((err) => {
  if (err instanceof ConfigError) process.stderr.write(`cdp: ${err.message}\n`);
  else if (err instanceof UsageError) process.stderr.write(`cdp: ${err.message}\n${USAGE}\n`);
  else process.stderr.write(`cdp: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(err instanceof UsageError ? 64 : 1);
});
