// Double opt-in: a consent purpose the workspace names in its settings is granted in two
// steps. A grant (a ticked form box, or the consent API with `confirm: true`) is recorded as
// `pending` (not subscribed: the contact policy blocks it) with a confirmation record, and a
// confirmation email carries a signed, expiring link to the ingest host; the person's POST
// there records `subscribed` with source `link`. Shared by the query service (records,
// mails, logs: query/double-opt-in.ts) and the ingest host (the confirm page and its POST:
// ingest/consent-confirm.ts).
//
// Redis (all under the workspace hash tag, so the confirmation is one atomic script):
//   <tag>:p:<pid>:optin   hash: <recordId> → OptInRecord JSON; `send:<recordId>` → the
//                         confirmation mail's state (claimed:<until ms> | done:<ms> |
//                         failed:<why>); `tries:<recordId>`; `logged:<recordId>` → 1 once the
//                         confirmation is in consent_log. Erased with the profile.
//   <prefix>:consent:optin-due   sorted set of OptInJob JSON → when it is (re)tried.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { withSurvivor } from '../profiles/survivor.ts';
import { templateError } from './liquid-template.ts';
import { workspaceKeys } from './redis-keys.ts';

const Scope = Type.String({ pattern: '^[a-z0-9_-]{1,40}$' });
const NoNewlines = '^[^\\r\\n]*$';

