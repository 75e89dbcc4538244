// What the browser SDK (analytics.js / @segment/analytics-next) loads at start-up:
// GET /v1/projects/{writeKey}/settings, pointing its apiHost at this ingest host.
import { Hono } from 'hono';
import type { WriteKeyResolver } from './app.ts';

export interface BrowserSdkOptions {
  resolveWriteKey: WriteKeyResolver;
}

export function browserSdkRoutes(opts: BrowserSdkOptions): Hono {
  const app = new Hono();
  app.get('/v1/projects/:writeKey/settings', (c) => {
    const writeKey = c.req.param('writeKey');
    if (!opts.resolveWriteKey(writeKey)) return c.json({ success: false, error: 'unknown write key' }, 404);
    const url = new URL(c.req.url);
    const proto = (c.req.header('x-forwarded-proto') ?? url.protocol.replace(':', '')).split(',')[0]!.trim();
    const host = c.req.header('x-forwarded-host') ?? c.req.header('host') ?? url.host;
    return c.json({
      integrations: {
        'Segment.io': {
          apiKey: writeKey,
          apiHost: `${host}/v1`,
          protocol: proto,
          unbundledIntegrations: [],
          addBundledMetadata: true,
          maybeBundledConfigIds: {},
        },
      },
      plan: {
        track: { __default: { enabled: true, integrations: {} } },
        identify: { __default: { enabled: true } },
        group: { __default: { enabled: true } },
      },
      edgeFunction: {},
      analyticsNextEnabled: true,
      middlewareSettings: {},
      enabledMiddleware: {},
      metrics: { sampleRate: 0 },
      legacyVideoPluginsEnabled: false,
      remotePlugins: [],
    });
  });
  return app;
}
