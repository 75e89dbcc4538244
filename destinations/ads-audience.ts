// Audience sync built-in: a segment's members kept in an ads custom audience, in the shape of
// Meta's Marketing API — POST /{version}/{audienceId}/users to add, DELETE on the same path
// to remove, `{payload: {schema: ["EMAIL_SHA256"], data: [[hash], …]}}`, Bearer access token
// (never in the URL). Each segment change is one member: `entered` adds, `exited` removes,
// in the order they came (a batch goes as consecutive runs of one action).
//
// Identifiers are normalised and SHA-256 hashed here, never sent raw: an email trimmed and
// lowercased; a phone as E.164 (a leading + or 00 and 8 to 15 digits; symbols and spaces
// dropped), hashed as its digits with the country code and no +, as Meta asks. A change
// without a usable identifier is dead-lettered alone.
//
// Answers: 2xx delivered; Meta's rate limits (error codes 4, 17, 32, 613, 80003, or a 429)
// retried no sooner than Retry-After (else a minute), the destination holding its next
// request as long and the circuit not counting it; an invalid token (code 190, a 401)
// final and counted by the circuit; a transient error (codes 1, 2) and 5xx retried; any
// other refusal final with Meta's message.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { parseRetryAfter } from '../activation/channels/channel.ts';
import type { GuardPolicy } from '../activation/webhook/address-guard.ts';
import type { DeliveryItem } from '../schemas/destination.ts';
import type { BuiltinResult } from './hubspot.ts';
import { type ProviderAnswer, providerRequest } from './provider-request.ts';

/** Meta takes up to 10,000 identifiers a request; a batch here is at most MAX_BATCH_EVENTS anyway. */
export const AUDIENCE_MAX_BATCH = 10_000;
export type AudienceIdentifier = 'email' | 'phone';
const RATE_LIMIT_CODES = new Set([4, 17, 32, 613, 80003]);
const TRANSIENT_CODES = new Set([1, 2]);
const DEFAULT_RATE_WAIT_MS = 60_000;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}\.[^\s@]{1,63}$/;

export const SCHEMA: Record<AudienceIdentifier, string> = { email: 'EMAIL_SHA256', phone: 'PHONE_SHA256' };

export const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** The normalised identifier that is hashed, or why there is none. */
export function normaliseIdentifier(kind: AudienceIdentifier, raw: unknown): string | { error: string } {
  if (typeof raw !== 'string' || raw.trim() === '') return { error: `no ${kind} to match on` };
  if (kind === 'email') {
    const e = raw.trim().toLowerCase();
    return EMAIL.test(e) ? e : { error: 'the email is not an email address' };
  }
  const compact = raw.trim().replace(/[\s().-]/g, '');
  const m = /^(?:\+|00)([1-9][0-9]{7,14})$/.exec(compact);
  // the phone itself stays out of reasons (they reach logs and dead-letter headers)
  return m ? m[1]! : { error: 'the phone is not in E.164 form (+ and country code)' };
}

/** What one change asks of the audience. */
export function audienceMember(
  data: unknown,
  kind: AudienceIdentifier,
): { action: 'add' | 'remove'; hash: string } | { error: string } {
  if (data === null || typeof data !== 'object') return { error: 'not a segment change' };
  const d = data as Record<string, unknown>;
  const action = d.type === 'entered' ? 'add' : d.type === 'exited' ? 'remove' : undefined;
  if (!action) return { error: 'not a segment entry or exit' };
  const traits =
    d.traits !== null && typeof d.traits === 'object' ? (d.traits as Record<string, unknown>) : {};
  const id = normaliseIdentifier(kind, traits[kind]);
  if (typeof id !== 'string') return id;
  return { action, hash: sha256(id) };
}

const header = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/** Meta's error object, its message bounded and printable. */
function graphError(a: ProviderAnswer): { code?: number; message: string } {
  try {
    const e = (JSON.parse(a.body) as { error?: { code?: unknown; message?: unknown; type?: unknown } }).error;
    if (e && typeof e === 'object') {
      const code = typeof e.code === 'number' ? e.code : undefined;
      const text = [e.type, e.message].filter((x) => typeof x === 'string').join(': ');
      return {
        code,
        message: `${text}${code !== undefined ? ` (code ${code})` : ''}`
          .replace(/[^\x20-\x7e]/g, '?')
          .slice(0, 500),
      };
    }
  } catch {}
  return { message: a.body.replace(/[^\x20-\x7e]/g, '?').slice(0, 200) };
}

function interpret(a: ProviderAnswer, now: number): BuiltinResult {
  const base = { status: a.status, latencyMs: a.latencyMs };
  if (a.status === 0) return { ...base, ok: false, retriable: !a.refused, error: a.error ?? 'no answer' };
  if (a.status >= 200 && a.status < 300) return { ...base, ok: true, retriable: false };
  const e = graphError(a);
  const message = `audience API ${a.status}: ${e.message}`;
  if (a.status === 429 || (e.code !== undefined && RATE_LIMIT_CODES.has(e.code))) {
    const wait = parseRetryAfter(header(a.headers, 'retry-after'), now) ?? DEFAULT_RATE_WAIT_MS;
    return {
      ...base,
      ok: false,
      retriable: true,
      rateLimited: true,
      error: message,
      retryAfterMs: wait,
      holdMs: wait,
    };
  }
  if (a.status === 401 || e.code === 190)
    return { ...base, ok: false, retriable: false, tripsBreaker: true, error: message };
  const retriable =
    a.status === 408 || a.status >= 500 || (e.code !== undefined && TRANSIENT_CODES.has(e.code));
  return { ...base, ok: false, retriable, error: message };
}

export async function sendAudience(
  items: readonly DeliveryItem[],
  cfg: {
    baseUrl: string;
    apiVersion: string;
    audienceId: string;
    identifier: AudienceIdentifier;
    token: string;
    timeoutMs: number;
    policy: GuardPolicy;
    now: number;
  },
): Promise<BuiltinResult> {
  const itemErrors = new Map<number, string>();
  // consecutive runs of one action, in order
  const runs: Array<{ action: 'add' | 'remove'; hashes: string[] }> = [];
  items.forEach((item, i) => {
    const m = audienceMember(item.data, cfg.identifier);
    if ('error' in m) {
      itemErrors.set(i, `permanent: ${m.error}`);
      return;
    }
    const last = runs[runs.length - 1];
    if (last?.action === m.action && last.hashes.length < AUDIENCE_MAX_BATCH) last.hashes.push(m.hash);
    else runs.push({ action: m.action, hashes: [m.hash] });
  });
  const url = `${cfg.baseUrl.replace(/\/+$/, '')}/${cfg.apiVersion}/${cfg.audienceId}/users`;
  let latencyMs = 0;
  let status = 0;
  for (const run of runs) {
    const a = await providerRequest(
      {
        url,
        method: run.action === 'add' ? 'POST' : 'DELETE',
        headers: { authorization: `Bearer ${cfg.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          payload: { schema: [SCHEMA[cfg.identifier]], data: run.hashes.map((h) => [h]) },
        }),
      },
      { ...cfg.policy, timeoutMs: cfg.timeoutMs },
    );
    latencyMs += a.latencyMs;
    status = a.status;
    const r = interpret(a, cfg.now);
    // a failed run fails the delivery: its retry repeats the runs before it, which is harmless
    // (adding a member twice or removing one already gone changes nothing)
    if (!r.ok) return { ...r, latencyMs };
  }
  return { ok: true, status, retriable: false, latencyMs, itemErrors };
}