/** The workspace setting (`PUT /v1/settings {doubleOptIn: …}`); null: no purpose needs confirming. */
export const DoubleOptInSettings = Type.Object(
  {
    /** Purposes whose grants need confirming, e.g. `["newsletter"]`. */
    purposes: Type.Array(Scope, { minItems: 1, maxItems: 50, uniqueItems: true }),
    /** How long a confirmation link works (default 72 hours). */
    ttlHours: Type.Optional(Type.Integer({ minimum: 1, maximum: 720 })),
    /** The sender; default CDP_EMAIL_FROM. */
    from: Type.Optional(Type.String({ minLength: 3, maxLength: 320, pattern: NoNewlines })),
    /** Liquid over `confirm_url`, `purpose`, `channel`, `consent_text`, `traits`, `expires_at`. */
    template: Type.Optional(
      Type.Object(
        {
          subject: Type.String({ minLength: 1, maxLength: 500, pattern: NoNewlines }),
          text: Type.String({ minLength: 1, maxLength: 20_000 }),
          html: Type.Optional(Type.String({ minLength: 1, maxLength: 100_000 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type DoubleOptInSettings = Static<typeof DoubleOptInSettings>;
export const doubleOptInCheck = TypeCompiler.Compile(DoubleOptInSettings);

export const DEFAULT_TTL_HOURS = 72;
export const DEFAULT_TEMPLATE = {
  subject: 'Please confirm your subscription',
  text:
    'Please confirm that you want to receive {{ purpose }} messages by {{ channel }}.\n\n' +
    'You agreed to: {{ consent_text }}\n\nConfirm: {{ confirm_url }}\n\n' +
    'The link works until {{ expires_at }}. If you did not ask for this, ignore this message: ' +
    'nothing is sent to you without your confirmation.\n',
};

/** A template's first Liquid syntax error as `doubleOptIn.template.<field>: …`, or undefined. */
export function doubleOptInError(s: DoubleOptInSettings): string | undefined {
  for (const f of ['subject', 'text', 'html'] as const) {
    const src = s.template?.[f];
    if (src === undefined) continue;
    const e = templateError(src, f === 'html' ? 'html' : 'text');
    if (e) return `doubleOptIn.template.${f}: invalid Liquid template: ${e}`;
  }
  return undefined;
}

/** A grant waiting for confirmation, kept in the profile's `:optin` hash. */
export interface OptInRecord {
  id: string;
  workspaceId: string;
  /** The profile it was recorded on (the token names it; the confirmation follows merges). */
  profileId: string;
  channel: string;
  purpose: string;
  /** The exact text shown when consent was asked for; the confirmation refers to it. */
  text: string;
  /** The grant's source (`form:<id>@<version>`, `api`). */
  source: string;
  at: number;
  ip?: string;
  userAgent?: string;
  expiresAt: number;
  confirmedAt?: number;
  confirmIp?: string;
  confirmUserAgent?: string;
  /** The profile the confirmation was written on (the record's, followed through merges). */
  confirmedOn?: string;
}

export interface OptInJob {
  /** `send`: the confirmation mail; `log`: the confirmation's consent_log row. */
  k: 'send' | 'log';
  w: string;
  p: string;
  r: string;
}

export const optInKey = (prefix: string, ws: string, pid: string) =>
  `${workspaceKeys(prefix, ws).profile(pid)}:optin`;
export const optInDueKey = (prefix: string) => `${prefix}:consent:optin-due`;
/** A job as its set member: fixed key order, so the same job queued twice is one member. */
export const optInJobMember = (j: OptInJob) => JSON.stringify({ k: j.k, w: j.w, p: j.p, r: j.r });

/**
 * The confirmation's own secret, derived from the unsubscribe secret (one setting to keep):
 * a token of one kind can never pass for the other.
 */
export const confirmSecret = (unsubscribeSecret: string) =>
  createHmac('sha256', unsubscribeSecret).update('cdp-consent-confirm').digest('base64url');

/** The claims of a confirmation link: bound to the workspace, profile, record, channel and purpose. */
export interface ConfirmClaims {
  w: string;
  p: string;
  r: string;
  c: string;
  u: string;
  /** expiry, epoch seconds */
  e: number;
}

export const MAX_TOKEN_LENGTH = 2048;
const mac = (secret: string, payload: string) =>
  createHmac('sha256', secret).update(`confirm.${payload}`).digest('base64url');

export function signConfirmToken(secret: string, claims: ConfirmClaims): string {
  const payload = Buffer.from(
    JSON.stringify({ w: claims.w, p: claims.p, r: claims.r, c: claims.c, u: claims.u, e: claims.e }),
  ).toString('base64url');
  return `${payload}.${mac(secret, payload)}`;
}

/** The claims of a valid token, or why not (`expired` is told apart: it gets its own page). */
export function verifyConfirmToken(
  secret: string,
  token: string | undefined,
  nowMs: number,
):
  | { ok: true; claims: ConfirmClaims }
  | { ok: false; reason: 'missing' | 'malformed' | 'signature' | 'expired' } {
  if (!token) return { ok: false, reason: 'missing' };
  if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: 'malformed' };
  const [payload, sig, extra] = token.split('.');
  if (!payload || !sig || extra !== undefined) return { ok: false, reason: 'malformed' };
  const want = Buffer.from(mac(secret, payload));
  const got = Buffer.from(sig);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return { ok: false, reason: 'signature' };
  let c: ConfirmClaims;
  try {
    c = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as ConfirmClaims;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (
    !c ||
    typeof c !== 'object' ||
    !['w', 'p', 'r', 'c', 'u'].every((k) => typeof c[k as keyof ConfirmClaims] === 'string') ||
    typeof c.e !== 'number'
  )
    return { ok: false, reason: 'malformed' };
  if (c.e * 1000 < nowMs) return { ok: false, reason: 'expired' };
  return { ok: true, claims: c };
}

/** The atomic confirmation (schemas/confirm-optin.lua, after profiles/survivor.lua). */
export const CONFIRM_SCRIPT = withSurvivor(
  readFileSync(new URL('./confirm-optin.lua', import.meta.url), 'utf8'),
);

export type ConfirmOutcome =
  | { outcome: 'confirmed'; profileId: string; record: OptInRecord }
  | { outcome: 'already'; record: OptInRecord; logged: boolean }
  | { outcome: 'gone' }
  | { outcome: 'expired' }
  | { outcome: 'erased' };

/** Runs the confirmation for a verified token: single use, atomic with the consent write. */
export async function confirmOptIn(
  redis: { eval(script: string, n: number, ...args: Array<string | number>): Promise<unknown> },
  prefix: string,
  claims: ConfirmClaims,
  nowMs: number,
  ip: string,
  userAgent: string,
): Promise<ConfirmOutcome> {
  const r = (await redis.eval(
    CONFIRM_SCRIPT,
    1,
    optInKey(prefix, claims.w, claims.p),
    claims.r,
    claims.p,
    claims.c,
    claims.u,
    nowMs,
    ip,
    userAgent,
  )) as string[];
  const [outcome, a, b] = r;
  if (outcome === 'confirmed') return { outcome, profileId: a!, record: JSON.parse(b!) as OptInRecord };
  if (outcome === 'already') return { outcome, record: JSON.parse(a!) as OptInRecord, logged: b === '1' };
  return { outcome: outcome as 'gone' | 'expired' | 'erased' };
}
