// Step (pure): a Kafka message to a validated event, or a dead-letter reason.

import type { Static, TSchema } from '@sinclair/typebox';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import type { IncomingMessage } from '../runtime/kafka/index.ts';
import { type NormalizedEvent, normalizedEventCheck } from '../schemas/event.ts';

export type Parsed = { ok: true; event: NormalizedEvent } | { ok: false; reason: string };

/** A message's JSON value checked against a compiled schema, or why not (`what` names it). */
export function parseMessage<S extends TSchema>(
  m: IncomingMessage,
  check: TypeCheck<S>,
  what: string,
): { ok: true; value: Static<S> } | { ok: false; reason: string } {
  if (!m.value || m.value.length === 0) return { ok: false, reason: 'empty message' };
  let v: unknown;
  try {
    v = JSON.parse(m.value.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `invalid JSON: ${(err as Error).message}` };
  }
  if (!check.Check(v)) {
    const e = check.Errors(v).First();
    return { ok: false, reason: `invalid ${what} at ${e?.path || '/'}: ${e?.message ?? 'invalid'}` };
  }
  return { ok: true, value: v };
}

export function parseEvent(m: IncomingMessage): Parsed {
  const p = parseMessage(m, normalizedEventCheck, 'event');
  if (!p.ok) return p;
  const v = p.value;
  if (Number.isNaN(Date.parse(v.timestamp)))
    return { ok: false, reason: 'invalid event at /timestamp: not a date' };
  if (!v.userId && !v.anonymousId) return { ok: false, reason: 'event has neither userId nor anonymousId' };
  return { ok: true, event: v };
}
