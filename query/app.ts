// The query API: profiles (Redis), history (ClickHouse), segment and campaign definitions.
// Every route needs `Authorization: Bearer <key>`: the deployment's admin key, or a person's
// token, whose role in the workspace (query/roles.ts) decides what they may do.

import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { remoteAddress } from '../runtime/auth-failures.ts';
import { ChannelCredentialStore } from '../runtime/channel-credentials.ts';
import { httpMetrics } from '../runtime/metrics.ts';
import { keyring } from '../runtime/secrets-key.ts';
import { WorkspaceStore } from '../runtime/workspaces.ts';
import { withActor } from './audit.ts';
import { type Principal, type QueryDeps, type QueryEnv, WORKSPACE_HEADER } from './context.ts';
import { queryOpenApi } from './openapi.ts';
import { QueryError } from './query-error.ts';
import { permissionFor, roleAllows } from './roles.ts';
import { analyticsRoutes } from './routes/analytics.ts';
import { auditLogRoutes } from './routes/audit-log.ts';
import { biCredentialRoutes } from './routes/bi-credentials.ts';
import { campaignRoutes } from './routes/campaigns.ts';
import { channelCredentialRoutes } from './routes/channel-credentials.ts';
import { consoleRoutes } from './routes/console.ts';
import { consentRoutes, suppressionRoutes } from './routes/contact.ts';
import { destinationRoutes } from './routes/destinations.ts';
import { erasureRoutes } from './routes/erasures.ts';
import { exportRoutes } from './routes/exports.ts';
import { formRoutes } from './routes/forms.ts';
import { importRoutes } from './routes/imports.ts';
import { journeyRoutes } from './routes/journeys.ts';
import { ledgerRoutes } from './routes/ledger.ts';
import { liveRoutes } from './routes/live.ts';
import { formStatsRoutes, pageRoutes } from './routes/pages.ts';
import { computedTraitRoutes, scoreRoutes } from './routes/profile-definitions.ts';
import { profileTimelineRoutes } from './routes/profile-timeline.ts';
import { profileRoutes } from './routes/profiles.ts';
import { segmentRoutes } from './routes/segments.ts';
import { templatePreviewRoutes } from './routes/template-preview.ts';
import { trackingPlanRoutes } from './routes/tracking-plan.ts';
import { unsubscribeRoutes } from './routes/unsubscribe.ts';
import { warehouseExportRoutes } from './routes/warehouse-exports.ts';
import { workspaceSettingsRoutes } from './routes/workspace-settings.ts';
import { workspaceRoutes } from './routes/workspaces.ts';
import { writeKeyRoutes } from './routes/write-keys.ts';

// routes owned elsewhere (workspaces, destinations) and tests still import these from here
export {
  type AdminKeyResolver,
  type Principal,
  type QueryDeps,
  type QueryEnv,
  readJson,
  WORKSPACE_HEADER,
} from './context.ts';

const WORKSPACE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const NO_WORKSPACE = new Set(['GET /v1/me', 'GET /v1/workspaces']);

