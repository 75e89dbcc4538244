// How many copies of each topic partition Kafka keeps, and how many must have a write
// before a producer with acks=all is answered. Both depend on the cluster's size, which only
// the admin client knows, so the defaults are settled here against the broker count it reports.

/** What the configuration asks for (CDP_TOPIC_REPLICATION, CDP_TOPIC_MIN_INSYNC); unset = default. */
export interface TopicDurabilitySettings {
  replication?: number;
  minInsync?: number;
}

/** What topics are created with. */
export interface TopicDurability {
  replication: number;
  minInsync: number;
}

/** The settings cannot be met by this cluster: a configuration error, not worth retrying. */
export class TopicDurabilityError extends Error {
  readonly retriable = false;
  constructor(message: string) {
    super(message);
    this.name = 'TopicDurabilityError';
  }
}

/** At most three copies by default: what a production cluster keeps, and all a small one has. */
export const DEFAULT_MAX_REPLICATION = 3;

/**
 * Replication defaults to min(3, brokers); min.insync.replicas to replication − 1 (at least 1),
 * so a topic keeps taking writes while one broker is down and never acknowledges a write held
 * by a single broker when there are more. One broker: 1 and 1. Three or more: 3 and 2.
 */
export function resolveTopicDurability(settings: TopicDurabilitySettings, brokers: number): TopicDurability {
  if (!Number.isInteger(brokers) || brokers < 1)
    throw new TopicDurabilityError(`the Kafka cluster reports ${brokers} brokers`);
  const replication = settings.replication ?? Math.min(DEFAULT_MAX_REPLICATION, brokers);
  const minInsync = settings.minInsync ?? (replication > 1 ? replication - 1 : 1);
  if (minInsync > replication)
    throw new TopicDurabilityError(
      `CDP_TOPIC_MIN_INSYNC=${minInsync} is more than the replication factor ${replication}` +
        `${settings.replication === undefined ? ` (the default for ${brokers} broker(s); set CDP_TOPIC_REPLICATION)` : ''}:` +
        ' no write with acks=all could ever succeed',
    );
  return { replication, minInsync };
}

/** Why topics cannot be created with `want` on a cluster of `brokers` (null: they can). */
export function creationProblem(want: TopicDurability, brokers: number): string | null {
  return want.replication > brokers
    ? `CDP_TOPIC_REPLICATION=${want.replication} needs at least ${want.replication} brokers; ` +
        `the cluster has ${brokers}`
    : null;
}

/** An existing topic as the cluster describes it; minInsync null where the driver cannot read it. */
export interface ExistingTopic {
  topic: string;
  /** The fewest replicas any of its partitions has. */
  replication: number;
  minInsync: number | null;
}

export interface DurabilityShortfall {
  topic: string;
  replication: number;
  wantedReplication: number;
  minInsync: number | null;
  wantedMinInsync: number;
}

/** Existing topics kept less safely than wanted (they are not changed: that is the operator's call). */
export function durabilityShortfalls(
  existing: readonly ExistingTopic[],
  want: TopicDurability,
): DurabilityShortfall[] {
  return existing
    .filter((t) => t.replication < want.replication || (t.minInsync !== null && t.minInsync < want.minInsync))
    .map((t) => ({
      topic: t.topic,
      replication: t.replication,
      wantedReplication: want.replication,
      minInsync: t.minInsync,
      wantedMinInsync: want.minInsync,
    }));
}

/** A topic's config entries: min.insync.replicas unless the topic's own spec sets it. */
export function topicConfig(
  want: TopicDurability,
  config: Record<string, string> = {},
): Record<string, string> {
  return { 'min.insync.replicas': String(want.minInsync), ...config };
}
