// Plain test data builders (no I/O).
import type { LedgerRow } from '../activation/pipeline.ts';
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
