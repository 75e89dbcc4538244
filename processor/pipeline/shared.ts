// What several steps of the processor's pipeline (../pipeline.ts) share: the profiles they
// hand on to evaluation, a workspace's Redis hash tag, and publishing.

import type { ProfileState } from '../../profiles/apply-event.ts';
import type { OutgoingMessage } from '../../runtime/kafka/index.ts';
import { sendOrDeadLetter } from '../../runtime/kafka/send-bounded.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import type { ProcessorDeps } from '../pipeline.ts';
import type { SegmentRegistry, Touched } from '../segment-registry.ts';

/** A profile to evaluate: its state, the event that led to it (null: none), what changed. */
export interface SettleItem {
  ws: string;
  state: ProfileState;
  event: NormalizedEvent | null;
  touched: Touched;
  /** Evaluate everything the profile holds (see isWide), whatever its final state says. */
  wide?: boolean;
}

/** A new, merged or replayed profile: the event does not say what changed. */
export const isWide = (s: ProfileState) => s.created || s.duplicate || s.merged.length > 0;

/** A profile to evaluate again after its membership moved: what was evaluated, and why. */
export interface Recheck {
  ws: string;
  profileId: string;
  event: NormalizedEvent | null;
  touched: Touched;
}

// workspaceKeys is memoised (schemas/redis-keys.ts): no cache of our own
export const tagOf = (prefix: string, ws: string) => workspaceKeys(prefix, ws).tag;

export const hasSegments = (registry: SegmentRegistry, ws: string) => registry.forWorkspace(ws).length > 0;

/** Sends bounded messages; one the broker still refuses as too large is dead-lettered. */
export const publish = (
  deps: Pick<ProcessorDeps, 'producer' | 'topics' | 'log'>,
  topic: string,
  messages: OutgoingMessage[],
) =>
  sendOrDeadLetter(deps.producer, topic, messages, {
    deadLetterTopic: deps.topics.deadLetter,
    stage: 'processor.publish',
    log: deps.log,
  });
