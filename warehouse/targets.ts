// Where an export's files go. Either way a file appears whole or not at all: a directory
// gets a temporary file, synced, then renamed into place (and the directory synced); a
// bucket gets one PUT (S3 stores an object only once its whole body arrived and matched the
// signed SHA-256). Writing the same key again replaces the file with the same content.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { signRequest } from '../activation/channels/sigv4.ts';
import { type GuardPolicy, guardedLookup, refusal } from '../activation/webhook/address-guard.ts';
import { type Keyring, open as openSealed } from '../runtime/secrets-key.ts';
import {
  directoryOf,
  type WarehouseExport,
  WarehouseInputError,
  warehouseAad,
} from '../schemas/warehouse.ts';

export interface Target {
  /** Stores `body` at `key` (a relative path with `/`), durably, before resolving. */
  put(key: string, body: Buffer): Promise<void>;
  /** Where files go, for logs: no secret in it. */
  readonly describe: string;
}

export function directoryTarget(dir: string): Target {
  return {
    describe: dir,
    async put(key, body) {
      const path = join(dir, ...key.split('/'));
      const parent = dirname(path);
      await mkdir(parent, { recursive: true });
      const tmp = join(parent, `.tmp-${randomBytes(6).toString('hex')}`);
      try {
        const fh = await open(tmp, 'w', 0o640);
        try {
          await fh.writeFile(body);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, path);
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => {});
        throw err;
      }
      const d = await open(parent, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    },
  };
}

/** An S3 endpoint URL as a definition may name it: http(s), no credentials, path or query. */
export function checkS3Endpoint(raw: string, policy: GuardPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WarehouseInputError('target.endpoint: not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new WarehouseInputError('target.endpoint: must be http or https');
  if (url.username || url.password)
    throw new WarehouseInputError('target.endpoint: credentials in the URL are not allowed');
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash)
    throw new WarehouseInputError(
      'target.endpoint: scheme, host and port only (the bucket is its own field)',
    );
  // a literal address is judged now; a name is resolved (and judged) at every connection
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) {
    const why = refusal(host, policy);
    if (why) throw new WarehouseInputError(`target.endpoint: refused: ${why}`);
  }
  return url;
}

const MAX_ERROR_BODY = 4096;
/** S3's error answer: its <Code> and <Message>, bounded and printable, never the whole body. */
const s3Error = (status: number, body: string) => {
  const pick = (tag: string) =>
    new RegExp(`<${tag}>([^<]{0,200})</${tag}>`).exec(body)?.[1]?.replace(/[^\x20-\x7e]/g, '?');
  const code = pick('Code');
  const msg = pick('Message');
  return `S3 answered ${status}${code ? ` ${code}` : ''}${msg ? `: ${msg}` : ''}`;
};

export function s3Target(
  def: WarehouseExport,
  opts: { secrets: Keyring; policy: GuardPolicy; timeoutMs?: number; now?: () => number },
): Target {
  const t = def.target;
  if (t.kind !== 's3') throw new Error('not an s3 target');
  const endpoint = checkS3Endpoint(t.endpoint, opts.policy);
  // opened on every use, so a rotated CDP_SECRETS_KEY is picked up without a restart
  const secret = () => openSealed(opts.secrets, t.secretAccessKey, warehouseAad(def.workspaceId, def.id));
  const lookup = guardedLookup(opts.policy);
  const prefix = t.prefix ? `${t.prefix.replace(/\/$/, '')}/` : '';
  const now = opts.now ?? Date.now;
  return {
    describe: `${endpoint.origin}/${t.bucket}/${prefix}`,
    async put(key, body) {
      // path-style addressing (works with any S3-compatible server). Bucket, prefix and key are
      // letters, digits and `._-=/` only, so the URL carries them as they are and the signer
      // encodes each segment once, as S3's canonical request wants.
      const path = `/${t.bucket}/${prefix}${key}`;
      const url = new URL(path, endpoint);
      const headers = signRequest(
        {
          method: 'PUT',
          url,
          headers: {
            'content-type': 'application/vnd.apache.parquet',
            'content-length': String(body.length),
            'x-amz-content-sha256': createHash('sha256').update(body).digest('hex'),
          },
          // the signer hashes the payload it is given; the bytes are what it hashes
          body: body as unknown as string,
          service: 's3',
          region: t.region,
          nowMs: now(),
        },
        { accessKeyId: t.accessKeyId, secretAccessKey: secret() },
      );
      await new Promise<void>((resolvePut, reject) => {
        const mod = url.protocol === 'https:' ? https : http;
        const req = mod.request(
          url,
          { method: 'PUT', headers, lookup: lookup as never, timeout: opts.timeoutMs ?? 30_000 },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              if (text.length < MAX_ERROR_BODY) text += chunk.slice(0, MAX_ERROR_BODY - text.length);
            });
            res.on('end', () => {
              const status = res.statusCode ?? 0;
              if (status >= 200 && status < 300) resolvePut();
              else reject(new Error(s3Error(status, text)));
            });
            res.on('error', reject);
          },
        );
        req.on('timeout', () => req.destroy(new Error('S3 PUT timed out')));
        req.on('error', reject);
        req.end(body);
      });
    },
  };
}

export function targetOf(
  def: WarehouseExport,
  opts: { root: string; secrets: Keyring; policy: GuardPolicy },
): Target {
  if (def.target.kind === 'directory')
    return directoryTarget(directoryOf(opts.root, def.workspaceId, def.target.path));
  return s3Target(def, opts);
}
