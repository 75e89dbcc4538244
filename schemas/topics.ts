// Topic names and keys, declared once; producers and consumers both import them.

export const TOPIC_BASE = {
  /** Normalised tracking events from ingest. Key: `${workspaceId}:${userId ?? anonymousId}`. */
  events: 'cdp.events',
  /** Segment membership transitions from the processor. Key: `${workspaceId}:${profileId}`. */
  segmentChanges: 'cdp.segment-changes',
  /** Identity-graph changes from the processor (schemas/identity-change.ts). Key: `${workspaceId}:${profileId}`. */
  identity: 'cdp.identity',
  /** Activation send jobs to try again (schemas/activation-job.ts), with attempt and not-before headers. */
  activationRetry: 'cdp.activation-retry',
  /** Activation decisions (ledger rows), written to ClickHouse in batches by the ledger sink. Key: `${workspaceId}:${campaignId}`. */
  activationLedger: 'cdp.activation-ledger',
  /** Events of known people some journey listens to (schemas/journey-signal.ts). Key: `${workspaceId}:${profileId}`. */
  journeySignals: 'cdp.journey-signals',
  /** Journey steps (schemas/journey-signal.ts JourneyStepRow), written to ClickHouse journey_steps. Key: `${workspaceId}:${journeyId}`. */
  journeyLedger: 'cdp.journey-ledger',
  /** Messages that cannot be processed, with the reason in headers. */
  deadLetter: 'cdp.dead-letter',
  /**
   * Events a tracking plan in quarantine mode kept out of cdp.events (the normalised event,
   * its violations in headers: schemas/tracking-plan.ts PLAN_HEADERS), written by the history
   * sink to ClickHouse quarantined_events. Key: as on cdp.events.
   */
  quarantine: 'cdp.quarantine',
  /**
   * The hot-key lane: events of one person or anonymous id arriving faster than
   * CDP_HOT_KEY_RATE (a bot, a runaway loop), moved off cdp.events by ingest so they do not
   * queue ahead of everyone else's on their partition. Handled by its own processor group.
   * Key: as on cdp.events.
   */
  eventsOverflow: 'cdp.events-overflow',
} as const;

export type TopicName = keyof typeof TOPIC_BASE;
export type Topics = Record<TopicName, string>;

/** Topic names under a prefix (tests and multi-tenant clusters give each deployment its own). */
export function topics(prefix = ''): Topics {
  const p = prefix ? `${prefix}.` : '';
  return {
    events: `${p}${TOPIC_BASE.events}`,
    segmentChanges: `${p}${TOPIC_BASE.segmentChanges}`,
    identity: `${p}${TOPIC_BASE.identity}`,
    activationRetry: `${p}${TOPIC_BASE.activationRetry}`,
    activationLedger: `${p}${TOPIC_BASE.activationLedger}`,
    journeySignals: `${p}${TOPIC_BASE.journeySignals}`,
    journeyLedger: `${p}${TOPIC_BASE.journeyLedger}`,
    deadLetter: `${p}${TOPIC_BASE.deadLetter}`,
    quarantine: `${p}${TOPIC_BASE.quarantine}`,
    eventsOverflow: `${p}${TOPIC_BASE.eventsOverflow}`,
  };
}

/** A topic as the services create it. */
export interface TopicSpec {
  topic: string;
  partitions: number;
}

/**
 * Topics with their partition counts: the dead-letter topic has one (its order is the order
 * of failures, and it is small); every other CDP_TOPIC_PARTITIONS. All of them by default.
 */
export function topicSpecs(
  prefix: string,
  partitions: number,
  names: readonly TopicName[] = Object.keys(TOPIC_BASE) as TopicName[],
): TopicSpec[] {
  const t = topics(prefix);
  return names.map((n) => ({ topic: t[n], partitions: n === 'deadLetter' ? 1 : partitions }));
}

/**
 * Every consumer group of the services and the topics it reads, declared once: the services
 * subscribe with these, and lag reports (GET /v1/stats/pipeline) read the same list. Each
 * destination and warehouse export has a group of its own besides (schemas/destination.ts
 * destinationGroup, schemas/warehouse.ts).
 */
export const CONSUMER_GROUPS = {
  /** Identity, profiles and segments (processor/). */
  processor: { name: 'cdp-processor', topics: ['events'] },
  /** The same for the hot-key lane, in its own group so a flood never holds up cdp.events. */
  processorOverflow: { name: 'cdp-processor-overflow', topics: ['eventsOverflow'] },
  /** The history sink: everything ClickHouse keeps. */
  history: {
    name: 'cdp-history',
    topics: ['events', 'eventsOverflow', 'identity', 'segmentChanges', 'quarantine'],
  },
  /** Campaign sends on segment changes, and their retries. */
  activation: { name: 'cdp-activation', topics: ['segmentChanges', 'activationRetry'] },
  /** Activation's ledger rows to ClickHouse. */
  activationLedger: { name: 'cdp-activation-ledger', topics: ['activationLedger'] },
  /** Journey steps to ClickHouse. */
  journeyLedger: { name: 'cdp-journey-ledger', topics: ['journeyLedger'] },
  /** Journeys: entries, exits and waits on segment changes, signals and merges. */
  journeys: { name: 'cdp-journeys', topics: ['segmentChanges', 'journeySignals', 'identity'] },
} as const satisfies Record<string, { name: string; topics: readonly TopicName[] }>;

export type ConsumerGroupName = keyof typeof CONSUMER_GROUPS;

/** A consumer group's id and topics under a prefix. */
export function consumerGroup(
  prefix: string,
  name: ConsumerGroupName,
): { groupId: string; topics: string[] } {
  const t = topics(prefix);
  const g = CONSUMER_GROUPS[name];
  return { groupId: `${prefix ? `${prefix}.` : ''}${g.name}`, topics: g.topics.map((n) => t[n]) };
}

export const eventKey = (workspaceId: string, identity: string) => `${workspaceId}:${identity}`;
export const profileKey = (workspaceId: string, profileId: string) => `${workspaceId}:${profileId}`;

/** Headers a dead-lettered message carries. */
export const DLQ_HEADERS = {
  reason: 'cdp-dlq-reason',
  source: 'cdp-dlq-source-topic',
  partition: 'cdp-dlq-source-partition',
  offset: 'cdp-dlq-source-offset',
  stage: 'cdp-dlq-stage',
} as const;

/**
 * Set on a message `cdp dlq replay` put back on cdp.events, cdp.identity or
 * cdp.segment-changes for the history sink (value `history`): the processor and activation
 * handled the original already and skip it; only the history sink stores it.
 */
export const REPLAY_HEADER = 'cdp-replay-for';
