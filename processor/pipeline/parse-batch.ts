// Step 1: the batch's messages as events; a message that is none becomes a dead letter.

import { deadLetterOf } from '../../runtime/kafka/dead-letter.ts';
import type { Batch, OutgoingMessage } from '../../runtime/kafka/index.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import { REPLAY_HEADER } from '../../schemas/topics.ts';
import { TRACE_HEADER, validTraceparent } from '../../schemas/trace.ts';
import { parseEvent } from '../parse-event.ts';
import type { ProcessorDeps } from '../pipeline.ts';

export interface BatchEvents {
  /** The events to apply, in the batch's order. */
  events: NormalizedEvent[];
  /** Dead letters of the messages that are no valid event (published last). */
  dead: OutgoingMessage[];
}

/**
 * `traces`: the trace context (schemas/trace.ts) of each event whose client sent one, by
 * messageId, for the segment changes it causes; `traced` collects the messageIds added, for
 * the caller to forget after the batch (even one that fails).
 */
export async function parseBatch(
  deps: Pick<ProcessorDeps, 'erased' | 'log'>,
  batch: Batch,
  traces: Map<string, string>,
  traced: string[],
): Promise<BatchEvents> {
  const dead: OutgoingMessage[] = [];
  const events: NormalizedEvent[] = [];
  // events received before an erasure of their ids, still in flight: they would make the
  // erased person again (a cached filter, no Redis call per event; drop-erased.ts)
  await deps.erased?.refresh();
  for (const m of deps.erased?.events(batch.messages) ?? batch.messages) {
    // a history dead letter replayed for the sink: this event was handled when first read
    if (m.headers[REPLAY_HEADER] === 'history') continue;
    const p = parseEvent(m);
    if (p.ok) {
      events.push(p.event);
      const trace = m.headers[TRACE_HEADER] ? validTraceparent(m.headers[TRACE_HEADER]) : undefined;
      if (trace) {
        traces.set(p.event.messageId, trace);
        traced.push(p.event.messageId);
      }
    } else {
      deps.log.warn(
        { topic: m.topic, partition: m.partition, offset: m.offset, reason: p.reason },
        'event_dead_lettered',
      );
      dead.push(deadLetterOf(m, p.reason, 'processor.parse'));
    }
  }
  return { events, dead };
}
