// Composition root of the journey runner (`cdp start journeys`; `all` includes it): one
// consumer group on segment changes, journey signals and identity changes (merges), and the
// timer loop. Needs Kafka and Redis only. One person's messages are handled in order (they
// share a partition key); people go side by side.
import type { Clients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { superviseConsumer } from '../../runtime/consume.ts';
import { DefinitionStore, watchDefinitions } from '../../runtime/definitions.ts';
import { deadLetterOf } from '../../runtime/kafka/dead-letter.ts';
import type { Batch, OutgoingMessage } from '../../runtime/kafka/index.ts';
import type { Logger } from '../../runtime/log.ts';
import type { RunningService } from '../../runtime/service.ts';
import { identityChangeCheck } from '../../schemas/identity-change.ts';
import { IDENTIFY_SIGNAL } from '../../schemas/journey.ts';
import { journeySignalCheck } from '../../schemas/journey-signal.ts';
import { segmentChangeCheck } from '../../schemas/segment-change.ts';
import { consumerGroup, REPLAY_HEADER, topicSpecs, topics } from '../../schemas/topics.ts';
import { DATE_ENTRY_NODE, dateEntries } from './date-entries.ts';
import { journeyEngine } from './journey-engine.ts';
import { JourneyRegistry } from './journey-registry.ts';
import { journeyTimers } from './journey-timers.ts';
import { journeyMigrations } from './migrations.ts';
import { runStore } from './run-state.ts';
import { LOCAL_BROADCAST_NODE, timeEntries } from './time-entries.ts';

/** People handled at once per batch (each person's messages in order). */
const PEOPLE_AT_ONCE = 32;

export function journeyTopicSpecs(cfg: Config) {
  return topicSpecs(cfg.kafka.topicPrefix, cfg.kafka.partitions, [
    'segmentChanges',
    'journeySignals',
    'identity',
    'journeyLedger',
    'activationRetry',
    'events',
    'deadLetter',
  ]);
}

export async function startJourneys(
  cfg: Config,
  clients: Clients,
  log: Logger,
  opts: { now?: () => number; timerIntervalMs?: number; timerBatch?: number } = {},
): Promise<RunningService> {
  const now = opts.now ?? Date.now;
  const kafka = clients.kafka();
  const redis = clients.redis().duplicate({ enableAutoPipelining: true, connectionName: 'cdp-journeys' });
  const producer = kafka.producer({ lingerMs: 2 });
  const admin = kafka.admin();
  const t = topics(cfg.kafka.topicPrefix);
  const registry = new JourneyRegistry();
  const timers = journeyTimers({ redis, prefix: cfg.redis.prefix, log, now, batch: opts.timerBatch });
  const store = new DefinitionStore(redis, cfg.redis.prefix);
  const watcher = watchDefinitions({
    store,
    log,
    intervalMs: cfg.definitions.pollMs,
    load: async () => {
      const [latest, versions] = await Promise.all([store.list('journeys'), store.list('journeyVersions')]);
      registry.replace(latest, versions);
      // a journey that runs again (or ends): the timers parked while it was paused go back
      for (const j of latest)
        if (j.status === 'active' || j.status === 'archived') await timers.unpark(j.workspaceId, j.id);
    },
  });
  const engine = journeyEngine({
    redis,
    redisPrefix: cfg.redis.prefix,
    runs: runStore(redis, cfg.redis.prefix),
    registry,
    timers,
    producer,
    topics: t,
    now,
    log,
    defaultTimezone: cfg.contactPolicy.defaultTimezone,
  });
  const dates = dateEntries({
    redis,
    prefix: cfg.redis.prefix,
    registry,
    timers,
    engine,
    now,
    defaultTimezone: cfg.contactPolicy.defaultTimezone,
    log,
  });
  // broadcast and schedule entries (and date-trait backfills): a loop of their own, so a
  // large broadcast delays no wait
  const entries = timeEntries({
    dates,
    timers,
    redis,
    prefix: cfg.redis.prefix,
    log,
    now,
    registry,
    engine,
    defaultTimezone: cfg.contactPolicy.defaultTimezone,
  });
  entries.start(opts.timerIntervalMs ?? 100, () => watcher.current());
  // people in flight moved to a journey's new version, when asked
  const migrations = journeyMigrations({ redis, prefix: cfg.redis.prefix, log, now, engine, registry });
  migrations.start(Math.max(opts.timerIntervalMs ?? 100, 250), () => watcher.current());

  const handle = async (batch: Batch) => {
    await watcher.current();
    const people = new Map<string, Array<() => Promise<void>>>();
    const dead: OutgoingMessage[] = [];
    for (const m of batch.messages) {
      if (m.headers[REPLAY_HEADER] === 'history') continue;
      let work: (() => Promise<void>) | undefined;
      let reason = '';
      try {
        const v: unknown = JSON.parse(m.value?.toString('utf8') ?? '');
        if (m.topic === t.journeySignals) {
          // an identify that set a date trait: that person's date-trait entry timers
          if (journeySignalCheck.Check(v))
            work = v.event === IDENTIFY_SIGNAL ? () => dates.onSignal(v) : () => engine.onSignal(v);
          else reason = 'not a journey signal';
        } else if (m.topic === t.identity) {
          // merges: one run per journey per person; the survivor's date-trait entries
          if (identityChangeCheck.Check(v))
            work = async () => {
              await engine.onIdentityChange(v);
              await dates.onIdentityChange(v);
            };
          else reason = 'not an identity change';
        } else if (segmentChangeCheck.Check(v)) work = () => engine.onSegmentChange(v);
        else reason = 'not a segment change';
      } catch (err) {
        reason = `not JSON: ${(err as Error).message}`;
      }
      if (!work) {
        // activation dead-letters bad segment changes already; only signals are ours
        if (m.topic === t.journeySignals) dead.push(deadLetterOf(m, reason, 'journeys.parse'));
        continue;
      }
      const k = m.key ?? '';
      people.set(k, [...(people.get(k) ?? []), work]);
    }
    const queue = [...people.values()];
    const worker = async () => {
      for (let steps = queue.shift(); steps; steps = queue.shift()) for (const step of steps) await step();
    };
    await Promise.all(Array.from({ length: Math.min(PEOPLE_AT_ONCE, queue.length) }, worker));
    if (dead.length > 0) await producer.send(t.deadLetter, dead);
  };

  const consumer = superviseConsumer({
    kafka,
    admin,
    topics: journeyTopicSpecs(cfg),
    consumer: {
      // merges arrive as identity changes (one run per journey per person)
      ...consumerGroup(cfg.kafka.topicPrefix, 'journeys'),
      maxBatchSize: 500,
      concurrency: cfg.kafka.partitions,
    },
    handler: handle,
    log: log.child({ consumer: 'journeys' }),
  });

  let stopped = false;
  let loop: NodeJS.Timeout | undefined;
  let ticking: Promise<unknown> = Promise.resolve();
  const tick = async () => {
    if (stopped) return;
    let claimed = 0;
    ticking = (async () => {
      await watcher.current();
      claimed = await timers.tick((d) =>
        d.node.startsWith(DATE_ENTRY_NODE)
          ? dates.onDue(d)
          : d.node.startsWith(LOCAL_BROADCAST_NODE)
            ? entries.onLocalDue(d)
            : engine.onDue(d.ref, d.run, d.node),
      );
    })().catch((err) => log.warn({ err: (err as Error).message }, 'journey_timers_failed'));
    await ticking;
    // a full batch: more may be due already (many deadlines at once), so no pause
    if (!stopped) loop = setTimeout(tick, claimed >= timers.batch ? 0 : (opts.timerIntervalMs ?? 100));
  };
  loop = setTimeout(tick, 0);

  return {
    name: 'journeys',
    async stop() {
      stopped = true;
      if (loop) clearTimeout(loop);
      await ticking;
      await entries.stop();
      await migrations.stop();
      await consumer.stop();
      watcher.stop();
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
      redis.disconnect();
    },
  };
}
