// `cdp dlq replay`: puts dead letters back where they can go through again.
// - Activation dead letters (a send job) go on the activation retry topic, as a fresh first
//   attempt (the send key still makes it one message per segment entry).
// - History sink dead letters (stages history.*) go back on the topic they came from (their
//   source header: this deployment's cdp.events, cdp.identity or cdp.segment-changes, never
//   another topic), key and value as they were, marked with the `cdp-replay-for: history`
//   header: the processor and activation handled the original when they first read it and
//   skip the replay; only the history sink stores it. The stored rows are deduplicated
//   (events by messageId, identity links by version, transitions by epoch), so a replayed
//   message that had gone in after all counts once; one that is still bad is dead-lettered
//   again, with its reason and the replay mark, and is not replayed again.
// It reads the dead-letter topic with its own consumer group and commits what it went
// through, so running it again replays only newer dead letters (`only` skips the other
// kind for good). It stops when it has read up to where the topic ended at start, or
// after --limit replays.
// (kafkajs directly: a one-shot tool needs per-message commits and the end offsets.)
import { Kafka, logLevel } from 'kafkajs';
import { fixKafkajsIdleTimer } from '../runtime/kafka/kafkajs-request-queue.ts';
import { ACTIVATION_HEADERS } from '../schemas/activation-job.ts';
import { DLQ_HEADERS, REPLAY_HEADER, topics } from '../schemas/topics.ts';

export interface ReplayResult {
  replayed: number;
  skipped: number;
}

export async function replayDeadLetters(opts: {
  brokers: string[];
  topicPrefix: string;
  limit?: number;
  /** Replay only activation or only history dead letters (default: both). */
  only?: 'activation' | 'history';
  now?: () => number;
  timeoutMs?: number;
}): Promise<ReplayResult> {
  const t = topics(opts.topicPrefix);
  const now = opts.now ?? Date.now;
  const limit = opts.limit ?? Number.POSITIVE_INFINITY;
  const historyTopics = new Set([t.events, t.identity, t.segmentChanges]);
  fixKafkajsIdleTimer(); // no 1 ms timer per connection (runtime/kafka/kafkajs-request-queue.ts)
  const kafka = new Kafka({ clientId: 'cdp-dlq-replay', brokers: opts.brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<number, bigint>();
  const groupId = `${opts.topicPrefix ? `${opts.topicPrefix}.` : ''}cdp-dlq-replay`;
  for (const p of await admin.fetchTopicOffsets(t.deadLetter)) ends.set(p.partition, BigInt(p.high));
  // what earlier replays already went through
  const [committed] = await admin.fetchOffsets({ groupId, topics: [t.deadLetter] });
  await admin.disconnect();
  const seen = new Map<number, bigint>();
  for (const p of committed?.partitions ?? [])
    if (Number(p.offset) > 0) seen.set(p.partition, BigInt(p.offset) - 1n);
  const caughtUp = () => [...ends].every(([p, end]) => end === 0n || (seen.get(p) ?? -1n) + 1n >= end);
  const result: ReplayResult = { replayed: 0, skipped: 0 };
  if (caughtUp()) return result;

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  await consumer.subscribe({ topic: t.deadLetter, fromBeginning: true });
  let finish!: () => void;
  const done = new Promise<void>((r) => {
    finish = r;
  });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      if (result.replayed >= limit) return finish();
      const end = ends.get(partition) ?? 0n;
      if (BigInt(message.offset) >= end) return caughtUp() ? finish() : undefined;
      const h = (name: string) => message.headers?.[name]?.toString();
      const stage = h(DLQ_HEADERS.stage) ?? '';
      const source = h(DLQ_HEADERS.source) ?? '';
      if (
        opts.only !== 'activation' &&
        stage.startsWith('history.') &&
        historyTopics.has(source) &&
        !h(REPLAY_HEADER) &&
        message.value &&
        message.value.length > 0
      ) {
        await producer.send({
          topic: source,
          acks: -1,
          messages: [{ key: message.key, value: message.value, headers: { [REPLAY_HEADER]: 'history' } }],
        });
        result.replayed++;
      } else if (
        opts.only !== 'history' &&
        h(ACTIVATION_HEADERS.job) === '1' &&
        stage.startsWith('activation') &&
        message.value
      ) {
        await producer.send({
          topic: t.activationRetry,
          acks: -1,
          messages: [
            {
              key: message.key,
              value: message.value,
              headers: {
                [ACTIVATION_HEADERS.attempt]: '0',
                [ACTIVATION_HEADERS.notBefore]: String(now()),
                [ACTIVATION_HEADERS.firstSeen]: String(now()),
                [ACTIVATION_HEADERS.reason]: `dlq replay: ${h(DLQ_HEADERS.reason) ?? ''}`.slice(0, 500),
              },
            },
          ],
        });
        result.replayed++;
      } else result.skipped++;
      await consumer.commitOffsets([
        { topic: t.deadLetter, partition, offset: (BigInt(message.offset) + 1n).toString() },
      ]);
      seen.set(partition, BigInt(message.offset));
      if (result.replayed >= limit || caughtUp()) finish();
    },
  });
  const timer = setTimeout(finish, opts.timeoutMs ?? 60_000);
  await done;
  clearTimeout(timer);
  await consumer.disconnect();
  await producer.disconnect();

  return result;
}
