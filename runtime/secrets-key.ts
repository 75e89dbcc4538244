// The master key that encrypts secrets stored in Redis (channel credentials): AES-256-GCM,
// a random 96-bit IV per write, caller-chosen additional authenticated data (AAD) binding a
// blob to where it belongs, and the key id in the blob so a rotation can tell which key
// sealed it. CDP_SECRETS_KEY seals and opens; CDP_SECRETS_KEY_PREVIOUS only opens, while
// `cdp secrets rotate` re-encrypts what the previous key sealed.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface SecretKey {
  /** Not secret: the first 8 hex digits of SHA-256 over the key, to name it in blobs and logs. */
  id: string;
  key: Buffer;
}

export interface Keyring {
  /** Seals new blobs; none: storing secrets is refused. */
  current?: SecretKey;
  /** Every key that may open a blob (current first). */
  byId: ReadonlyMap<string, SecretKey>;
}

/**
 * A 32-byte key written as 64 hex digits or base64 / base64url (43 or 44 characters);
 * throws naming what is wrong (never the value).
 */
export function parseSecretKey(text: string): SecretKey {
  const t = text.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(t)) key = Buffer.from(t, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t))
    key = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key?.length !== 32)
    throw new Error(
      `must be 32 bytes as 64 hex digits or base64 (got ${t.length} characters); make one with: openssl rand -base64 32`,
    );
  return { id: createHash('sha256').update(key).digest('hex').slice(0, 8), key };
}

export function keyring(current?: SecretKey, previous?: SecretKey): Keyring {
  const byId = new Map<string, SecretKey>();
  if (current) byId.set(current.id, current);
  if (previous && !byId.has(previous.id)) byId.set(previous.id, previous);
  return { current, byId };
}

/** A sealed value as stored: version, key id, IV, ciphertext and GCM tag (base64). */
export interface SealedBlob {
  v: 1;
  kid: string;
  iv: string;
  ct: string;
  tag: string;
}

export class SecretsKeyMissing extends Error {
  constructor() {
    super(
      'CDP_SECRETS_KEY is not set: set it to 32 random bytes (base64 or hex, e.g. `openssl rand -base64 32`) on the query and activation services',
    );
    this.name = 'SecretsKeyMissing';
  }
}

export class UnreadableSecret extends Error {
  constructor(reason: string) {
    super(`credentials unreadable: ${reason}`);
    this.name = 'UnreadableSecret';
  }
}

export function seal(ring: Keyring, plaintext: string, aad: string): SealedBlob {
  const k = ring.current;
  if (!k) throw new SecretsKeyMissing();
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', k.key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return {
    v: 1,
    kid: k.id,
    iv: iv.toString('base64'),
    ct: ct.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
  };
}

/** Opens a blob with the key it names; a wrong key, AAD or any changed byte is UnreadableSecret. */
export function open(ring: Keyring, blob: SealedBlob, aad: string): string {
  if (blob.v !== 1) throw new UnreadableSecret(`unknown blob version ${JSON.stringify(blob.v)}`);
  const k = ring.byId.get(blob.kid);
  if (!k)
    throw new UnreadableSecret(
      ring.byId.size === 0
        ? `sealed with key ${blob.kid} but CDP_SECRETS_KEY is not set`
        : `sealed with key ${blob.kid}, which is neither CDP_SECRETS_KEY nor CDP_SECRETS_KEY_PREVIOUS`,
    );
  const iv = Buffer.from(String(blob.iv), 'base64');
  const tag = Buffer.from(String(blob.tag), 'base64');
  if (iv.length !== 12 || tag.length !== 16) throw new UnreadableSecret('malformed blob');
  try {
    const d = createDecipheriv('aes-256-gcm', k.key, iv);
    d.setAAD(Buffer.from(aad, 'utf8'));
    d.setAuthTag(tag);
    return Buffer.concat([d.update(Buffer.from(String(blob.ct), 'base64')), d.final()]).toString('utf8');
  } catch {
    throw new UnreadableSecret(`authentication failed (key ${blob.kid}): tampered, or not sealed for here`);
  }
}

/**
 * The one-box local default (`cdp dev`): a key generated once into the data directory, mode
 * 0600, and read from there afterwards. Returns the key's text and whether it was created.
 */
export function localSecretsKey(path: string): { text: string; created: boolean } {
  if (existsSync(path)) {
    const text = readFileSync(path, 'utf8').trim();
    parseSecretKey(text);
    return { text, created: false };
  }
  mkdirSync(dirname(path), { recursive: true });
  const text = randomBytes(32).toString('base64');
  writeFileSync(path, `${text}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
  return { text, created: true };
}
