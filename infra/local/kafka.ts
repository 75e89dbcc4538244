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
  /** Broker settings added to (or replacing) the ones below, e.g. to measure num.io.threads. */
  settings?: Record<string, string>;
}): Promise<LocalKafka> {
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
      ...Object.entries(opts.settings ?? {}).map(([k, v]) => `${k}=${v}`),
      '',
    ].join('\n'),
  );

  const proc = await launchNode({
    dir,
    props,
    logDir,
    port,
    heapMb: opts.heapMb ?? 512,
    clusterId: clusterId(),
  });
  return { brokers: [`127.0.0.1:${port}`], logDir, process: proc, stop: () => proc.stop(12_000) };
}

export interface LocalKafkaCluster {
  /** Every node's client address (give all of them to clients). */
  brokers: string[];
  nodes: LocalKafka[];
  /** SIGKILLs node `i` (0-based) and everything in its process group: a crash, no shutdown. */
  kill(i: number): Promise<void>;
  /** Starts node `i` again on its data and ports (after kill): it catches up as a follower. */
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A KRaft cluster of `brokers` nodes on this machine, each a combined broker and controller
 * (the controller quorum is all of them, so it survives losing a minority). Internal topics
 * (group offsets, transactions) are kept with min(3, brokers) copies and min.insync.replicas
 * one less, as runtime/kafka/topic-durability.ts does for ours. Small heaps by default:
 * three JVMs share the machine with the services under test.
 */
export async function startKafkaCluster(opts: {
  dataDir: string;
  brokers?: number;
  heapMb?: number;
}): Promise<LocalKafkaCluster> {
  const n = opts.brokers ?? 3;
  if (!Number.isInteger(n) || n < 1 || n > 9)
    throw new Error(`a local Kafka cluster has 1-9 brokers, not ${n}`);
  const replication = Math.min(3, n);
  const minIsr = Math.max(1, replication - 1);
  const ports: Array<{ port: number; controller: number }> = [];
  const taken = new Set<number>();
  while (ports.length < n) {
    const port = await freePort();
    const controller = await freePort();
    if (port === controller || taken.has(port) || taken.has(controller)) continue;
    taken.add(port).add(controller);
    ports.push({ port, controller });
  }
  const voters = ports.map((p, i) => `${i + 1}@127.0.0.1:${p.controller}`).join(',');
  const id = clusterId();
  const specs = ports.map(({ port, controller }, i) => {
    const dir = resolve(opts.dataDir, `kafka-${i + 1}`);
    const logDir = join(dir, 'data');
    mkdirSync(logDir, { recursive: true });
    const props = join(dir, 'server.properties');
    writeFileSync(
      props,
      [
        'process.roles=broker,controller',
        `node.id=${i + 1}`,
        `controller.quorum.voters=${voters}`,
        `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controller}`,
        `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
        'controller.listener.names=CONTROLLER',
        'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
        'inter.broker.listener.name=PLAINTEXT',
        `log.dirs=${logDir}`,
        'num.partitions=8',
        `default.replication.factor=${replication}`,
        `offsets.topic.replication.factor=${replication}`,
        'offsets.topic.num.partitions=8',
        `transaction.state.log.replication.factor=${replication}`,
        `transaction.state.log.min.isr=${minIsr}`,
        `share.coordinator.state.topic.replication.factor=${replication}`,
        `share.coordinator.state.topic.min.isr=${minIsr}`,
        // never elect a replica that missed acknowledged writes (Kafka's default, said aloud)
        'unclean.leader.election.enable=false',
        'group.initial.rebalance.delay.ms=0',
        'auto.create.topics.enable=false',
        'log.retention.hours=168',
        '',
      ].join('\n'),
    );
    return { dir, logDir, props, port };
  });
  const launched = await Promise.allSettled(
    specs.map((s) => launchNode({ ...s, heapMb: opts.heapMb ?? 256, clusterId: id })),
  );
  const procs = launched.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = launched.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(procs.map((p) => p.stop(2000)));
    throw failed.reason;
  }
  const nodes: LocalKafka[] = specs.map((s, i) => ({
    brokers: [`127.0.0.1:${s.port}`],
    logDir: s.logDir,
    process: procs[i]!,
    stop: () => nodes[i]!.process.stop(12_000),
  }));
  return {
    brokers: nodes.map((x) => x.brokers[0]!),
    nodes,
    async kill(i) {
      const node = nodes[i];
      if (!node) throw new Error(`no broker ${i}`);
      try {
        process.kill(-node.process.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await node.process.exited;
    },
    async restart(i) {
      const node = nodes[i];
      const spec = specs[i];
      if (!node || !spec) throw new Error(`no broker ${i}`);
      await node.stop();
      node.process = await launchNode({ ...spec, heapMb: opts.heapMb ?? 256, clusterId: id });
    },
    stop: async () => {
      await Promise.all(nodes.map((x) => x.stop()));
    },
  };
}

/** Formats a node's storage (once) and runs it until its client port answers. */
async function launchNode(opts: {
  dir: string;
  props: string;
  logDir: string;
  port: number;
  heapMb: number;
  clusterId: string;
}): Promise<TiedProcess> {
  const { dir, props, logDir, port } = opts;
  const lib = await ensureKafkaJars();
  const java = process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
  const cp = `${lib}/*`;
  if (!existsSync(join(logDir, 'meta.properties'))) {
    await run(java, [
      '-cp',
      cp,
      'kafka.tools.StorageTool',
      'format',
      '-t',
      opts.clusterId,
      '-c',
      props,
      '--ignore-formatted',
    ]);
  }
  const heap = `${opts.heapMb}m`;
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
  return proc;
}
