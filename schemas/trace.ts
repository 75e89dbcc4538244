// W3C Trace Context (https://www.w3.org/TR/trace-context/): a `traceparent` a client sends
// with an ingest request travels with the event through Kafka (message header `traceparent`),
// onto the segment changes it causes, and out on the webhooks they send, so a tracing system
// (OpenTelemetry and the like) joins the caller's trace to what the pipeline did. Only
// propagated when the client sent one: events without it carry no extra header.
import { randomBytes } from 'node:crypto';

export const TRACE_HEADER = 'traceparent';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The header when it is a valid version-00 traceparent (all-zero ids are invalid), else undefined. */
export function validTraceparent(v: string | null | undefined): string | undefined {
  if (v?.length !== 55) return undefined;
  const m = TRACEPARENT.exec(v.toLowerCase());
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return undefined;
  return m[0];
}

/** A child of `parent`: the same trace and flags, a new span id (one hop of ours). */
export function childTraceparent(parent: string): string {
  const [, trace, , flags] = parent.split('-');
  let span = randomBytes(8).toString('hex');
  while (/^0+$/.test(span)) span = randomBytes(8).toString('hex');
  return `00-${trace}-${span}-${flags}`;
}
