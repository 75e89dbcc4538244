// Step (pure): a `cdp.identity` message to rows of the ClickHouse `identity_links` table,
// or a dead-letter reason. One row per identifier (user | anon | email) and one `profile`
// row for the profile itself and for each profile merged into it, all carrying the
// change's version, so the latest row per identifier wins whatever order they arrive in.
import type { IncomingMessage } from '../runtime/kafka/index.ts';
import { type IdentityChange, identityChangeCheck, splitIdentifier } from '../schemas/identity-change.ts';
import { parseMessage } from './parse-event.ts';

export interface IdentityLinkRow {
  workspace_id: string;
  id_type: string;
  id_value: string;
  profile_id: string;
  version: number;
  at: number;
}

export const IDENTITY_LINK_COLUMNS = [
  'workspace_id',
  'id_type',
  'id_value',
  'profile_id',
  'version',
  'at',
] as const satisfies readonly (keyof IdentityLinkRow)[];

export const LINKED_KINDS = new Set(['user', 'anon', 'email']);

export type ParsedIdentity = { ok: true; rows: IdentityLinkRow[] } | { ok: false; reason: string };

export function parseIdentityChange(m: IncomingMessage): ParsedIdentity {
  const p = parseMessage(m, identityChangeCheck, 'identity change');
  if (!p.ok) return p;
  const v = p.value;
  if (!v.workspaceId || !v.profileId)
    return { ok: false, reason: 'identity change without workspace or profile' };
  const at = Date.parse(v.occurredAt);
  if (Number.isNaN(at)) return { ok: false, reason: 'invalid identity change at /occurredAt: not a date' };
  return { ok: true, rows: toIdentityRows(v, at) };
}

export function toIdentityRows(c: IdentityChange, at: number): IdentityLinkRow[] {
  const row = (id_type: string, id_value: string): IdentityLinkRow => ({
    workspace_id: c.workspaceId,
    id_type,
    id_value,
    profile_id: c.profileId,
    version: c.version,
    at,
  });
  const rows: IdentityLinkRow[] = [row('profile', c.profileId)];
  for (const id of c.identifiers) {
    const { kind, value } = splitIdentifier(id);
    // unknown kinds are skipped, not dead-lettered: the processor may learn new ones first
    if (LINKED_KINDS.has(kind) && value !== '') rows.push(row(kind, value));
  }
  for (const pid of c.mergedProfileIds) if (pid && pid !== c.profileId) rows.push(row('profile', pid));
  return rows;
}
