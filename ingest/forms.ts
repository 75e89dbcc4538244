// Forms on the ingest host: the form as a plain HTML page (or JSON for a script), and its
// submission, which works with JavaScript disabled (an HTML form's urlencoded POST, answered
// with a 303 to the success redirect or a small HTML page) and from fetch (JSON in and out).
// A valid submission becomes an identify (the mapped traits; an email field mapped to
// `email` identifies the person) and a `Form Submitted` track event, produced like any
// tracked call, as a client (browser) key's events: on the normal pipeline, segments and
// campaigns react to them. Ticked consent boxes are queued for the query service, which
// records them once the submission's anonymousId has a profile (query/form-consent.ts).
//
// Abuse: per-address and per-form rate limits, a 32 KB body, a honeypot field (filled: the
// answer is a success and nothing is stored), a signed time-to-fill token (ingest/form-token.ts),
// and every value checked against its field (ingest/form-submission.ts): a bad one is a 4xx
// naming the field, and nothing of the submission is stored.

import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { getConnInfo } from '@hono/node-server/conninfo';
import { type Context, Hono } from 'hono';
import { withTimeout } from '../runtime/http.ts';
import type { Producer } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import type { FormDefinition, PendingFormConsent } from '../schemas/form.ts';
import { eventKey } from '../schemas/topics.ts';
import {
  type CheckedSubmission,
  checkSubmission,
  cookieAnonymousId,
  FORM_META,
  MAX_POSTED_FIELDS,
  type Posted,
  utmOf,
} from './form-submission.ts';
import { checkFormToken, signFormToken } from './form-token.ts';
import { IngestError } from './ingest-error.ts';
import { normalizeEvent, type TimeBounds, type TraitLimits } from './normalize-event.ts';
import type { RateLimiter } from './rate-limit.ts';
import { readRawBody } from './read-body.ts';

export const MAX_FORM_BODY_BYTES = 32 * 1024;

export interface FormDeps {
  /** The loaded definitions; `refresh` reloads when the definition store moved (one GET if not). */
  forms: { get(ws: string, id: string): FormDefinition | undefined; refresh(): Promise<void> };
  producer: Producer;
  eventsTopic: string;
  /** Queues ticked consent for the query service (Redis globalKeys.formConsentDue). */
  queueConsent(p: PendingFormConsent): Promise<void>;
  log: Logger;
  now: () => Date;
  secret: string;
  minFillMs: number;
  maxAgeMs: number;
  /** Submissions per client address, and per form; none means unlimited. */
  ipLimiter?: RateLimiter;
  formLimiter?: RateLimiter;
  produceTimeoutMs: number;
  timeBounds?: TimeBounds;
  traitLimits?: TraitLimits;
}

