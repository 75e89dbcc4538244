// Plain test data builders (no I/O).
import { randomUUID } from 'node:crypto';
import type { LedgerRow } from '../activation/pipeline.ts';
import type { Batch, BatchContext } from '../runtime/kafka/index.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import type { SegmentDefinition } from '../schemas/segment.ts';

/** An active segment definition as the query service would store it. */
export function segmentDef(
  id: string,
  rule: unknown,
  opts: { workspaceId?: string; version?: number } = {},
): SegmentDefinition {
  return {
    id,
    workspaceId: opts.workspaceId ?? 'ws',
    name: id,
    rule,
    version: opts.version ?? 1,
    status: 'active',
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
  };
}

/** An activation ledger row (a webhook sent, attempt 1); `at` in ms or as ClickHouse text. */
export function ledgerRow(
  fields: Partial<Omit<LedgerRow, 'at'>> & { workspace_id: string; at: number | string },
): Omit<LedgerRow, 'at'> & { at: number | string } {
  return {
    send_key: 'key',
    campaign_id: 'cmp',
    campaign_version: 1,
    segment_id: 'seg',
    segment_version: 1,
    profile_id: 'p',
    epoch: 1,
    channel: 'webhook',
    outcome: 'sent',
    reason: '',
    attempt: 1,
    status_code: 200,
    latency_ms: 12,
    provider_ms: 0,
    not_before: null,
    provider_id: '',
    ...fields,
  };
}

/**
 * An event as the processor reads it from cdp.events: a track by user `u1` of workspace
 * `ws`, sent and received at `at` (ms), with a fresh messageId; `fields` on top.
 */
export function streamEvent(fields: Partial<NormalizedEvent>, at: number): NormalizedEvent {
  const iso = new Date(at).toISOString();
  return {
    workspaceId: 'ws',
    type: 'track',
    messageId: `m-${randomUUID()}`,
    userId: 'u1',
    anonymousId: null,
    properties: {},
    traits: {},
    context: {},
    integrations: {},
    timestamp: iso,
    receivedAt: iso,
    ...fields,
  };
}

/** `events` as the consumer hands a batch of cdp.events to its handler (partition 0). */
export function eventBatch(events: readonly NormalizedEvent[], firstOffset: number): Batch {
  return {
    topic: 'events',
    partition: 0,
    messages: events.map((e, i) => ({
      topic: 'events',
      partition: 0,
      offset: String(firstOffset + i),
      key: `${e.workspaceId}:${e.userId ?? e.anonymousId}`,
      value: Buffer.from(JSON.stringify(e)),
      headers: {},
      timestamp: Date.parse(e.receivedAt),
    })),
  };
}

/** A batch handler's context for a consumer that is always active. */
export const BATCH_CTX: BatchContext = { heartbeat: async () => {}, isActive: () => true };
