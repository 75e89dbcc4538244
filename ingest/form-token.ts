// The time-to-fill check of a form: the rendered form carries a token with the time it was
// rendered, signed (HMAC-SHA256 with CDP_FORMS_SECRET) for its workspace and form. A
// submission sooner than the minimum after it (a bot posting at once) or later than the
// maximum age (a harvested token) is refused. Pure: the clock is a parameter.
import { createHmac, timingSafeEqual } from 'node:crypto';

const mac = (secret: string, ws: string, formId: string, at: number) =>
  createHmac('sha256', secret).update(`${ws}/${formId}/${at}`).digest('base64url');

/** `<epoch ms>.<signature>` */
export function signFormToken(secret: string, ws: string, formId: string, atMs: number): string {
  return `${atMs}.${mac(secret, ws, formId, atMs)}`;
}

export type TokenCheck = { ok: true } | { ok: false; status: 400; error: string };

export function checkFormToken(
  token: string | undefined,
  opts: { secret: string; ws: string; formId: string; nowMs: number; minFillMs: number; maxAgeMs: number },
): TokenCheck {
  const fail = (error: string): TokenCheck => ({ ok: false, status: 400, error });
  if (!token) return fail('missing: submit the form as rendered (it carries a signed _token)');
  const m = /^(\d{1,15})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return fail('malformed');
  const at = Number(m[1]);
  const want = Buffer.from(mac(opts.secret, opts.ws, opts.formId, at));
  const got = Buffer.from(m[2]!);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return fail('invalid signature');
  const age = opts.nowMs - at;
  if (age < opts.minFillMs)
    return fail(
      `submitted ${Math.max(0, age)} ms after the form was shown: too fast, wait a moment and submit again`,
    );
  if (age > opts.maxAgeMs) return fail('the form has expired: reload the page and submit again');
  return { ok: true };
}
