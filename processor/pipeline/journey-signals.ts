// Step 4: journey signals: the events journeys react to, with the person they resolved to
// (the journey runner keys its state by profile); published to cdp.journey-signals beside
// the segment changes.

import type { OutgoingMessage } from '../../runtime/kafka/index.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import { journeySignalsOf } from '../../schemas/journey.ts';
import type { JourneySignal } from '../../schemas/journey-signal.ts';
import { profileKey } from '../../schemas/topics.ts';
import type { ProcessorDeps } from '../pipeline.ts';
import type { Applied } from './apply-events.ts';

/** The signals to publish (none for a rebuild from history, which publishes nothing). */
export function journeySignals(
  deps: Pick<ProcessorDeps, 'journeyEvents' | 'publishSegmentChanges'>,
  events: NormalizedEvent[],
  { results }: Applied,
): OutgoingMessage[] {
  const journeyEvents = deps.journeyEvents?.();
  const signals: OutgoingMessage[] = [];
  if (journeyEvents && journeyEvents.size > 0 && deps.publishSegmentChanges !== false)
    results.forEach(([, state], i) => {
      const e = events[i]!;
      if (!state) return;
      for (const s of journeySignalsOf(e, journeyEvents)) {
        const signal: JourneySignal = {
          workspaceId: e.workspaceId,
          profileId: state.profileId,
          messageId: e.messageId,
          event: s.event,
          properties: s.properties,
          timestamp: e.timestamp,
          userId: e.userId,
        };
        signals.push({ key: profileKey(e.workspaceId, state.profileId), value: JSON.stringify(signal) });
      }
    });
  return signals;
}
