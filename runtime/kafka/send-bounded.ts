// Produces so that one message the broker refuses as too large can never stall a
// partition: the messages go in requests of at most MAX_REQUEST_BYTES (merged requests of
// small messages stay under the broker's default 1 MB too); when the broker (or librdkafka
// before it) refuses a request as too large, it is split until the message refused alone is
// found, and that one goes to the dead-letter topic with the reason instead of failing the
// batch (which the consumer would retry forever). Every other failure is thrown: the batch
// is retried. Parts of a refused request may have been stored on other partitions before
// the refusal, so they can be produced twice; what reads these topics is idempotent.
import { DLQ_HEADERS } from '../../schemas/topics.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { deadLetter } from './dead-letter.ts';
import type { OutgoingMessage, Producer } from './types.ts';

/** Bytes of messages per produce request (keys, values and headers). */
export const MAX_REQUEST_BYTES = 900 * 1024;
/** A dead letter keeps this much of a refused message's value (it must fit the topic itself). */
const DEAD_LETTER_VALUE_BYTES = 64 * 1024;

export interface BoundedSendOptions {
  deadLetterTopic: string;
  /** Where the dead letter says it was refused (e.g. `processor.publish`). */
  stage: string;
  log: Logger;
  maxRequestBytes?: number;
}

/** True when Kafka refused a message (or a request) as larger than it takes. */
export function isTooLargeError(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 3) return false;
  const e = err as { type?: unknown; message?: unknown; cause?: unknown; originalError?: unknown };
  const text = `${typeof e.type === 'string' ? e.type : ''} ${typeof e.message === 'string' ? e.message : ''}`;
  if (
    /MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE|MSG_SIZE_TOO_LARGE|RecordTooLarge|size too large|larger than the max message size/i.test(
      text,
    )
  )
    return true;
  return isTooLargeError(e.cause, depth + 1) || isTooLargeError(e.originalError, depth + 1);
}

const sizeOf = (m: OutgoingMessage): number => {
  let n =
    (typeof m.value === 'string' ? Buffer.byteLength(m.value) : m.value.length) + Buffer.byteLength(m.key);
  if (m.headers) for (const [k, v] of Object.entries(m.headers)) n += k.length + v.length;
  return n;
};

/** Splits messages, in order, into requests of at most `max` bytes (a larger message alone). */
export function splitRequests(
  messages: readonly OutgoingMessage[],
  max = MAX_REQUEST_BYTES,
): OutgoingMessage[][] {
  const out: OutgoingMessage[][] = [];
  let current: OutgoingMessage[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = sizeOf(m);
    if (current.length > 0 && bytes + size > max) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(m);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * Sends `messages` to `topic` (acknowledged, as Producer.send); answers the messages that
 * went to the dead-letter topic instead, refused as too large.
 */
export async function sendOrDeadLetter(
  producer: Producer,
  topic: string,
  messages: readonly OutgoingMessage[],
  o: BoundedSendOptions,
): Promise<OutgoingMessage[]> {
  if (messages.length === 0) return [];
  const refused: Array<{ m: OutgoingMessage; err: unknown }> = [];
  const sendPart = async (part: OutgoingMessage[]): Promise<void> => {
    try {
      await producer.send(topic, part);
    } catch (err) {
      if (!isTooLargeError(err)) throw err;
      if (part.length === 1) {
        refused.push({ m: part[0]!, err });
        return;
      }
      const mid = part.length >> 1;
      await sendPart(part.slice(0, mid));
      await sendPart(part.slice(mid));
    }
  };
  await Promise.all(splitRequests(messages, o.maxRequestBytes).map(sendPart));
  if (refused.length === 0) return [];
  const dead = refused.map(({ m, err }) => deadLetterOf(m, topic, err, o));
  await producer.send(o.deadLetterTopic, dead);
  o.log.warn(
    { topic, count: dead.length, reason: dead[0]?.headers?.[DLQ_HEADERS.reason] },
    'message_too_large_dead_lettered',
  );
  return refused.map((r) => r.m);
}

function deadLetterOf(
  m: OutgoingMessage,
  topic: string,
  err: unknown,
  o: BoundedSendOptions,
): OutgoingMessage {
  const value = typeof m.value === 'string' ? Buffer.from(m.value) : m.value;
  const cut = value.length > DEAD_LETTER_VALUE_BYTES;
  return deadLetter({
    key: m.key,
    // the message itself cannot go: its start, for whoever looks into it
    value: cut ? value.subarray(0, DEAD_LETTER_VALUE_BYTES) : value,
    reason: `refused by Kafka as too large (${value.length} bytes${cut ? `, the first ${DEAD_LETTER_VALUE_BYTES} kept here` : ''}): ${errorMessage(err)}`,
    stage: o.stage,
    from: { topic },
  });
}
