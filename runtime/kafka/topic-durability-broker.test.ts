// Topic replication and min.insync.replicas against the real local broker (one broker), through
// both drivers' admin paths, read back with Kafka's own DescribeConfigs and Metadata.
import { Writable } from 'node:stream';
import { type ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startServices } from '../../cli/services.ts';
import { topicSpecs } from '../../processor/main.ts';
import { testConfig, uniqueId } from '../../test/harness.ts';
import { createKafka } from './index.ts';
import { TopicDurabilityError } from './topic-durability.ts';

// kafkajs's ConfigSource: 1 = set on the topic itself (5 would be the broker's default)
const TOPIC_CONFIG = 1;
const TOPIC_RESOURCE = 2 as ConfigResourceTypes; // ConfigResourceTypes.TOPIC

const brokers = () => inject('kafkaBrokers').split(',');
const raw = () => new Kafka({ brokers: brokers(), logLevel: logLevel.NOTHING }).admin();

/** A logger whose lines the test can read. */
function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: pino({ level: 'warn' }, sink), lines };
}

let inspect: ReturnType<typeof raw>;
beforeAll(async () => {
  inspect = raw();
  await inspect.connect();
});
afterAll(async () => {
  await inspect.disconnect();
});

/**
 * The topics as the broker describes them. Just after creation its metadata may not list them
 * yet (UNKNOWN_TOPIC_OR_PARTITION, more likely on a loaded machine): asked again until it does.
 */
async function describeTopics(names: string[]) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await describeTopicsOnce(names);
    } catch (err) {
      if (Date.now() > deadline || (err as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION')
        throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function describeTopicsOnce(names: string[]) {
  const [meta, configs] = await Promise.all([
    inspect.fetchTopicMetadata({ topics: names }),
    inspect.describeConfigs({
      includeSynonyms: false,
      resources: names.map((name) => ({
        type: TOPIC_RESOURCE,
        name,
        configNames: ['min.insync.replicas'],
      })),
    }),
  ]);
  return names.map((name) => {
    const entry = configs.resources
      .find((r) => r.resourceName === name)
      ?.configEntries.find((c) => c.configName === 'min.insync.replicas');
    const t = meta.topics.find((x) => x.name === name);
    return {
      name,
      replication: Math.min(...(t?.partitions ?? []).map((p) => p.replicas.length)),
      minInsync: entry?.configValue,
      setOnTopic: (entry as { configSource?: number } | undefined)?.configSource === TOPIC_CONFIG,
    };
  });
}

describe.each(['kafkajs', 'rdkafka'] as const)('topic durability through %s', (driver) => {
  it('creates every topic with the defaults for one broker: replication 1, min.insync.replicas 1 on the topic', async () => {
    const cfg = testConfig({ CDP_KAFKA_DRIVER: driver, CDP_TOPIC_PREFIX: uniqueId(`dur-${driver}-`) });
    const admin = createKafka(cfg.kafka, capturingLogger().log).admin();
    try {
      await admin.ensureTopics(topicSpecs(cfg)); // what `cdp migrate` and the services call
    } finally {
      await admin.disconnect();
    }
    const got = await describeTopics(topicSpecs(cfg).map((t) => t.topic));
    expect(got).toHaveLength(topicSpecs(cfg).length);
    for (const t of got) expect(t).toMatchObject({ replication: 1, minInsync: '1', setOnTopic: true });
  });

  it('creates topics with a configured min.insync.replicas', async () => {
    const cfg = testConfig({
      CDP_KAFKA_DRIVER: driver,
      CDP_TOPIC_PREFIX: uniqueId(`dur-${driver}-`),
      CDP_TOPIC_REPLICATION: '1',
      CDP_TOPIC_MIN_INSYNC: '1',
    });
    const topic = `${cfg.kafka.topicPrefix}.one`;
    const admin = createKafka(cfg.kafka, capturingLogger().log).admin();
    try {
      await admin.ensureTopics([{ topic, partitions: 2 }]);
    } finally {
      await admin.disconnect();
    }
    expect(await describeTopics([topic])).toEqual([
      { name: topic, replication: 1, minInsync: '1', setOnTopic: true },
    ]);
  });

  it.each([
    [{ CDP_TOPIC_REPLICATION: '3' }, /CDP_TOPIC_REPLICATION=3 needs at least 3 brokers; the cluster has 1/],
    [{ CDP_TOPIC_MIN_INSYNC: '2' }, /CDP_TOPIC_MIN_INSYNC=2 is more than the replication factor 1/],
  ])('refuses %o on one broker with a clear error and creates nothing', async (env, message) => {
    const cfg = testConfig({
      CDP_KAFKA_DRIVER: driver,
      CDP_TOPIC_PREFIX: uniqueId(`dur-${driver}-`),
      ...env,
    });
    const topic = `${cfg.kafka.topicPrefix}.refused`;
    const admin = createKafka(cfg.kafka, capturingLogger().log).admin();
    try {
      const err = await admin.ensureTopics([{ topic, partitions: 1 }]).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TopicDurabilityError);
      expect((err as Error).message).toMatch(message);
    } finally {
      await admin.disconnect();
    }
    expect(await inspect.listTopics()).not.toContain(topic);
  });

  it('stops `cdp start` when the cluster cannot hold the configured copies', async () => {
    const cfg = testConfig({
      CDP_KAFKA_DRIVER: driver,
      CDP_TOPIC_PREFIX: uniqueId(`dur-${driver}-`),
      CDP_TOPIC_REPLICATION: '2',
    });
    const err = await startServices(cfg, ['activation'], capturingLogger().log).then(
      async (running) => {
        await running.stop();
        return null;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TopicDurabilityError);
    expect((err as Error).message).toMatch(/CDP_TOPIC_REPLICATION=2 needs at least 2 brokers/);
  });

  it('warns, naming the topic and the values, when an existing topic has fewer copies than configured', async () => {
    const prefix = uniqueId(`dur-${driver}-`);
    const topic = `${prefix}.existing`;
    // made before, as a cluster that grew from one broker would have it
    await inspect.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
    });
    const cfg = testConfig({
      CDP_KAFKA_DRIVER: driver,
      CDP_TOPIC_PREFIX: prefix,
      CDP_TOPIC_REPLICATION: '3',
    });
    const { log, lines } = capturingLogger();
    const admin = createKafka(cfg.kafka, log).admin();
    try {
      await admin.ensureTopics([{ topic, partitions: 1 }]); // nothing to create: no error
      await admin.ensureTopics([{ topic, partitions: 1 }]); // warned once per start, not per call
    } finally {
      await admin.disconnect();
    }
    const warned = lines.filter((l) => l.msg === 'topic_less_durable_than_configured');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ topic, replication: 1, wantedReplication: 3, wantedMinInsync: 2 });
  });
});
