// One save-and-audit for every kind of definition (segments, campaigns, computed traits,
// lead scores): the store moves its revision (workers reload), the audit log gets who,
// when, before and after.
import type { Context } from 'hono';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { DefinitionKind, DefinitionStore, DefOf } from '../runtime/definitions.ts';
import { type AuditEntry, actorOf, recordAudit } from './audit.ts';
import type { QueryEnv } from './context.ts';

const ENTITY: Record<DefinitionKind, AuditEntry['entityType']> = {
  segments: 'segment',
  campaigns: 'campaign',
  computedTraits: 'computed_trait',
  scores: 'score',
  journeys: 'journey',
  journeyVersions: 'journey',
  forms: 'form',
  formVersions: 'form',
  trackingPlans: 'tracking_plan',
  trackingPlanVersions: 'tracking_plan',
  pages: 'page',
  pageVersions: 'page',
  destinations: 'destination',
};

export interface SaveDeps {
  defs: DefinitionStore;
  clickhouse: ClickHouseClient;
  now: () => Date;
}

/**
 * Stores `after` (a create when `before` is null, an update otherwise) or, when `after` is
 * null, deletes `before`; then audits the change.
 */
export async function saveDefinition<K extends DefinitionKind>(
  deps: SaveDeps,
  c: Context<QueryEnv>,
  kind: K,
  before: DefOf<K> | null,
  after: DefOf<K> | null,
): Promise<void> {
  const ws = c.get('workspaceId');
  const entity = (after ?? before)!;
  if (after) await deps.defs.put(kind, after);
  else await deps.defs.remove(kind, ws, entity.id);
  await recordAudit(
    deps.clickhouse,
    {
      workspaceId: ws,
      actor: actorOf(c.get('apiKey')),
      action: before === null ? 'create' : after === null ? 'delete' : 'update',
      entityType: ENTITY[kind],
      entityId: entity.id,
      before,
      after,
    },
    deps.now(),
  );
}