const WORKSPACE = /^[A-Za-z0-9_-]{1,64}$/;
const FORM_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** An error answered as JSON to a script, as an HTML page to a browser's own form post. */
class FormError extends Error {
  constructor(
    public readonly status: 400 | 403 | 404 | 409 | 413 | 415 | 429 | 503,
    message: string,
    public readonly errors: Record<string, string> = {},
    public readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export function formRoutes(deps: FormDeps): Hono {
  const app = new Hono();

  const lookup = async (ws: string, id: string): Promise<FormDefinition> => {
    if (!WORKSPACE.test(ws) || !FORM_ID.test(id)) throw new FormError(404, 'no such form');
    let form = deps.forms.get(ws, id);
    if (!form) {
      // created a moment ago: one revision check before saying no
      await deps.forms.refresh();
      form = deps.forms.get(ws, id);
    }
    if (!form) throw new FormError(404, 'no such form');
    return form;
  };

  app.get('/v1/forms/:ws/:id', async (c) => {
    const json = wantsJson(c);
    try {
      const form = await lookup(c.req.param('ws'), c.req.param('id'));
      if (form.status !== 'active') throw new FormError(409, 'this form is paused');
      const token = signFormToken(deps.secret, form.workspaceId, form.id, deps.now().getTime());
      const action = `/v1/forms/${form.workspaceId}/${form.id}/submit`;
      if (json)
        return c.json({
          id: form.id,
          version: form.version,
          name: form.name,
          fields: form.fields.map(({ trait: _t, ...f }) => f),
          consents: (form.consents ?? []).map(({ name, text, required }) => ({ name, text, required })),
          action,
          token,
          // the token's bounds: the embed snippet waits out the first and renews past the second
          minFillMs: deps.minFillMs,
          maxAgeMs: deps.maxAgeMs,
          meta: FORM_META,
        });
      const referrer = c.req.header('referer');
      return html(
        c,
        200,
        renderForm(form, {
          action,
          token,
          page: safeUrl(c.req.url),
          referrer: referrer ? safeUrl(referrer) : undefined,
        }),
        // browsers hold the success redirect to form-action too
        'redirect' in form.success ? new URL(form.success.redirect).origin : undefined,
      );
    } catch (err) {
      return answerError(c, err, json, deps.log);
    }
  });

  app.post('/v1/forms/:ws/:id/submit', async (c) => {
    const json = wantsJson(c);
    try {
      const ip = clientIp(c);
      const byIp = deps.ipLimiter?.take(ip ?? '-', 1);
      if (byIp && !byIp.ok)
        throw new FormError(
          429,
          'too many submissions from your address: try again later',
          {},
          byIp.retryAfterSeconds,
        );
      const form = await lookup(c.req.param('ws'), c.req.param('id'));
      if (form.status !== 'active') throw new FormError(409, 'this form is paused: it takes no submissions');
      const byForm = deps.formLimiter?.take(`${form.workspaceId}/${form.id}`, 1);
      if (byForm && !byForm.ok)
        throw new FormError(
          429,
          'this form takes too many submissions: try again later',
          {},
          byForm.retryAfterSeconds,
        );

      const posted = await readPosted(c);
      const checked = checkSubmission(form, posted);
      // a bot that filled the hidden field is told it succeeded; nothing is kept
      if (checked.honeypot) {
        deps.log.info({ workspaceId: form.workspaceId, formId: form.id }, 'form_honeypot');
        return success(c, form, json);
      }
      const nowMs = deps.now().getTime();
      const token = checkFormToken(checked.token, {
        secret: deps.secret,
        ws: form.workspaceId,
        formId: form.id,
        nowMs,
        minFillMs: deps.minFillMs,
        maxAgeMs: deps.maxAgeMs,
      });
      if (!token.ok)
        throw new FormError(400, `${FORM_META.token}: ${token.error}`, { [FORM_META.token]: token.error });
      const fieldErrors = Object.entries(checked.errors);
      if (fieldErrors.length > 0)
        throw new FormError(400, fieldErrors.map(([k, v]) => `${k}: ${v}`).join('; '), checked.errors);
      await store(c, form, checked, ip, nowMs);
      return success(c, form, json);
    } catch (err) {
      return answerError(c, err, json, deps.log);
    }
  });

  /** The identify and the track event on Kafka, then the ticked consent queued. */
  const store = async (
    c: Context,
    form: FormDefinition,
    s: CheckedSubmission,
    ip: string | undefined,
    nowMs: number,
  ) => {
    const submission = randomUUID();
    const anonymousId = s.anonymousId ?? cookieAnonymousId(c.req.header('cookie')) ?? randomUUID();
    const page = s.page ?? (c.req.header('referer') ? safeUrl(c.req.header('referer')!) : undefined);
    const utm = utmOf(page);
    const userAgent = c.req.header('user-agent')?.slice(0, 512);
    const context: Record<string, unknown> = {
      page: { url: page ?? '', referrer: s.referrer ?? '' },
      ...(Object.keys(utm).length > 0 ? { campaign: { ...utm, name: utm.campaign } } : {}),
      ...(userAgent ? { userAgent } : {}),
      form: { id: form.id, version: form.version },
    };
    const receivedAt = new Date(nowMs);
    const common = { workspaceId: form.workspaceId, receivedAt, ip, keyKind: 'client' as const };
    const events = [
      normalizeEvent(
        {
          type: 'identify',
          messageId: `form-${submission}-identify`,
          anonymousId,
          traits: s.traits,
          context,
        },
        { ...common, traitLimits: deps.traitLimits, timeBounds: deps.timeBounds },
      ),
      normalizeEvent(
        {
          type: 'track',
          event: 'Form Submitted',
          messageId: `form-${submission}-track`,
          anonymousId,
          properties: {
            formId: form.id,
            formVersion: form.version,
            formName: form.name,
            url: page ?? '',
            referrer: s.referrer ?? '',
            utm,
            ...(s.pageId ? { pageId: s.pageId, variant: s.variant ?? 'default' } : {}),
          },
          context,
        },
        { ...common, timeBounds: deps.timeBounds },
      ),
    ];
    try {
      // one key for both: the identify is applied before the track event
      await withTimeout(
        deps.producer.send(
          deps.eventsTopic,
          events.map((e) => ({ key: eventKey(e.workspaceId, anonymousId), value: JSON.stringify(e) })),
        ),
        deps.produceTimeoutMs,
        'kafka produce',
      );
      if (s.consents.length > 0)
        await deps.queueConsent({
          id: submission,
          workspaceId: form.workspaceId,
          anonymousId,
          formId: form.id,
          formVersion: form.version,
          consents: s.consents,
          at: nowMs,
          ip,
          userAgent,
        });
    } catch (err) {
      deps.log.warn({ err: (err as Error).message, formId: form.id }, 'form_store_failed');
      throw new FormError(503, 'the submission could not be stored: try again in a moment', {}, 5);
    }
  };

  return app;
}

/** A script asks for JSON; a browser's own form post gets HTML. */
function wantsJson(c: Context): boolean {
  const type = (c.req.header('content-type') ?? '').toLowerCase();
  if (type.startsWith('application/json')) return true;
  const accept = (c.req.header('accept') ?? '').toLowerCase();
  return accept.includes('application/json') && !accept.includes('text/html');
}

function clientIp(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined;
  }
}

/** The posted values: urlencoded (an HTML form) or a flat JSON object (a script). */
async function readPosted(c: Context): Promise<Posted> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded' && type !== 'application/json')
    throw new FormError(
      415,
      `unsupported content type "${type.slice(0, 100)}": post the form as application/x-www-form-urlencoded (an HTML form's default) or application/json`,
    );
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  let raw: Buffer;
  try {
    raw = await readRawBody(incoming && !incoming.readableEnded ? incoming : c.req.raw, MAX_FORM_BODY_BYTES);
  } catch (err) {
    if (err instanceof IngestError) throw new FormError(err.status as 413 | 415 | 400, err.message);
    throw err;
  }
  if (!isUtf8(raw)) throw new FormError(400, 'body is not valid UTF-8');
  const text = raw.toString('utf8');
  const posted: Posted = new Map();
  const put = (k: string, v: string | number | boolean) => {
    if (posted.has(k))
      throw new FormError(400, `${k.slice(0, 64)}: given more than once`, {
        [k.slice(0, 64)]: 'given more than once',
      });
    posted.set(k, v);
    if (posted.size > MAX_POSTED_FIELDS) throw new FormError(400, `more than ${MAX_POSTED_FIELDS} fields`);
  };
  if (type === 'application/json') {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new FormError(400, 'malformed JSON');
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw new FormError(400, 'body must be a JSON object of field values');
    for (const [k, v] of Object.entries(body)) {
      if (typeof v !== 'string' && typeof v !== 'boolean' && !(typeof v === 'number' && Number.isFinite(v)))
        throw new FormError(400, `${k.slice(0, 64)}: must be a string, number or boolean`, {
          [k.slice(0, 64)]: 'must be a string, number or boolean',
        });
      put(k, v);
    }
  } else for (const [k, v] of new URLSearchParams(text)) put(k, v);
  return posted;
}

