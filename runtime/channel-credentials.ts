// Per-workspace channel credentials (email, SMS, push), encrypted at rest in Redis.
// - One hash `<prefix>:{~g}:chcred`, field `<workspace>:<channel>`, value a JSON record: the sealed
//   credentials (runtime/secrets-key.ts: AES-256-GCM, key id, random IV) and, in the clear,
//   when and by whom they were last set. The AAD binds the ciphertext to its workspace, channel
//   and that metadata: a blob copied to another workspace or channel, or edited, does not open.
// - `<prefix>:{~g}:chcred:rev` counts changes, so activation learns of one with a single GET per poll.
// Endpoints (provider base URLs, the SES endpoint) stay deployment settings: a workspace
// chooses credentials, not where the workers connect with them.
import { createHash, createHmac, createPrivateKey, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { globalTag } from '../schemas/redis-keys.ts';
import { firstSchemaError } from '../schemas/schema-error.ts';
import type { Redis } from './redis.ts';
import { type Keyring, open, type SealedBlob, seal, UnreadableSecret } from './secrets-key.ts';

export const CREDENTIAL_CHANNELS = ['email', 'sms', 'push'] as const;
export type CredentialChannel = (typeof CREDENTIAL_CHANNELS)[number];
export const isCredentialChannel = (c: string): c is CredentialChannel =>
  (CREDENTIAL_CHANNELS as readonly string[]).includes(c);

const Str = (min: number, max: number, extra: object = {}) =>
  Type.String({ minLength: min, maxLength: max, ...extra });
const From = Str(3, 320, { pattern: '@' });
const strict = { additionalProperties: false };

const EmailSchemas = {
  smtp: Type.Object(
    { provider: Type.Literal('smtp'), from: From, url: Str(9, 2048, { pattern: '^smtps?://[^\\s]+$' }) },
    strict,
  ),
  ses: Type.Object(
    {
      provider: Type.Literal('ses'),
      from: From,
      region: Str(9, 32, { pattern: '^[a-z]{2}(-[a-z]+)+-\\d+$' }),
      accessKeyId: Str(16, 128, { pattern: '^[A-Z0-9]+$' }),
      secretAccessKey: Str(16, 256),
      sessionToken: Type.Optional(Str(1, 4096)),
    },
    strict,
  ),
  sendgrid: Type.Object({ provider: Type.Literal('sendgrid'), from: From, apiKey: Str(10, 512) }, strict),
  postmark: Type.Object(
    {
      provider: Type.Literal('postmark'),
      from: From,
      serverToken: Str(10, 256),
      messageStream: Type.Optional(Str(1, 100, { pattern: '^[A-Za-z0-9_-]+$' })),
    },
    strict,
  ),
};
const SmsSchema = Type.Object(
  {
    accountSid: Type.String({ pattern: '^AC[0-9a-fA-F]{32}$' }),
    authToken: Str(16, 256),
    // E.164, or an alphanumeric sender id (a letter, up to 11 characters)
    from: Type.String({ pattern: '^(\\+[1-9][0-9]{6,14}|(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11})$' }),
  },
  strict,
);
const PushSchemas = {
  fcm: Type.Object(
    {
      provider: Type.Literal('fcm'),
      serviceAccount: Type.Union([Type.Object({}), Str(2, 20_000)]),
    },
    strict,
  ),
  apns: Type.Object(
    {
      provider: Type.Literal('apns'),
      teamId: Type.String({ pattern: '^[A-Z0-9]{10}$' }),
      keyId: Type.String({ pattern: '^[A-Z0-9]{10}$' }),
      key: Str(64, 4096, { pattern: '^\\s*-----BEGIN PRIVATE KEY-----' }),
      topic: Str(1, 255, { pattern: '^[A-Za-z0-9.-]+$' }),
    },
    strict,
  ),
};

export type EmailCredentials =
  | Static<(typeof EmailSchemas)['smtp']>
  | Static<(typeof EmailSchemas)['ses']>
  | Static<(typeof EmailSchemas)['sendgrid']>
  | Static<(typeof EmailSchemas)['postmark']>;
export type SmsCredentials = Static<typeof SmsSchema>;
export interface FcmCredentials {
  provider: 'fcm';
  /** The service account key JSON, as text (always JSON, never a path). */
  serviceAccount: string;
}
export type ApnsCredentials = Static<(typeof PushSchemas)['apns']>;
export type PushCredentials = FcmCredentials | ApnsCredentials;
export type ChannelCredentials =
  | { channel: 'email'; creds: EmailCredentials }
  | { channel: 'sms'; creds: SmsCredentials }
  | { channel: 'push'; creds: PushCredentials };

const compiled = new Map<TSchema, ReturnType<typeof TypeCompiler.Compile>>();
function check(schema: TSchema, body: unknown): string | undefined {
  let c = compiled.get(schema);
  if (!c) {
    c = TypeCompiler.Compile(schema);
    compiled.set(schema, c);
  }
  const e = firstSchemaError(c, body);
  if (!e) return undefined;
  // an unknown field is named as such; a bad value is described, never echoed
  if (e.unknownField && e.path)
    return `${e.path}: unknown field (allowed: ${Object.keys((e.schema as unknown as { properties: object }).properties).join(', ')})`;
  return `${e.path || 'body'}: ${e.message}`;
}

/** A provider-specific schema chosen by `provider`, so an error names the field, not "union". */
function byProvider<S extends Record<string, TSchema>>(schemas: S, body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body: expected a JSON object';
  const p = (body as Record<string, unknown>).provider;
  if (typeof p !== 'string' || !(p in schemas))
    return `provider: expected one of ${Object.keys(schemas).join(', ')}`;
  return check(schemas[p]!, body);
}

/** Where a workspace's SMTP URL points, as checked: what the worker connects to, nothing else. */
export interface SmtpTarget {
  /** smtps: TLS from the first byte; smtp: STARTTLS when the server offers it. */
  secure: boolean;
  /** A DNS name or an IP address (IPv6 without brackets). */
  hostname: string;
  port: number;
  user?: string;
  pass?: string;
}

const DNS_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/**
 * An SMTP URL as a workspace may give it: `smtp[s]://[user[:password]@]host[:port][/]`.
 * No query string or fragment (nodemailer reads host, port, proxy, logger, TLS options from
 * the query: none of that is the tenant's to choose), a host name or IP literal, user and
 * password valid percent-encoding. The problem names `url` and never echoes the value.
 */
export function parseSmtpUrl(url: string): { ok: SmtpTarget } | { error: string } {
  if (/[?#]/.test(url))
    return { error: 'url: no query string or fragment allowed (smtp[s]://user:password@host:port)' };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { error: 'url: not a valid URL (smtp[s]://user:password@host:port)' };
  }
  if (u.protocol !== 'smtp:' && u.protocol !== 'smtps:')
    return { error: 'url: expected smtp:// or smtps://' };
  const bracketed = /^\[(.*)\]$/.exec(u.hostname);
  const hostname = bracketed ? bracketed[1]! : u.hostname;
  if (!hostname) return { error: 'url: no host' };
  if (bracketed ? isIP(hostname) !== 6 : !DNS_NAME.test(hostname))
    return { error: 'url: the host is not a host name or IP address' };
  if (u.pathname !== '' && u.pathname !== '/') return { error: 'url: no path allowed' };
  const secure = u.protocol === 'smtps:';
  const port = u.port === '' ? (secure ? 465 : 587) : Number(u.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { error: 'url: port must be 1-65535' };
  let user: string | undefined;
  let pass: string | undefined;
  try {
    user = u.username ? decodeURIComponent(u.username) : undefined;
    pass = u.password ? decodeURIComponent(u.password) : undefined;
  } catch {
    return { error: 'url: the user name or password is not valid percent-encoding' };
  }
  if (pass !== undefined && user === undefined) return { error: 'url: a password needs a user name' };
  return {
    ok: {
      secure,
      hostname,
      port,
      ...(user !== undefined ? { user } : {}),
      ...(pass !== undefined ? { pass } : {}),
    },
  };
}

/** The only token endpoint a workspace's FCM service account may name (no SSRF through it). */
export const GOOGLE_TOKEN_URI = 'https://oauth2.googleapis.com/token';

/** Validates a PUT body; the credentials normalised, or the first problem naming its field. */
export function parseCredentials(
  channel: CredentialChannel,
  body: unknown,
): { ok: ChannelCredentials } | { error: string } {
  if (channel === 'email') {
    const err = byProvider(EmailSchemas, body);
    if (err) return { error: err };
    const e = body as EmailCredentials;
    if (e.provider === 'smtp') {
      const t = parseSmtpUrl(e.url);
      if ('error' in t) return t;
    }
    return { ok: { channel, creds: e } };
  }
  if (channel === 'sms') {
    const err = check(SmsSchema, body);
    return err ? { error: err } : { ok: { channel, creds: body as SmsCredentials } };
  }
  const err = byProvider(PushSchemas, body);
  if (err) return { error: err };
  const b = body as { provider: 'fcm'; serviceAccount: unknown } | ApnsCredentials;
  if (b.provider === 'apns') {
    try {
      const k = createPrivateKey(b.key);
      if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
        return { error: 'key: expected an APNs .p8 key (EC P-256)' };
    } catch {
      return { error: 'key: not a readable PEM private key' };
    }
    return { ok: { channel, creds: b } };
  }
  // a service account as an object or as its JSON text (never a path: no file is read)
  let sa: Record<string, unknown>;
  if (typeof b.serviceAccount === 'string') {
    try {
      sa = JSON.parse(b.serviceAccount) as Record<string, unknown>;
    } catch {
      return { error: 'serviceAccount: not JSON (give the key file content, as an object or a string)' };
    }
  } else sa = b.serviceAccount as Record<string, unknown>;
  if (typeof sa !== 'object' || sa === null || Array.isArray(sa))
    return { error: 'serviceAccount: expected the service account key object' };
  for (const f of ['project_id', 'client_email', 'private_key', 'token_uri'])
    if (typeof sa[f] !== 'string' || sa[f] === '') return { error: `serviceAccount.${f}: required` };
  if (sa.token_uri !== GOOGLE_TOKEN_URI)
    return { error: `serviceAccount.token_uri: must be ${GOOGLE_TOKEN_URI}` };
  try {
    const k = createPrivateKey(String(sa.private_key));
    if (k.asymmetricKeyType !== 'rsa') return { error: 'serviceAccount.private_key: expected an RSA key' };
  } catch {
    return { error: 'serviceAccount.private_key: not a readable PEM private key' };
  }
  return { ok: { channel, creds: { provider: 'fcm', serviceAccount: JSON.stringify(sa) } } };
}

/**
 * The key fingerprints are made with: derived from the secrets key (never the key itself), so
 * a fingerprint cannot be checked against guesses by anyone who lacks CDP_SECRETS_KEY.
 */
export function fingerprintKey(secretsKey: Buffer): Buffer {
  return createHmac('sha256', secretsKey).update('cdp.channel-credentials.fingerprint.v1').digest();
}

/**
 * A short, keyed one-way fingerprint of a secret (HMAC-SHA256 under fingerprintKey): tells
 * values apart, reveals nothing usable, and cannot be brute-forced offline from GET or audit.
 */
export function fingerprint(secret: string, key: Buffer): string {
  return `hmac:${createHmac('sha256', key).update(secret).digest('hex').slice(0, 12)}`;
}

/** A URL's user name as shown: decoded when it decodes, else as written (never throws). */
function shownUser(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/**
 * What GET answers and the audit log keeps: provider, the non-secret fields, fingerprints.
 * Never throws, whatever a stored record holds: a value it cannot show is left out.
 */
export function redactCredentials(c: ChannelCredentials, key: Buffer): Record<string, unknown> {
  try {
    return redact(c, key);
  } catch {
    const provider = (c.creds as { provider?: unknown }).provider;
    return { ...(typeof provider === 'string' ? { provider } : {}), shown: false };
  }
}

function redact(c: ChannelCredentials, key: Buffer): Record<string, unknown> {
  const fp = (s: string) => fingerprint(s, key);
  if (c.channel === 'sms')
    return {
      accountSid: c.creds.accountSid,
      from: c.creds.from,
      secrets: { authToken: fp(c.creds.authToken) },
    };
  if (c.channel === 'email') {
    const e = c.creds;
    switch (e.provider) {
      case 'smtp': {
        let server: string;
        try {
          const u = new URL(e.url);
          server = `${u.protocol}//${u.username ? `${shownUser(u.username)}@` : ''}${u.host}`;
        } catch {
          server = '(not a valid URL)';
        }
        return { provider: 'smtp', from: e.from, server, secrets: { url: fp(e.url) } };
      }
      case 'ses':
        return {
          provider: 'ses',
          from: e.from,
          region: e.region,
          accessKeyId: e.accessKeyId,
          secrets: {
            secretAccessKey: fp(e.secretAccessKey),
            ...(e.sessionToken ? { sessionToken: fp(e.sessionToken) } : {}),
          },
        };
      case 'sendgrid':
        return { provider: 'sendgrid', from: e.from, secrets: { apiKey: fp(e.apiKey) } };
      case 'postmark':
        return {
          provider: 'postmark',
          from: e.from,
          ...(e.messageStream ? { messageStream: e.messageStream } : {}),
          secrets: { serverToken: fp(e.serverToken) },
        };
    }
  }
  const p = c.creds as PushCredentials;
  if (p.provider === 'apns')
    return {
      provider: 'apns',
      teamId: p.teamId,
      keyId: p.keyId,
      topic: p.topic,
      secrets: { key: fp(p.key.trim()) },
    };
  const sa = JSON.parse(p.serviceAccount) as Record<string, string>;
  return {
    provider: 'fcm',
    projectId: sa.project_id,
    clientEmail: sa.client_email,
    ...(sa.private_key_id ? { privateKeyId: sa.private_key_id } : {}),
    secrets: { serviceAccount: fp(sa.private_key ?? p.serviceAccount) },
  };
}

export const credentialKeys = (prefix: string) => ({
  // one hash tag (the global one): REPLACE_IF_SAME and the writes take both at once
  hash: `${globalTag(prefix)}:chcred`,
  rev: `${globalTag(prefix)}:chcred:rev`,
  field: (workspaceId: string, channel: string) => `${workspaceId}:${channel}`,
});

interface StoredRecord extends SealedBlob {
  updatedAt: string;
  updatedBy: string;
}

const aadOf = (ws: string, channel: string, updatedAt: string, updatedBy: string) =>
  ['cdp.channel-credentials.v1', ws, channel, updatedAt, updatedBy].join('\u0000');

export type StoredCredentials =
  | {
      readable: true;
      workspaceId: string;
      channel: CredentialChannel;
      credentials: ChannelCredentials;
      keyId: string;
      updatedAt: string;
      updatedBy: string;
      /** SHA-256 of the plaintext: whether two reads hold the same credentials. */
      digest: string;
    }
  | {
      readable: false;
      workspaceId: string;
      channel: CredentialChannel;
      error: string;
      keyId?: string;
      updatedAt?: string;
      updatedBy?: string;
    };

/** Opens one stored record of `field`; never throws (an unreadable one says why). */
export function openRecord(ring: Keyring, field: string, raw: string): StoredCredentials | undefined {
  const i = field.lastIndexOf(':');
  const ws = field.slice(0, i);
  const channel = field.slice(i + 1);
  if (!isCredentialChannel(channel)) return undefined;
  let rec: Partial<StoredRecord>;
  try {
    rec = JSON.parse(raw) as Partial<StoredRecord>;
    if (typeof rec !== 'object' || rec === null) throw new Error();
  } catch {
    return {
      readable: false,
      workspaceId: ws,
      channel,
      error: new UnreadableSecret('not a stored record').message,
    };
  }
  const meta = {
    keyId: typeof rec.kid === 'string' ? rec.kid : undefined,
    updatedAt: typeof rec.updatedAt === 'string' ? rec.updatedAt : undefined,
    updatedBy: typeof rec.updatedBy === 'string' ? rec.updatedBy : undefined,
  };
  try {
    const text = open(
      ring,
      rec as SealedBlob,
      aadOf(ws, channel, String(rec.updatedAt), String(rec.updatedBy)),
    );
    const credentials = { channel, creds: JSON.parse(text) } as ChannelCredentials;
    return {
      readable: true,
      workspaceId: ws,
      channel,
      credentials,
      keyId: String(rec.kid),
      updatedAt: String(rec.updatedAt),
      updatedBy: String(rec.updatedBy),
      digest: createHash('sha256').update(text).digest('hex'),
    };
  } catch (err) {
    const msg =
      err instanceof UnreadableSecret ? err.message : new UnreadableSecret((err as Error).message).message;
    return { readable: false, workspaceId: ws, channel, error: msg, ...meta };
  }
}

// set a field only if it still holds what was read (a rotation never overwrites a newer PUT)
const REPLACE_IF_SAME = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1`;

export class ChannelCredentialStore {
  private readonly keys: ReturnType<typeof credentialKeys>;
  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly ring: Keyring,
  ) {
    this.keys = credentialKeys(prefix);
  }

  /**
   * The key GET and the audit log fingerprint secrets with: derived from CDP_SECRETS_KEY (else
   * the previous key), so fingerprints change when the key is rotated.
   */
  get fingerprintKey(): Buffer {
    const k = this.ring.current ?? this.ring.byId.values().next().value;
    // no key at all: nothing is readable, so nothing is fingerprinted; a throwaway key anyway
    return fingerprintKey(k?.key ?? randomBytes(32));
  }

  /** Whether new credentials can be stored (CDP_SECRETS_KEY set). */
  get canSeal(): boolean {
    return this.ring.current !== undefined;
  }

  async get(ws: string, channel: CredentialChannel): Promise<StoredCredentials | undefined> {
    const raw = await this.redis.hget(this.keys.hash, this.keys.field(ws, channel));
    return raw === null ? undefined : openRecord(this.ring, this.keys.field(ws, channel), raw);
  }

  /** Seals and stores; the previous record (as read just before) for the audit log. */
  async put(
    ws: string,
    c: ChannelCredentials,
    actor: string,
    at: Date,
  ): Promise<{ before?: StoredCredentials; after: StoredCredentials }> {
    const before = await this.get(ws, c.channel);
    const updatedAt = at.toISOString();
    const blob = seal(this.ring, JSON.stringify(c.creds), aadOf(ws, c.channel, updatedAt, actor));
    const rec: StoredRecord = { ...blob, updatedAt, updatedBy: actor };
    const raw = JSON.stringify(rec);
    await this.redis
      .multi()
      .hset(this.keys.hash, this.keys.field(ws, c.channel), raw)
      .incr(this.keys.rev)
      .exec();
    return { before, after: openRecord(this.ring, this.keys.field(ws, c.channel), raw)! };
  }

  async delete(ws: string, channel: CredentialChannel): Promise<StoredCredentials | undefined> {
    const before = await this.get(ws, channel);
    if (!before) return undefined;
    const [[, n] = []] =
      (await this.redis
        .multi()
        .hdel(this.keys.hash, this.keys.field(ws, channel))
        .incr(this.keys.rev)
        .exec()) ?? [];
    return n ? before : undefined;
  }

  async revision(): Promise<string> {
    return (await this.redis.get(this.keys.rev)) ?? '0';
  }

  /** Every stored record, opened (unreadable ones say why). */
  async all(): Promise<StoredCredentials[]> {
    const raw = await this.redis.hgetall(this.keys.hash);
    const out: StoredCredentials[] = [];
    for (const [field, v] of Object.entries(raw)) {
      const r = openRecord(this.ring, field, v);
      if (r) out.push(r);
    }
    return out;
  }

  /**
   * `cdp secrets rotate`: seals again with the current key every record another key sealed
   * (keeping when and by whom it was set). Unreadable records are left as they are and listed.
   */
  async reencrypt(): Promise<{
    reencrypted: number;
    current: number;
    unreadable: Array<{ workspaceId: string; channel: string; error: string }>;
  }> {
    const cur = this.ring.current;
    if (!cur) throw new Error('CDP_SECRETS_KEY is not set: nothing to re-encrypt with');
    const raw = await this.redis.hgetall(this.keys.hash);
    let reencrypted = 0;
    let current = 0;
    const unreadable: Array<{ workspaceId: string; channel: string; error: string }> = [];
    for (const [field, v] of Object.entries(raw)) {
      const r = openRecord(this.ring, field, v);
      if (!r) continue;
      if (!r.readable) {
        unreadable.push({ workspaceId: r.workspaceId, channel: r.channel, error: r.error });
        continue;
      }
      if (r.keyId === cur.id) {
        current++;
        continue;
      }
      const blob = seal(
        this.ring,
        JSON.stringify(r.credentials.creds),
        aadOf(r.workspaceId, r.channel, r.updatedAt, r.updatedBy),
      );
      const next = JSON.stringify({ ...blob, updatedAt: r.updatedAt, updatedBy: r.updatedBy });
      const done = await this.redis.eval(REPLACE_IF_SAME, 2, this.keys.hash, this.keys.rev, field, v, next);
      // changed meanwhile: a PUT sealed it with the current key already
      if (Number(done) === 1) reencrypted++;
      else current++;
    }
    return { reencrypted, current, unreadable };
  }
}
