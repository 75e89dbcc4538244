// A message that cannot be processed or sent, as it goes to the dead-letter topic: a key and
// value, and headers saying why, at which stage it was refused and where it came from. One
// builder for every producer of dead letters (processor, history and ledger sinks,
// activation, journeys, destinations, bounded sends), so `cdp dlq replay` and operators
// read the same headers everywhere, reasons are bounded alike, and every dead letter is
// counted in cdp_dead_letters_total by stage.
import { DLQ_HEADERS, REPLAY_HEADER } from '../../schemas/topics.ts';
import { metrics } from '../metrics.ts';
import type { IncomingMessage, OutgoingMessage } from './types.ts';

/** Reasons are cut here: a header, read by people, not a place for a whole payload. */
export const DEAD_LETTER_REASON_CHARS = 1000;

export interface DeadLetter {
  key: string;
  value: string | Buffer;
  reason: string;
  /** Where it was refused, e.g. `processor.parse`, `activation.send`. */
  stage: string;
  /** The topic it came from (or was meant for), and where in it when it was consumed. */
  from: { topic: string; partition?: number; offset?: string };
  /** Headers that ride along (an activation job's attempt, a destination id, a replay mark). */
  headers?: Record<string, string>;
}

export function deadLetter(d: DeadLetter): OutgoingMessage {
  metrics.deadLetters.labels(d.stage).inc();
  return {
    key: d.key,
    value: d.value,
    headers: {
      ...d.headers,
      [DLQ_HEADERS.reason]: d.reason.slice(0, DEAD_LETTER_REASON_CHARS),
      [DLQ_HEADERS.source]: d.from.topic,
      ...(d.from.partition !== undefined ? { [DLQ_HEADERS.partition]: String(d.from.partition) } : {}),
      ...(d.from.offset !== undefined ? { [DLQ_HEADERS.offset]: d.from.offset } : {}),
      [DLQ_HEADERS.stage]: d.stage,
    },
  };
}

/** A consumed message, dead-lettered as it came. */
export function deadLetterOf(m: IncomingMessage, reason: string, stage: string): OutgoingMessage {
  return deadLetter({
    key: m.key ?? '',
    value: m.value ?? Buffer.alloc(0),
    reason,
    stage,
    from: { topic: m.topic, partition: m.partition, offset: m.offset },
    // still bad after `cdp dlq replay`: marked, so a later replay does not send it round again
    headers: m.headers[REPLAY_HEADER] ? { [REPLAY_HEADER]: m.headers[REPLAY_HEADER] } : undefined,
  });
}