function success(c: Context, form: FormDefinition, json: boolean) {
  const s = form.success;
  if ('redirect' in s) {
    // the target comes from the definition only (checked http(s) when saved), never the post
    if (json) return c.json({ success: true, redirect: s.redirect });
    return c.redirect(s.redirect, 303);
  }
  if (json) return c.json({ success: true, message: s.message });
  return html(c, 200, page(form.name, `<p>${esc(s.message)}</p>`));
}

function answerError(c: Context, err: unknown, json: boolean, log: Logger) {
  let e: FormError;
  if (err instanceof FormError) e = err;
  else if (err instanceof IngestError)
    // normalisation refused an event (a trait bound): the visitor's input, a 400
    e = new FormError(err.status === 503 ? 503 : 400, err.message);
  else {
    log.error({ err: (err as Error).message, path: c.req.path }, 'form_unhandled_error');
    e = new FormError(503, 'internal error: try again in a moment');
  }
  if (e.retryAfterSeconds) c.header('Retry-After', String(e.retryAfterSeconds));
  if (json) return c.json({ success: false, error: e.message, errors: e.errors }, e.status);
  const list = Object.entries(e.errors);
  const body =
    list.length > 0
      ? `<p>The form could not be sent:</p><ul>${list
          .map(([k, v]) => `<li><strong>${esc(k)}</strong>: ${esc(v)}</li>`)
          .join('')}</ul><p>Go back, correct it and send it again.</p>`
      : `<p>${esc(e.message)}</p>`;
  return html(c, e.status, page('The form could not be sent', body));
}

