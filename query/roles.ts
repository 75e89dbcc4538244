// Who may do what: every /v1 route is in ROUTE_PERMISSIONS (method + path pattern →
// permission); the auth middleware looks the request up here and refuses what the caller's
// role lacks. A route missing from the table is refused to everyone but the deployment's
// admin key (default deny), and a test checks every registered route is in the table.
import type { Role } from '../runtime/workspaces.ts';

export type Permission =
  /** reading anything of the workspace (every role) */
  | 'read'
  /** running analytics queries, previews and exports: read-only work that POSTs (every role) */
  | 'analyze'
  /** segments, campaigns, journeys, forms, pages, templates, computed traits, scores, consent, suppressions */
  | 'market'
  /** write keys, destinations, channel credentials, tracking plans, BI credentials, settings */
  | 'develop'
  /** erasing profiles */
  | 'erase'
  /** people of the workspace and their tokens, archiving it */
  | 'manage'
  /** creating and un-archiving workspaces: the deployment's admin key only */
  | 'root';

export const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  owner: ['read', 'analyze', 'market', 'develop', 'erase', 'manage'],
  marketer: ['read', 'analyze', 'market'],
  analyst: ['read', 'analyze'],
  developer: ['read', 'analyze', 'develop'],
};

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
/** [method, path pattern (`:x` one segment), permission] */
export const ROUTE_PERMISSIONS: ReadonlyArray<readonly [Method, string, Permission]> = [
  // who am I, which workspaces
  ['GET', '/v1/me', 'read'],
  ['GET', '/v1/workspaces', 'read'],
  ['POST', '/v1/workspaces', 'root'],
  ['POST', '/v1/workspaces/:id/archive', 'manage'],
  ['POST', '/v1/workspaces/:id/unarchive', 'root'],
  ['GET', '/v1/people', 'manage'],
  ['POST', '/v1/people', 'manage'],
  ['DELETE', '/v1/people/:id', 'manage'],
  ['GET', '/v1/people/:id/tokens', 'manage'],
  ['POST', '/v1/people/:id/tokens', 'manage'],
  ['DELETE', '/v1/people/:id/tokens/:token', 'manage'],
  // profiles
  ['GET', '/v1/profiles', 'read'],
  ['GET', '/v1/profiles/:id', 'read'],
  ['GET', '/v1/profiles/:id/consent', 'read'],
  ['GET', '/v1/profiles/:id/consent/history', 'read'],
  ['PUT', '/v1/profiles/:id/consent', 'market'],
  ['GET', '/v1/profiles/:id/export', 'erase'],
  ['GET', '/v1/profiles/:id/events', 'read'],
  ['GET', '/v1/profiles/:id/timeline', 'read'],
  ['DELETE', '/v1/profiles', 'erase'],
  ['DELETE', '/v1/profiles/:id', 'erase'],
  ['GET', '/v1/erasures', 'erase'],
  ['GET', '/v1/erasures/:id', 'erase'],
  ['GET', '/v1/suppressions', 'read'],
  ['POST', '/v1/suppressions', 'market'],
  ['DELETE', '/v1/suppressions', 'market'],
  // marketing definitions
  ['POST', '/v1/segments/preview', 'analyze'],
  ...crud('/v1/segments', 'market'),
  ['GET', '/v1/segments/:id/members', 'read'],
  ...crud('/v1/campaigns', 'market'),
  ['POST', '/v1/campaigns/:id/pause', 'market'],
  ['POST', '/v1/campaigns/:id/resume', 'market'],
  ['GET', '/v1/campaigns/:id/stats', 'read'],
  ...crud('/v1/journeys', 'market').filter(([m]) => m !== 'DELETE'), // archived, never deleted
  ...(['activate', 'pause', 'resume', 'archive', 'migrate'] as const).map(
    (a) => ['POST', `/v1/journeys/:id/${a}`, 'market'] as const,
  ),
  ['GET', '/v1/journeys/:id/migration', 'read'],
  ['GET', '/v1/journeys/:id/stats', 'read'],
  ...crud('/v1/forms', 'market'),
  ['GET', '/v1/forms/:id/versions/:version', 'read'],
  ['POST', '/v1/forms/:id/pause', 'market'],
  ['POST', '/v1/forms/:id/activate', 'market'],
  ['GET', '/v1/forms/:id/stats', 'read'],
  ...crud('/v1/pages', 'market'),
  ['GET', '/v1/pages/:id/versions/:version', 'read'],
  ...(['publish', 'unpublish', 'archive'] as const).map(
    (a) => ['POST', `/v1/pages/:id/${a}`, 'market'] as const,
  ),
  ['GET', '/v1/pages/:id/stats', 'read'],
  ...crud('/v1/computed-traits', 'market'),
  ...crud('/v1/scores', 'market'),
  ['POST', '/v1/templates/preview', 'market'],
  // developer things
  ...crud('/v1/destinations', 'develop'),
  ['POST', '/v1/destinations/:id/pause', 'develop'],
  ['POST', '/v1/destinations/:id/resume', 'develop'],
  ['POST', '/v1/destinations/:id/dry-run', 'develop'],
  ['GET', '/v1/destinations/:id/stats', 'read'],
  ['POST', '/v1/write-keys', 'develop'],
  ['GET', '/v1/write-keys', 'develop'],
  ['DELETE', '/v1/write-keys/:id', 'develop'],
  ['POST', '/v1/bi-credentials', 'develop'],
  ['GET', '/v1/bi-credentials', 'develop'],
  ['DELETE', '/v1/bi-credentials/:id', 'develop'],
  ['GET', '/v1/settings', 'read'],
  ['PUT', '/v1/settings', 'develop'],
  ['GET', '/v1/channels/:id/credentials', 'develop'],
  ['PUT', '/v1/channels/:id/credentials', 'develop'],
  ['DELETE', '/v1/channels/:id/credentials', 'develop'],
  ['GET', '/v1/tracking-plan', 'read'],
  ['PUT', '/v1/tracking-plan', 'develop'],
  ['DELETE', '/v1/tracking-plan', 'develop'],
  ['GET', '/v1/tracking-plan/versions/:version', 'read'],
  ['GET', '/v1/tracking-plan/violations', 'read'],
  ['GET', '/v1/tracking-plan/quarantine', 'develop'],
  ['POST', '/v1/tracking-plan/replay', 'develop'],
  // reading and analysis
  ['GET', '/v1/live/pipeline', 'read'],
  ['GET', '/v1/live/segments', 'read'],
  ...(['funnel', 'retention', 'attribution', 'trends'] as const).map(
    (a) => ['POST', `/v1/analytics/${a}`, 'analyze'] as const,
  ),
  ['GET', '/v1/ledger', 'read'],
  ['GET', '/v1/ledger/journey-steps', 'read'],
  ['GET', '/v1/audit', 'read'],
  // warehouse exports: a target with credentials that gets every event, as destinations do
  ['GET', '/v1/warehouse-exports', 'develop'],
  ['POST', '/v1/warehouse-exports', 'develop'],
  ['GET', '/v1/warehouse-exports/:id', 'develop'],
  ['PUT', '/v1/warehouse-exports/:id', 'develop'],
  ['DELETE', '/v1/warehouse-exports/:id', 'develop'],
  ['GET', '/v1/warehouse-exports/:id/stats', 'read'],
  // bulk imports of traits and consent
  ['POST', '/v1/imports', 'market'],
  ['GET', '/v1/imports', 'read'],
  ['GET', '/v1/imports/:id', 'read'],
  ['GET', '/v1/imports/:id/errors', 'read'],
  // exports copy the workspace's data out: owners only, as profile exports
  ['POST', '/v1/exports', 'erase'],
  ['GET', '/v1/exports', 'erase'],
  ['GET', '/v1/exports/:id', 'erase'],
  ['GET', '/v1/exports/:id/file', 'erase'],
  ['DELETE', '/v1/exports/:id', 'erase'],
];

