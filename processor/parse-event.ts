// Step (pure): a Kafka message to a validated event, or a dead-letter reason.

import type { IncomingMessage } from '../runtime/kafka/index.ts';
import { type NormalizedEvent, normalizedEventCheck } from '../schemas/event.ts';

export type Parsed = { ok: true; event: NormalizedEvent } | { ok: false; reason: string };

export function parseEvent(m: IncomingMessage): Parsed {
  if (!m.value || m.value.length === 0) return { ok: false, reason: 'empty message' };
  let v: unknown;
  try {
    v = JSON.parse(m.value.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `invalid JSON: ${(err as Error).message}` };
  }
  if (!normalizedEventCheck.Check(v)) {
    const e = normalizedEventCheck.Errors(v).First();
    return { ok: false, reason: `invalid event at ${e?.path || '/'}: ${e?.message ?? 'invalid'}` };
  }
  if (Number.isNaN(Date.parse(v.timestamp)))
    return { ok: false, reason: 'invalid event at /timestamp: not a date' };
  if (!v.userId && !v.anonymousId) return { ok: false, reason: 'event has neither userId nor anonymousId' };
  return { ok: true, event: v };
}
