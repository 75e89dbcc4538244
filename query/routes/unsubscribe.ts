// Unsubscribe links from messages: no admin key, a signed token instead. GET shows a
// small confirmation page (link scanners fetch GETs, so GET changes nothing); POST
// unsubscribes: the page's button, and RFC 8058 one-click from mail clients.
import { Hono } from 'hono';
import type { Redis } from '../../runtime/redis.ts';
import { verifyUnsubscribeToken } from '../../schemas/unsubscribe-token.ts';
import { writeConsent } from './contact.ts';

const page = (title: string, body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${title}</title></head><body style="font-family:sans-serif;max-width:32em;margin:3em auto">${body}</body></html>`;

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!,
  );

export function unsubscribeRoutes(deps: {
  redis: Redis;
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
    await writeConsent(
      deps.redis,
      deps.redisPrefix,
      w,
      p,
      [{ channel, purpose: u, subscribed: false }],
      deps.now().getTime(),
      `unsubscribe:${v.claims.k ?? ''}`,
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
