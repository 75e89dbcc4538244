import { createHash } from 'node:crypto';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';

export interface AuditEntry {
  workspaceId: string;
  actor: string;
  action: 'create' | 'update' | 'delete' | 'erase';
  entityType:
    | 'segment'
    | 'campaign'
    | 'computed_trait'
    | 'score'
    | 'profile'
    | 'write_key'
    | 'bi_credential'
    | 'consent'
    | 'suppression'
    | 'sns_subscription'
    | 'workspace_settings'
    | 'journey'
    | 'form'
    | 'tracking_plan'
    | 'page'
    | 'export'
    | 'channel_credentials'
    | 'destination'
    | 'import';
  entityId: string;
  before: unknown;
  after: unknown;
}

/** Never the key itself: a short fingerprint that tells keys apart in the audit log. */
export function actorOf(key: string): string {
  return `key:${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;
}

/** Secrets in definitions are not copied into the audit log. */
function redact(v: unknown): string {
  if (v === undefined || v === null) return '';
  return JSON.stringify(v, (k, val) => (k === 'secret' && typeof val === 'string' ? '[redacted]' : val));
}

export async function recordAudit(clickhouse: ClickHouseClient, e: AuditEntry, at: Date): Promise<void> {
  await clickhouse.insert({
    table: 'audit_log',
    format: 'JSONEachRow',
    values: [
      {
        workspace_id: e.workspaceId,
        at: at.getTime(),
        actor: e.actor,
        action: e.action,
        entity_type: e.entityType,
        entity_id: e.entityId,
        before: redact(e.before),
        after: redact(e.after),
      },
    ],
  });
}
