// Composition roots of activation:
//   startActivation  the worker: one consumer group on the segment-change and activation-retry
//                    topics, the delayed-send poller and the channel adapters. It needs Kafka
//                    and Redis only, so it can run in its own process next to chDB.
//   startLedger      the ledger sink: its own consumer group on the activation-ledger topic
//                    → ClickHouse (`cdp start ledger`; `all` includes it).
import { randomUUID } from 'node:crypto';
import { ChannelCredentialStore } from '../runtime/channel-credentials.ts';
import type { Clients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { superviseConsumer } from '../runtime/consume.ts';
import { DefinitionStore, watchDefinitions } from '../runtime/definitions.ts';
import type { Logger } from '../runtime/log.ts';
import { redisDurability } from '../runtime/redis-durability.ts';
import type { RunningService } from '../runtime/service.ts';
import { emailTagSecret } from '../schemas/email-tags.ts';
import { trackingSecret } from '../schemas/email-tracking-token.ts';
import { consumerGroup, topicSpecs, topics } from '../schemas/topics.ts';
import { CampaignRegistry } from './campaign-registry.ts';
import { configureEmailTagSigning } from './channels/email-providers.ts';
import { configureEmailTracking } from './channels/email-tracking.ts';
import { createChannels } from './channels/index.ts';
import { watchChannelCredentials } from './channels/workspace-channels.ts';
import { sendClaims } from './claim-send.ts';
import { delayedSends, startDelayedPoller } from './delayed-sends.ts';
import { journeyRunEndReader, journeySendCampaigns } from './journeys/journey-campaigns.ts';
import { createLedgerSink } from './ledger-sink.ts';
import { noCampaignCounter } from './no-campaign.ts';
import { createActivationPipeline } from './pipeline.ts';
import { contactPolicy } from './policy/check-contact-policy.ts';
import { profileTraitsReader } from './profile-traits.ts';
import { pushDeviceStore } from './push-devices.ts';

/** Activation's topics (the processor's topicSpecs creates them too). */
export function activationTopicSpecs(cfg: Config) {
  return topicSpecs(cfg.kafka.topicPrefix, cfg.kafka.partitions, [
    'segmentChanges',
    'activationRetry',
    'activationLedger',
    'journeyLedger',
    'deadLetter',
  ]);
}

export async function startActivation(
  cfg: Config,
  clients: Clients,
  log: Logger,
  opts: { now?: () => number } = {},
): Promise<RunningService> {
  const now = opts.now ?? Date.now;
  const kafka = clients.kafka();
  // its own connection with auto-pipelining: a batch's hundreds of concurrent sends issue
  // their scripts in the same ticks, which then go out in one write instead of one each
  const redis = clients.redis().duplicate({ enableAutoPipelining: true, connectionName: 'cdp-activation' });
  // claims and contact-policy writes go through this connection: its WAITAOF covers them
  const durable = await redisDurability(redis, cfg.redis, log).catch((err) => {
    redis.disconnect();
    throw err;
  });
  // follow-ups only (ledger rows, retries, dead letters), produced off the sends' path: a
  // short linger joins the small batches' rows into fewer produce requests
  const producer = kafka.producer({ lingerMs: 5 });
  const admin = kafka.admin();
  const t = topics(cfg.kafka.topicPrefix);
  const campaigns = new CampaignRegistry();
  const store = new DefinitionStore(redis, cfg.redis.prefix);
  const watcher = watchDefinitions({
    store,
    log,
    intervalMs: cfg.definitions.pollMs,
    load: async () => {
      const [defs, journeys, versions] = await Promise.all([
        store.list('campaigns'),
        store.list('journeys'),
        store.list('journeyVersions'),
      ]);
      campaigns.replace(defs, journeySendCampaigns(journeys, versions));
    },
  });
  // campaigns with email.tracking get signed open/click links to the public ingest host
  configureEmailTracking({ secret: trackingSecret(cfg.unsubscribe.secret), baseUrl: cfg.ingest.publicUrl });
  // provider tags carry cdp_ws and cdp_sig: the webhooks tie an event to a send by them
  configureEmailTagSigning(emailTagSecret(cfg.unsubscribe.secret));
  // workspaces' own channel credentials (PUT /v1/channels/{channel}/credentials), else the env's
  const credentialsLog = log.child({ component: 'channel-credentials' });
  const credentials = await watchChannelCredentials({
    store: new ChannelCredentialStore(redis, cfg.redis.prefix, cfg.channels.secrets),
    pollMs: cfg.channels.credentialsPollMs,
    log: credentialsLog,
  }).catch((err) => {
    redis.disconnect();
    throw err;
  });
  const channels = createChannels(cfg.channels, cfg.activation, { credentials, log: credentialsLog });
  const pipeline = createActivationPipeline({
    producer,
    topics: { retry: t.activationRetry, deadLetter: t.deadLetter, ledger: t.activationLedger },
    campaigns,
    claims: sendClaims(redis, randomUUID(), cfg.retries.claimLeaseMs),
    policy: contactPolicy({
      redis,
      redisPrefix: cfg.redis.prefix,
      policy: cfg.contactPolicy,
      log: log.child({ component: 'contact-policy' }),
    }),
    channels,
    redisPrefix: cfg.redis.prefix,
    unsubscribe: cfg.unsubscribe,
    retries: cfg.retries,
    delayed: delayedSends({ redis, redisPrefix: cfg.redis.prefix }),
    noCampaign: noCampaignCounter({ redis, redisPrefix: cfg.redis.prefix }),
    profileTraits: profileTraitsReader(redis, cfg.redis.prefix),
    pushDevices: pushDeviceStore(redis, cfg.redis.prefix),
    journeyRunEnd: journeyRunEndReader(redis, cfg.redis.prefix),
    concurrency: cfg.retries.concurrency,
    log,
    now,
  });
  const consumer = superviseConsumer({
    kafka,
    admin,
    topics: activationTopicSpecs(cfg),
    consumer: {
      ...consumerGroup(cfg.kafka.topicPrefix, 'activation'),
      maxBatchSize: 500,
      concurrency: cfg.kafka.partitions,
    },
    handler: async (batch, ctx) => {
      // a change is matched against campaigns at least as new as the moment it is handled:
      // one created (or paused) just before the change was decided must count
      await watcher.current();
      // the batch's sends go on after the handler returns (pipeline.ts): its offset is
      // committed once they and their follow-ups are done, and the claims and policy writes
      // are on disk (CDP_REDIS_DURABILITY); a worker stopped or killed before that leaves the
      // batch to be delivered again, so a send taken from the delayed set is never lost
      const out = await pipeline(batch, ctx);
      return { effects: (out ? out.effects : Promise.resolve()).then(() => durable()) };
    },
    log: log.child({ consumer: 'activation' }),
  });
  const poller = startDelayedPoller({
    redis,
    redisPrefix: cfg.redis.prefix,
    producer,
    retryTopic: t.activationRetry,
    deadLetterTopic: t.deadLetter,
    now,
    log: log.child({ component: 'delayed-sends' }),
  });
  return {
    name: 'activation',
    async stop() {
      await poller.stop();
      await consumer.stop();
      watcher.stop();
      credentials.stop();
      for (const c of Object.values(channels)) await c.close?.().catch(() => {});
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
      redis.disconnect();
    },
  };
}

/** The ledger sink as a service: decisions from cdp.activation-ledger into ClickHouse. */
export async function startLedger(cfg: Config, clients: Clients, log: Logger): Promise<RunningService> {
  const kafka = clients.kafka();
  const admin = kafka.admin();
  const clickhouse = await clients.clickhouse();
  const t = topics(cfg.kafka.topicPrefix);
  // rows ClickHouse refuses for what they hold go to the dead-letter topic
  const producer = kafka.producer();
  const ledgerSink = createLedgerSink({
    clickhouse,
    log: log.child({ component: 'ledger-sink' }),
    producer,
    deadLetterTopic: t.deadLetter,
  });
  const ledgerConsumer = superviseConsumer({
    kafka,
    admin,
    topics: activationTopicSpecs(cfg),
    consumer: {
      ...consumerGroup(cfg.kafka.topicPrefix, 'activationLedger'),
      maxBatchSize: 5000,
      concurrency: cfg.kafka.partitions,
      // it buffers for its flush anyway: fewer, fuller fetches (at most FETCH_MAX_WAIT_MS later)
      minBytes: 256 * 1024,
    },
    handler: ledgerSink.handler,
    log: log.child({ consumer: 'activation-ledger' }),
  });
  // journey steps (activation/journeys/) the same way, into journey_steps
  const journeySink = createLedgerSink({
    clickhouse,
    log: log.child({ component: 'journey-ledger-sink' }),
    producer,
    deadLetterTopic: t.deadLetter,
    table: 'journey_steps',
  });
  const journeyConsumer = superviseConsumer({
    kafka,
    admin,
    topics: activationTopicSpecs(cfg),
    consumer: {
      ...consumerGroup(cfg.kafka.topicPrefix, 'journeyLedger'),
      maxBatchSize: 5000,
      concurrency: cfg.kafka.partitions,
      minBytes: 256 * 1024,
    },
    handler: journeySink.handler,
    log: log.child({ consumer: 'journey-ledger' }),
  });
  return {
    name: 'ledger',
    async stop() {
      await Promise.all([ledgerConsumer.stop(), journeyConsumer.stop()]);
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
    },
  };
}
