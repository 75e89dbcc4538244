// Plain test data builders (no I/O).
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