export function createQueryApp(deps: QueryDeps): Hono<QueryEnv> {
  const now = deps.now ?? (() => new Date());
  const app = new Hono<QueryEnv>();
  app.use('*', httpMetrics('query'));

  app.onError((err, c) => {
    if (err instanceof QueryError) {
      if (err.retryAfterSeconds) c.header('Retry-After', String(err.retryAfterSeconds));
      return c.json({ error: err.message }, err.status);
    }
    deps.log.error({ err: err.message, path: c.req.path }, 'query_unhandled_error');
    return c.json({ error: 'internal error' }, 500);
  });
  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404));

  const openapi = queryOpenApi();
  app.get('/openapi.json', (c) => c.json(openapi));
  // the marketer console: static files, no key (the page asks for one and sends it to /v1)
  app.route('/console', consoleRoutes({ ingestUrl: deps.ingestPublicUrl }));
  app.get('/console/', (c) => c.redirect('/console', 301));

  const limit = bodyLimit({
    maxSize: 1024 * 1024,
    onError: (c) => c.json({ error: 'body over 1 MiB' }, 413),
  });
  // an import's upload has its own, larger limit (query/routes/imports.ts streams it to disk)
  app.use('/v1/*', (c, next) =>
    c.req.method === 'POST' && c.req.path === '/v1/imports' ? next() : limit(c, next),
  );
  // unsubscribe links carry a signed token instead of an admin key
  app.route('/v1/unsubscribe', unsubscribeRoutes({ ...deps, secret: deps.unsubscribeSecret, now }));
  const workspaces = deps.workspaces ?? new WorkspaceStore(deps.redis, deps.redisPrefix, '');
  app.use('/v1/*', async (c, next) => {
    if (c.req.path === '/v1/unsubscribe') return next();
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m?.[1]) throw new QueryError(401, 'missing admin key: send Authorization: Bearer <admin key>');
    // An address that failed too often is refused before its key is looked at, so guesses
    // get no answer; a missing key is no guess and is not counted.
    const limiter = deps.adminAuthFailures;
    const client = limiter ? remoteAddress(c) : '';
    const wait = limiter?.retryAfterSeconds(client) ?? 0;
    if (wait > 0) throw new QueryError(429, 'too many failed admin authentications from this address', wait);
    const key = m[1];
    const asked = c.req.header(WORKSPACE_HEADER);
    if (asked !== undefined && !WORKSPACE_ID.test(asked))
      throw new QueryError(400, `${WORKSPACE_HEADER}: not a workspace id`);
    const perm = permissionFor(c.req.method, c.req.path);
    const root = deps.resolveAdminKey(key);
    if (root) {
      // the deployment's admin key: owner of everything, in its own workspace unless it names
      // another (archived ones too: their data stays until erased)
      let ws = root;
      if (asked && asked !== root) {
        if (!(await workspaces.getWorkspace(asked))) throw new QueryError(404, `no workspace ${asked}`);
        ws = asked;
      }
      c.set('workspaceId', ws);
      c.set('apiKey', key);
      c.set('principal', { kind: 'root' });
      return next();
    }
    const who = await workspaces.resolveToken(key);
    if (!who) {
      if (limiter?.fail(client)) deps.log.warn({ client }, 'admin_auth_failures_limited');
      throw new QueryError(401, 'unknown admin key');
    }
    let ws = asked;
    if (ws === undefined && who.roles.size === 1) ws = [...who.roles.keys()][0]!;
    const actor = `person:${who.person.id} ${who.person.email}`;
    const principal: Principal = { kind: 'person', person: who.person, roles: who.roles };
    if (ws === undefined) {
      // who am I and where may I go need no workspace; everything else does
      if (!NO_WORKSPACE.has(`${c.req.method} ${c.req.path}`)) {
        // removed from every workspace, or all of them archived
        if (who.roles.size === 0) throw new QueryError(403, 'no access to any workspace');
        throw new QueryError(
          400,
          `you belong to ${who.roles.size} workspaces: name one in ${WORKSPACE_HEADER}`,
        );
      }
      c.set('workspaceId', '');
      c.set('apiKey', key);
      c.set('principal', principal);
      return withActor(actor, next);
    }
    const role = who.roles.get(ws);
    // unknown, archived and other people's workspaces look the same
    if (!role) throw new QueryError(403, `no access to workspace ${ws}`);
    if (!perm || perm === 'root' || !roleAllows(role, perm))
      throw new QueryError(403, `the ${role} role may not ${c.req.method} ${c.req.path}`);
    c.set('workspaceId', ws);
    c.set('apiKey', key);
    c.set('principal', { ...principal, role });
    return withActor(actor, next);
  });

  app.route('/v1', workspaceRoutes({ ...deps, workspaces, now }));
  app.route('/v1/profiles', consentRoutes({ ...deps, now }));
  app.route('/v1/profiles', profileRoutes({ ...deps, now }));
  app.route('/v1/profiles', profileTimelineRoutes(deps));
  app.route('/v1/erasures', erasureRoutes(deps));
  app.route('/v1/suppressions', suppressionRoutes({ ...deps, now }));
  app.route('/v1/segments', segmentRoutes({ ...deps, now }));
  app.route('/v1/campaigns', campaignRoutes({ ...deps, now }));
  app.route(
    '/v1/destinations',
    destinationRoutes({
      ...deps,
      now,
      addressPolicy: deps.destinationAddressPolicy ?? { allowLoopback: false, allowPrivate: false },
    }),
  );
  app.route(
    '/v1/warehouse-exports',
    warehouseExportRoutes({
      ...deps,
      now,
      addressPolicy: deps.destinationAddressPolicy ?? { allowLoopback: false, allowPrivate: false },
    }),
  );
  app.route('/v1/journeys', journeyRoutes({ ...deps, now }));
  app.route('/v1/forms', formRoutes({ ...deps, now }));
  app.route('/v1/computed-traits', computedTraitRoutes({ ...deps, now }));
  app.route('/v1/scores', scoreRoutes({ ...deps, now }));
  app.route('/v1/write-keys', writeKeyRoutes({ ...deps, now }));
  app.route('/v1/bi-credentials', biCredentialRoutes({ ...deps, now }));
  app.route('/v1/settings', workspaceSettingsRoutes({ ...deps, now }));
  const credentials = new ChannelCredentialStore(deps.redis, deps.redisPrefix, deps.secrets ?? keyring());
  app.route('/v1/channels', channelCredentialRoutes({ ...deps, credentials, now }));
  app.route('/v1/templates', templatePreviewRoutes({ ...deps, now }));
  app.route('/v1/live', liveRoutes({ ...deps, pollMs: deps.livePollMs, now }));
  const analytics = deps.analytics ?? { maxRangeDays: 400, timeoutS: 30, maxRows: 10_000 };
  app.route('/v1/analytics', analyticsRoutes({ ...deps, analytics }));
  app.route('/v1/ledger', ledgerRoutes({ ...deps, analytics, now }));
  app.route('/v1/audit', auditLogRoutes({ ...deps, analytics, now }));
  app.route('/v1/tracking-plan', trackingPlanRoutes({ ...deps, analytics, now }));
  if (deps.exports) app.route('/v1/exports', exportRoutes({ ...deps, ...deps.exports, now }));
  if (deps.imports && deps.producer)
    app.route(
      '/v1/imports',
      importRoutes({
        ...deps,
        ...deps.imports,
        producer: deps.producer,
        topicPrefix: deps.topicPrefix ?? '',
        now,
      }),
    );
  app.route('/v1/pages', pageRoutes({ ...deps, analytics, now }));
  app.route('/v1/forms', formStatsRoutes({ ...deps, analytics, now }));
  return app;
}
