import { AsyncLocalStorage } from 'node:async_hooks';
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
    | 'warehouse_export'
    | 'import'
    | 'workspace'
    | 'person'
    | 'person_token';
  entityId: string;
  before: unknown;
  after: unknown;
}

// The person a request acts for, set by the query API's auth middleware for the request's
// duration, so every route's audit rows name them without each route knowing about people.
const requestActor = new AsyncLocalStorage<string>();

/** Runs `fn` (a request's handling) with audit rows naming `actor`, e.g. `person:p_… a@b.c`. */
export function withActor<T>(actor: string, fn: () => T): T {
  return requestActor.run(actor, fn);
}

/**
 * The audit log's actor: the person the current request acts for (their id and email), or
 * for the deployment's admin key never the key itself but a short fingerprint that tells
 * keys apart.
 */
export function actorOf(key: string): string {
  const person = requestActor.getStore();
  if (person) return person;
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
