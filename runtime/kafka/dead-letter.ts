// A message that cannot be processed, as it goes to the dead-letter topic: its own key and
// value, and headers saying why, where it was refused and where it came from. One builder
// for every consumer, so `cdp dlq replay` and operators read the same headers everywhere.
import { DLQ_HEADERS, REPLAY_HEADER } from '../../schemas/topics.ts';
import { metrics } from '../metrics.ts';
import type { IncomingMessage, OutgoingMessage } from './types.ts';

export function deadLetterOf(m: IncomingMessage, reason: string, stage: string): OutgoingMessage {
  metrics.deadLetters.labels(stage).inc();
  return {
    key: m.key ?? '',
    value: m.value ?? Buffer.alloc(0),
    headers: {
      [DLQ_HEADERS.reason]: reason,
      [DLQ_HEADERS.source]: m.topic,
      [DLQ_HEADERS.partition]: String(m.partition),
      [DLQ_HEADERS.offset]: m.offset,
      [DLQ_HEADERS.stage]: stage,
      // still bad after `cdp dlq replay`: marked, so a later replay does not send it round again
      ...(m.headers[REPLAY_HEADER] ? { [REPLAY_HEADER]: m.headers[REPLAY_HEADER] } : {}),
    },
  };
}
