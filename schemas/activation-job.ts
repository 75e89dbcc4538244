// One send to try (again): a segment change for one campaign. The value of messages on
// the activation retry topic and of activation dead letters; headers say which attempt
// it is and when it may run.
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { SegmentChange } from './segment-change.ts';

/**
 * A send-rate slot the job holds (activation/policy/contact-policy.lua): its time, the rate's
 * `gen`, and its schedule: `q` its turn in the queue (default), `s` its time to be sent.
 */
export const RateHold = Type.Object({
  at: Type.Number(),
  gen: Type.Integer({ minimum: 0 }),
  kind: Type.Optional(Type.Union([Type.Literal('q'), Type.Literal('s')])),
});
export type RateHold = Static<typeof RateHold>;

export const ActivationJob = Type.Object({
  campaignId: Type.String(),
  change: SegmentChange,
  /** Set on a send delayed by its campaign's rate: decided again at its slot, it goes then. */
  rate: Type.Optional(RateHold),
  /** The W3C traceparent of the event behind the change (schemas/trace.ts), when its client sent one. */
  trace: Type.Optional(Type.String({ maxLength: 55 })),
  /** A soft-bounced email sent again (activation/soft-bounce-resend.ts): the n-th resend of send key `of`. */
  resend: Type.Optional(
    Type.Object({ of: Type.String({ maxLength: 64 }), n: Type.Integer({ minimum: 1, maximum: 99 }) }),
  ),
});
export type ActivationJob = Static<typeof ActivationJob>;
export const activationJobCheck = TypeCompiler.Compile(ActivationJob);

export const ACTIVATION_HEADERS = {
  /** Attempts made so far (1 after the first try failed). */
  attempt: 'cdp-attempt',
  /** Epoch ms before which the job must not run. */
  notBefore: 'cdp-not-before',
  /** Why the job is being retried or delayed. */
  reason: 'cdp-retry-reason',
  /** Epoch ms when activation first saw the change (delivery latency is measured from it). */
  firstSeen: 'cdp-first-seen',
  /** Marks a dead letter whose value is an ActivationJob (replayable with `cdp dlq replay`). */
  job: 'cdp-activation-job',
} as const;