function crud(base: string, p: Permission): Array<readonly [Method, string, Permission]> {
  return [
    ['POST', base, p],
    ['GET', base, 'read'],
    ['GET', `${base}/:id`, 'read'],
    ['PUT', `${base}/:id`, p],
    ['DELETE', `${base}/:id`, p],
  ];
}

const compiled = ROUTE_PERMISSIONS.map(([method, pattern, perm]) => {
  const parts = pattern.split('/').filter(Boolean);
  return { method, parts, perm };
});

/** The permission a request needs; undefined for a route not in the table (refused). */
export function permissionFor(method: string, path: string): Permission | undefined {
  const m = method === 'HEAD' ? 'GET' : method;
  const segs = path.split('/').filter(Boolean);
  // exact segments win over `:x` (e.g. /v1/segments/preview over /v1/segments/:id)
  let best: { perm: Permission; score: number } | undefined;
  for (const r of compiled) {
    if (r.method !== m || r.parts.length !== segs.length) continue;
    let score = 0;
    let ok = true;
    for (let i = 0; i < segs.length; i++) {
      const p = r.parts[i]!;
      if (p.startsWith(':')) continue;
      if (p !== segs[i]) {
        ok = false;
        break;
      }
      score++;
    }
    if (ok && (!best || score > best.score)) best = { perm: r.perm, score };
  }
  return best?.perm;
}

export function roleAllows(role: Role, perm: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(perm);
}
