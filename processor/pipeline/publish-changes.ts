// Settling, step 3: the segment changes (cdp.segment-changes) and identity changes
// (cdp.identity) published, before they are recorded (see ../pipeline.ts for why). Every
// message is bounded (a huge profile's traits cut, its identifiers split), and one the
// broker still refuses as too large is dead-lettered instead of failing the batch forever.

import type { IdentityChange } from '../../schemas/identity-change.ts';
import { serializeIdentityChange } from '../../schemas/identity-change.ts';
import { serializeSegmentChange } from '../../schemas/segment-change.ts';
import { profileKey } from '../../schemas/topics.ts';
import { childTraceparent, TRACE_HEADER } from '../../schemas/trace.ts';
import type { ProcessorDeps } from '../pipeline.ts';
import type { Decision } from './decide-transitions.ts';
import { publish } from './shared.ts';

/**
 * Resolves when both are acknowledged. `traces`: by messageId, the trace context of the
 * events whose client sent one; their segment changes carry a child of it.
 */
export async function publishChanges(
  deps: Pick<ProcessorDeps, 'producer' | 'topics' | 'log' | 'publishSegmentChanges'>,
  changes: Decision[],
  identity: IdentityChange[],
  traces: ReadonlyMap<string, string>,
): Promise<void> {
  const sends: Promise<unknown>[] = [];
  if (changes.length > 0 && deps.publishSegmentChanges !== false)
    sends.push(
      publish(
        deps,
        deps.topics.segmentChanges,
        changes.map(({ change }) => {
          const trace = change.messageId === null ? undefined : traces.get(change.messageId);
          return {
            key: profileKey(change.workspaceId, change.profileId),
            value: serializeSegmentChange(change),
            ...(trace ? { headers: { [TRACE_HEADER]: childTraceparent(trace) } } : {}),
          };
        }),
      ),
    );
  if (identity.length > 0)
    sends.push(
      publish(
        deps,
        deps.topics.identity,
        identity.flatMap((c) =>
          serializeIdentityChange(c).map((value) => ({
            key: profileKey(c.workspaceId, c.profileId),
            value,
          })),
        ),
      ),
    );
  await Promise.all(sends);
}
