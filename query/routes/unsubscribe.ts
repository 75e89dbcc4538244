// Unsubscribe links from messages: no admin key, a signed token instead. GET shows a
// small confirmation page (link scanners fetch GETs, so GET changes nothing); POST
// unsubscribes: the page's button, and RFC 8058 one-click from mail clients.
import { getConnInfo } from '@hono/node-server/conninfo';
import { type Context, Hono } from 'hono';
import { survivorOf } from '../../profiles/read.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { Redis } from '../../runtime/redis.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { verifyUnsubscribeToken } from '../../schemas/unsubscribe-token.ts';
import { recordAudit } from '../audit.ts';
import { readConsent, writeConsent } from './contact.ts';

/** The connecting address (not a forwarded header, which the client could write). */
function peerAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? '';
  } catch {
    return ''; // not served over a socket (app.request in tests)
  }
}

const page = (title: string, body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${title}</title></head><body style="font-family:sans-serif;max-width:32em;margin:3em auto">${body}</body></html>`;

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!,
  );

export function unsubscribeRoutes(deps: {
  redis: Redis;
  clickhouse: ClickHouseClient;
  redisPrefix: string;
  secret: string;
  now: () => Date;
}) {
  const app = new Hono();
  const verify = (token: string | undefined) =>
    token
      ? verifyUnsubscribeToken(deps.secret, token, deps.now().getTime())
      : ({ ok: false, reason: 'missing token' } as const);

  app.get('/', (c) => {
    const token = c.req.query('token');
    const v = verify(token);
    if (!v.ok)
      return c.html(page('Invalid link', `<p>This unsubscribe link is not valid (${v.reason}).</p>`), 400);
    return c.html(
      page(
        'Unsubscribe',
        `<p>Stop receiving ${escapeHtml(v.claims.u)} messages by ${escapeHtml(v.claims.c)}?</p>
<form method="post" action="?token=${escapeHtml(token!)}"><button type="submit">Unsubscribe</button></form>`,
      ),
    );
  });

  app.post('/', async (c) => {
    const v = verify(c.req.query('token'));
    if (!v.ok)
      return c.html(page('Invalid link', `<p>This unsubscribe link is not valid (${v.reason}).</p>`), 400);
    const { w, p, c: channel, u } = v.claims;
    const at = deps.now().getTime();
    const decision = [{ channel, purpose: u, subscribed: false }];
    // the token names the profile as it was when the message was sent; the write follows
    // merges since then, so the person who clicked is the one unsubscribed
    const before = await readConsent(
      deps.redis,
      deps.redisPrefix,
      w,
      await survivorOf(deps.redis, workspaceKeys(deps.redisPrefix, w), p),
    );
    const actor = 'unsubscribe_link';
    const target = await writeConsent(deps, w, p, decision, at, {
      source: 'unsubscribe_link',
      actor,
      campaignId: v.claims.k ?? '',
      ip: peerAddress(c),
      userAgent: (c.req.header('user-agent') ?? '').slice(0, 512),
    });
    // an erased person: nothing is sent to them any more, and nothing about them is written
    if (target !== null)
      await recordAudit(
        deps.clickhouse,
        {
          workspaceId: w,
          actor,
          action: 'update',
          entityType: 'consent',
          entityId: target,
          before,
          after: await readConsent(deps.redis, deps.redisPrefix, w, target),
        },
        new Date(at),
      );
    return c.html(
      page(
        'Unsubscribed',
        `<p>You are unsubscribed from ${escapeHtml(u)} messages by ${escapeHtml(channel)}.</p>`,
      ),
    );
  });
  return app;
}
