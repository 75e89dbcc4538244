// Audit log rows from services that hold no ClickHouse (the ingest host's provider webhooks):
// they queue the row in Redis, a sorted set scored by when it is due, and the query service
// writes it to audit_log (query/audit-queue.ts) and removes it. The member is the row's JSON
// without the time it was queued, so queuing the same row twice keeps one entry.

/** The sorted set of queued audit rows (QueuedAudit JSON) → epoch ms due. */
export const auditDueKey = (prefix: string) => `${prefix}:audit:due`;

export interface QueuedAudit {
  workspaceId: string;
  /** When it happened (epoch ms). */
  at: number;
  actor: string;
  action: 'create' | 'update' | 'delete';
  /** sns_subscription: an SNS subscription the SES webhook confirmed (entity id the TopicArn). */
  entityType: 'suppression' | 'sns_subscription';
  entityId: string;
  before: unknown;
  after: unknown;
}
