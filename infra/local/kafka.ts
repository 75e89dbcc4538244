// Apache Kafka in KRaft mode, one node acting as broker and controller, from Maven
// Central jars run on the machine's Java 17. No Docker, no tarball download.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { freePort, portOpen, waitFor } from './ports.ts';
import { spawnTied, type TiedProcess } from './tied-process.ts';

const run = promisify(execFile);
const INFRA = resolve(import.meta.dirname, '..');
const REPO = resolve(INFRA, '..');

export function kafkaVersion(): string {
  const pom = readFileSync(join(INFRA, 'kafka', 'pom.xml'), 'utf8');
  const m = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom);
  if (!m?.[1]) throw new Error('infra/kafka/pom.xml has no kafka.version');
  return m[1];
}

/** Resolves the broker's jars into the cache once; later calls return at once. */
export async function ensureKafkaJars(
  cacheRoot = process.env.CDP_CACHE_DIR ?? join(REPO, '.cache'),
): Promise<string> {
  const dir = join(cacheRoot, `kafka-${kafkaVersion()}`);
  const lib = join(dir, 'lib');
  const marker = join(dir, '.complete');
  if (existsSync(marker)) return lib;
  mkdirSync(dir, { recursive: true });
  try {
    await run(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        join(INFRA, 'kafka', 'pom.xml'),
        'dependency:copy-dependencies',
        `-DoutputDirectory=${lib}`,
        '-DincludeScope=runtime',
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `resolving Kafka jars with Maven failed (is mvn on PATH?): ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`,
    );
  }
  writeFileSync(marker, new Date().toISOString());
  return lib;
}

export interface LocalKafka {
  brokers: string[];
  /** Its log.dirs: the topics' partitions on disk. */
  logDir: string;
  process: TiedProcess;
  stop(): Promise<void>;
}

/**
 * Kafka's cluster ids are 16 random bytes in URL-safe base64 without padding. Like Kafka's
 * own generator, never start with '-': the storage tool would read it as an option.
 */
export function clusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

export async function startKafka(opts: {
  dataDir: string;
  port?: number;
  controllerPort?: number;
  heapMb?: number;
}): Promise<LocalKafka> {
  const lib = await ensureKafkaJars();
  const dir = resolve(opts.dataDir, 'kafka');
  const logDir = join(dir, 'data');
  mkdirSync(logDir, { recursive: true });
  const port = opts.port || (await freePort());
  const controllerPort = opts.controllerPort || (await freePort());
  if (await portOpen(port)) throw new Error(`Kafka port ${port} is already in use`);

  const props = join(dir, 'server.properties');
  writeFileSync(
    props,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      'controller.listener.names=CONTROLLER',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      'inter.broker.listener.name=PLAINTEXT',
      `log.dirs=${logDir}`,
      'num.partitions=8',
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=8',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      'group.initial.rebalance.delay.ms=0',
      'auto.create.topics.enable=false',
      'log.retention.hours=168',
      '',
    ].join('\n'),
  );

  const java = process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
  const cp = `${lib}/*`;
  if (!existsSync(join(logDir, 'meta.properties'))) {
    await run(java, [
      '-cp',
      cp,
      'kafka.tools.StorageTool',
      'format',
      '-t',
      clusterId(),
      '-c',
      props,
      '--ignore-formatted',
    ]);
  }
  const heap = `${opts.heapMb ?? 512}m`;
  const proc = spawnTied(
    java,
    [
      `-Xmx${heap}`,
      `-Xms${heap}`,
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=20',
      // C1 only: a broker started for development, tests or the bench lives minutes, and on a
      // small machine C2 kept compiling through all of them (33-53% of a core after 40 s at
      // 1,000 events/s, the broker at 72% in all). With C1 the broker used 39% under the
      // same load, and e2e latency halved (bench e2e p99 @ 1,000/s 2,396 -> 1,065 ms).
      // KAFKA_JVM_OPTS replaces it (and adds to the flags above) for other trade-offs.
      ...(process.env.KAFKA_JVM_OPTS?.trim()
        ? process.env.KAFKA_JVM_OPTS.trim().split(/\s+/)
        : ['-XX:TieredStopAtLevel=1']),
      '-Djava.awt.headless=true',
      `-Dlog4j2.configurationFile=${join(INFRA, 'kafka', 'log4j2.properties')}`,
      '-cp',
      cp,
      'kafka.Kafka',
      props,
    ],
    { logFile: join(dir, 'kafka.log') },
  );
  let exitedEarly = false;
  void proc.exited.then(() => {
    exitedEarly = true;
  });
  try {
    await waitFor(
      `Kafka on 127.0.0.1:${port}`,
      async () => {
        if (exitedEarly) throw new Error(`Kafka exited; see ${join(dir, 'kafka.log')}`);
        return portOpen(port);
      },
      120_000,
      250,
    );
  } catch (err) {
    await proc.stop(2000);
    throw err;
  }
  return { brokers: [`127.0.0.1:${port}`], logDir, process: proc, stop: () => proc.stop(12_000) };
}