function html(c: Context, status: number, body: string, redirectOrigin?: string) {
  // nothing on these pages runs script or loads anything; the form posts to this host only
  // (and is then sent on to the form's redirect)
  c.header(
    'Content-Security-Policy',
    `default-src 'none'; style-src 'unsafe-inline'; form-action 'self'${redirectOrigin ? ` ${redirectOrigin}` : ''}`,
  );
  c.header('X-Content-Type-Options', 'nosniff');
  c.header('Referrer-Policy', 'strict-origin-when-cross-origin');
  return c.html(body, status as 200);
}

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function safeUrl(v: string): string | undefined {
  if (v.length > 2048) return undefined;
  try {
    const u = new URL(v);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.toString() : undefined;
  } catch {
    return undefined;
  }
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${esc(title)}</title></head><body>${body}</body></html>`;
}

/** The form as HTML that works without JavaScript: every value escaped. */
export function renderForm(
  form: FormDefinition,
  opts: { action: string; token: string; page?: string; referrer?: string },
): string {
  const attr = (k: string, v: string | number | undefined) =>
    v === undefined ? '' : ` ${k}="${esc(String(v))}"`;
  const flag = (k: string, on: boolean | undefined) => (on ? ` ${k}` : '');
  const rows = form.fields.map((f) => {
    const id = `f_${f.name}`;
    const common = `${attr('id', id)}${attr('name', f.name)}${flag('required', f.required)}`;
    if (f.type === 'hidden')
      return `<input type="hidden"${attr('name', f.name)}${attr('value', f.value ?? '')}>`;
    if (f.type === 'checkbox')
      return `<p><label><input type="checkbox"${common}> ${esc(f.label)}</label></p>`;
    if (f.type === 'select')
      return `<p><label${attr('for', id)}>${esc(f.label)}</label><br><select${common}><option value=""></option>${f
        .options!.map((o) => `<option${attr('value', o)}>${esc(o)}</option>`)
        .join('')}</select></p>`;
    const input = `<input${attr('type', f.type)}${common}${attr('maxlength', f.maxLength)}${attr('pattern', f.pattern)}${attr('min', f.min)}${attr('max', f.max)}>`;
    return `<p><label${attr('for', id)}>${esc(f.label)}</label><br>${input}</p>`;
  });
  const consents = (form.consents ?? []).map(
    (c) =>
      `<p><label><input type="checkbox"${attr('name', c.name)}${flag('required', c.required)}> ${esc(c.text)}</label></p>`,
  );
  const hidden = [
    `<input type="hidden"${attr('name', FORM_META.token)}${attr('value', opts.token)}>`,
    `<input type="hidden"${attr('name', FORM_META.page)}${attr('value', opts.page ?? '')}>`,
    `<input type="hidden"${attr('name', FORM_META.referrer)}${attr('value', opts.referrer ?? '')}>`,
    // the honeypot: off screen and out of the tab order; people leave it empty
    `<div style="position:absolute;left:-10000px" aria-hidden="true"><label>Website <input type="text"${attr('name', FORM_META.honeypot)} tabindex="-1" autocomplete="off"></label></div>`,
  ];
  return page(
    form.name,
    `<form method="post" accept-charset="utf-8"${attr('action', opts.action)}>${hidden.join('')}${rows.join('')}${consents.join('')}<p><button type="submit">Send</button></p></form>`,
  );
}
