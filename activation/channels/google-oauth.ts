// OAuth 2.0 access tokens for a Google service account (the JWT bearer grant, RFC 7523), as
// FCM HTTP v1 requires: a JWT signed with the account's RSA key (RS256) is exchanged at its
// token_uri for an access token that lives an hour. The token is cached and fetched again
// five minutes before it expires (or at once when the API answers 401); concurrent sends
// share one fetch.
import { createSign } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const REFRESH_BEFORE_MS = 5 * 60_000;

export interface ServiceAccount {
  client_email: string;
  private_key: string;
  token_uri: string;
  project_id: string;
}

/** A service account key: its JSON, or the path of its JSON file; the fields FCM needs checked. */
export function parseServiceAccount(raw: string): ServiceAccount {
  const text = raw.trim().startsWith('{') ? raw : readFileSync(raw, 'utf8');
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error('the service account key is not JSON');
  }
  for (const f of ['client_email', 'private_key', 'token_uri', 'project_id'])
    if (typeof v[f] !== 'string' || v[f] === '') throw new Error(`the service account key has no ${f}`);
  if (!/^https?:\/\//.test(String(v.token_uri)))
    throw new Error('the service account key has no http(s) token_uri');
  return v as unknown as ServiceAccount;
}

const b64url = (s: string | Buffer) => Buffer.from(s).toString('base64url');

/** The signed assertion the token endpoint exchanges (valid one hour from `nowMs`). */
export function serviceAccountAssertion(sa: ServiceAccount, scope: string, nowMs: number): string {
  const iat = Math.floor(nowMs / 1000);
  const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const claims = b64url(
    JSON.stringify({ iss: sa.client_email, scope, aud: sa.token_uri, iat, exp: iat + 3600 }),
  );
  const signature = createSign('RSA-SHA256').update(`${head}.${claims}`).sign(sa.private_key);
  return `${head}.${claims}.${b64url(signature)}`;
}

export class GoogleTokenSource {
  private cached?: { token: string; expiresAt: number };
  private inflight?: Promise<string>;

  constructor(
    private readonly sa: ServiceAccount,
    private readonly scope: string,
    private readonly opts: { now: () => number; timeoutMs: number },
  ) {}

  /** A token valid for at least five more minutes. */
  async token(): Promise<string> {
    const c = this.cached;
    if (c && c.expiresAt - REFRESH_BEFORE_MS > this.opts.now()) return c.token;
    this.inflight ??= this.fetchToken().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** The API refused the token (revoked, clock skew): the next call fetches a new one. */
  invalidate(token: string): void {
    if (this.cached?.token === token) this.cached = undefined;
  }

  private async fetchToken(): Promise<string> {
    const now = this.opts.now();
    const res = await fetch(this.sa.token_uri, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion: serviceAccountAssertion(this.sa, this.scope, now),
      }).toString(),
      redirect: 'manual',
      signal: AbortSignal.timeout(this.opts.timeoutMs),
    });
    const text = await readCapped(res, MAX_TOKEN_ANSWER_BYTES);
    if (text === undefined)
      throw new TokenError(res.status, `token endpoint answer over ${MAX_TOKEN_ANSWER_BYTES / 1024} KB`);
    if (!res.ok) throw new TokenError(res.status, `token endpoint HTTP ${res.status}${oauthError(text)}`);
    let body: { access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new TokenError(res.status, 'token endpoint answered no JSON');
    }
    if (typeof body.access_token !== 'string' || !body.access_token)
      throw new TokenError(res.status, 'token endpoint answered no access_token');
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 3600;
    this.cached = { token: body.access_token, expiresAt: now + seconds * 1000 };
    return body.access_token;
  }
}

/** A token answer is a few hundred bytes: more is not Google's token endpoint. */
const MAX_TOKEN_ANSWER_BYTES = 64 * 1024;

/** The body as text, or undefined once it passes `max` bytes (the rest is not read). */
async function readCapped(res: Response, max: number): Promise<string | undefined> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Of an error answer, only RFC 6749's `error` and `error_description` (bounded, printable):
 * never the body itself, which would carry whatever an endpoint answered into the ledger.
 */
function oauthError(text: string): string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return '';
  }
  if (typeof v !== 'object' || v === null) return '';
  const field = (k: string, max: number) => {
    const x = (v as Record<string, unknown>)[k];
    return typeof x === 'string' ? x.replace(/[^\x20-\x7e]/g, '?').slice(0, max) : undefined;
  };
  const error = field('error', 64);
  const description = field('error_description', 160);
  if (!error) return '';
  return `: ${error}${description ? ` (${description})` : ''}`;
}

/** The token could not be had: 5xx and 429 are worth retrying, 4xx (a revoked key) are not. */
export class TokenError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
