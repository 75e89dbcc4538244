// Double opt-in confirmation links (schemas/double-opt-in.ts) on the public ingest host, no
// key: the signed token is the credential. GET shows what is being confirmed and a button;
// it changes nothing, since mail scanners and link previews fetch GET links. POST (the
// button) confirms: in one Redis script the record is checked (exists, matches the token,
// unconfirmed, unexpired) and the consent written `granted` with source `link`, so a link
// works once; then the confirmation's consent_log row is queued for the query service
// (query/double-opt-in.ts), which holds ClickHouse. Pages: 200 confirmed (or already
// confirmed: a replay is idempotent), 400 a malformed or tampered token, 410 an expired
// one or a record that is gone (erased, or past its retention), 503 Redis unavailable.
import { getConnInfo } from '@hono/node-server/conninfo';
import { type Context, Hono } from 'hono';
import type { Logger } from '../runtime/log.ts';
import {
  type ConfirmClaims,
  confirmOptIn,
  type OptInJob,
  type OptInRecord,
  optInDueKey,
  optInJobMember,
  optInKey,
  verifyConfirmToken,
} from '../schemas/double-opt-in.ts';

/** The part of an ioredis client the confirmation uses. */
export interface ConfirmRedis {
  eval(script: string, n: number, ...args: Array<string | number>): Promise<unknown>;
  hget(key: string, field: string): Promise<string | null>;
  zadd(key: string, score: number, member: string): Promise<unknown>;
}

export interface ConsentConfirmDeps {
  redis: ConfirmRedis;
  redisPrefix: string;
  /** confirmSecret(CDP_UNSUBSCRIBE_SECRET) */
  secret: string;
  log: Logger;
  now: () => Date;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

function page(c: Context, status: number, title: string, body: string) {
  c.header('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
  c.header('X-Content-Type-Options', 'nosniff');
  // the token is in the URL: no Referer carries it anywhere, no cache or index keeps it
  c.header('Referrer-Policy', 'no-referrer');
  c.header('Cache-Control', 'no-store');
  c.header('X-Robots-Tag', 'noindex');
  return c.html(
    `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${esc(title)}</title></head><body style="font-family:sans-serif;max-width:32em;margin:3em auto"><h1 style="font-size:1.4em">${esc(title)}</h1>${body}</body></html>`,
    status as 200,
  );
}

const WHY: Record<string, string> = {
  missing: 'the link has no token',
  malformed: 'the link is damaged',
  signature: 'the link is not one we sent',
};

function peer(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? '';
  } catch {
    return '';
  }
}

export function consentConfirmRoutes(deps: ConsentConfirmDeps): Hono {
  const app = new Hono();

  const check = (c: Context): { claims: ConfirmClaims; token: string } | Response => {
    const token = c.req.query('t');
    const v = verifyConfirmToken(deps.secret, token, deps.now().getTime());
    if (v.ok) return { claims: v.claims, token: token! };
    if (v.reason === 'expired')
      return page(
        c,
        410,
        'This link has expired',
        '<p>The confirmation link has expired. Subscribe again to get a new one.</p>',
      );
    return page(c, 400, 'Invalid link', `<p>This confirmation link is not valid (${WHY[v.reason]}).</p>`);
  };
  const gone = (c: Context) =>
    page(c, 410, 'Nothing to confirm', '<p>This confirmation is no longer available.</p>');
  const what = (r: OptInRecord) =>
    `<p>You are confirming that you want to receive <b>${esc(r.purpose)}</b> messages by <b>${esc(r.channel)}</b>.</p><blockquote style="border-left:3px solid #ccc;margin:1em 0;padding-left:1em">${esc(r.text)}</blockquote>`;
  const queueLog = (cl: ConfirmClaims) => {
    const job: OptInJob = { k: 'log', w: cl.w, p: cl.p, r: cl.r };
    return deps.redis.zadd(optInDueKey(deps.redisPrefix), deps.now().getTime(), optInJobMember(job));
  };

  app.get('/v1/consent/confirm', async (c) => {
    const v = check(c);
    if (v instanceof Response) return v;
    const { claims, token } = v;
    let raw: string | null;
    try {
      raw = await deps.redis.hget(optInKey(deps.redisPrefix, claims.w, claims.p), claims.r);
    } catch (err) {
      deps.log.warn({ err: (err as Error).message }, 'optin_confirm_unavailable');
      return page(
        c,
        503,
        'Please try again',
        '<p>We could not load this confirmation. Try again shortly.</p>',
      );
    }
    if (!raw) return gone(c);
    const rec = JSON.parse(raw) as OptInRecord;
    if (rec.channel !== claims.c || rec.purpose !== claims.u) return gone(c);
    if (rec.confirmedAt)
      return page(c, 200, 'Already confirmed', `${what(rec)}<p>This is already confirmed.</p>`);
    return page(
      c,
      200,
      'Confirm your subscription',
      `${what(rec)}<form method="post" action="/v1/consent/confirm?t=${esc(encodeURIComponent(token))}"><button type="submit" style="font-size:1.1em;padding:.5em 1.2em">Confirm</button></form>`,
    );
  });

  app.post('/v1/consent/confirm', async (c) => {
    const v = check(c);
    if (v instanceof Response) return v;
    const { claims } = v;
    const ua = (c.req.header('user-agent') ?? '').slice(0, 512);
    try {
      const r = await confirmOptIn(deps.redis, deps.redisPrefix, claims, deps.now().getTime(), peer(c), ua);
      if (r.outcome === 'expired')
        return page(
          c,
          410,
          'This link has expired',
          '<p>The confirmation link has expired. Subscribe again to get a new one.</p>',
        );
      if (r.outcome === 'gone' || r.outcome === 'erased') return gone(c);
      // the log row is queued again until it is written (the member is the same job)
      if (r.outcome === 'confirmed' || !r.logged) await queueLog(claims);
      if (r.outcome === 'already')
        return page(c, 200, 'Already confirmed', `${what(r.record)}<p>This is already confirmed.</p>`);
      return page(c, 200, 'Confirmed', `${what(r.record)}<p>Thank you: your subscription is confirmed.</p>`);
    } catch (err) {
      deps.log.warn({ err: (err as Error).message }, 'optin_confirm_unavailable');
      return page(
        c,
        503,
        'Please try again',
        '<p>We could not confirm just now. Try the button again shortly.</p>',
      );
    }
  });
  return app;
}
