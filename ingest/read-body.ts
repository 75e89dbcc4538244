// Reads a request body the way tracking SDKs send it: JSON as application/json or as
// text/plain (the browser SDK's way to skip the CORS preflight), optionally gzip-encoded.
// Sizes are checked before and after decompression, so a gzip bomb stops at the limit.
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { createGunzip } from 'node:zlib';
import { IngestError } from './ingest-error.ts';

export const MAX_BODY_BYTES = 500 * 1024;

// application/x-www-form-urlencoded: @rudderstack/rudder-sdk-node posts its gzipped JSON as a Buffer
// through axios, which labels it so; the body is still JSON (a real form body fails as such).
const JSON_TYPES = new Set(['application/json', 'text/plain', 'application/x-www-form-urlencoded', '']);

/**
 * Where a body comes from: the web Request (any runtime), or, under @hono/node-server, the
 * Node request itself. Reading the Node stream directly skips building a web Request, its
 * AbortSignal and a ReadableStream per call, which cost about as much as the rest of a
 * single-event request.
 */
export type BodySource = Request | IncomingMessage;

const header = (src: BodySource, name: string): string | null => {
  if (src instanceof Request) return src.headers.get(name);
  const v = src.headers[name];
  return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
};

export async function readJsonBody(src: BodySource, maxBytes = MAX_BODY_BYTES): Promise<unknown> {
  const type = (header(src, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (!JSON_TYPES.has(type))
    throw new IngestError(415, `unsupported content type "${type}": send application/json`);
  const declared = Number(header(src, 'content-length') ?? '0');
  if (declared > maxBytes) throw new IngestError(413, `request body over ${maxBytes} bytes`);

  const encoding = (header(src, 'content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity' && encoding !== 'gzip')
    throw new IngestError(415, `unsupported content encoding "${encoding}": send gzip or none`);

  const raw =
    src instanceof Request ? await readLimited(src, maxBytes) : await readNodeLimited(src, maxBytes);
  const bytes = encoding === 'gzip' ? await gunzipLimited(raw, maxBytes) : raw;
  if (bytes.length === 0) throw new IngestError(400, 'empty body: send a JSON object');
  if (!isUtf8(bytes)) throw new IngestError(400, 'body is not valid UTF-8');
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new IngestError(400, `malformed JSON: ${(err as Error).message}`);
  }
}

/**
 * A body's bytes as sent (no content encoding), at most `maxBytes`: over it, a 413. For
 * bodies that are not JSON (HTML form posts).
 */
export async function readRawBody(src: BodySource, maxBytes: number): Promise<Buffer> {
  const declared = Number(header(src, 'content-length') ?? '0');
  if (declared > maxBytes) throw new IngestError(413, `request body over ${maxBytes} bytes`);
  const encoding = (header(src, 'content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity') throw new IngestError(415, `unsupported content encoding "${encoding}"`);
  return src instanceof Request ? readLimited(src, maxBytes) : readNodeLimited(src, maxBytes);
}

/** The Node request's body, counted as it streams; over the limit: 413 and the rest is dropped. */
function readNodeLimited(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      if (err) {
        req.resume(); // drain what is left so the connection can answer
        reject(err);
      } else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    };
    const onData = (c: Buffer) => {
      total += c.length;
      if (total > maxBytes) finish(new IngestError(413, `request body over ${maxBytes} bytes`));
      else chunks.push(c);
    };
    const onEnd = () => finish(null);
    const onError = (err: Error) => finish(new IngestError(400, `request body: ${err.message}`));
    if (req.readableEnded) return resolve(Buffer.alloc(0));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

async function readLimited(req: Request, maxBytes: number): Promise<Buffer> {
  if (!req.body) return Buffer.alloc(0);
  // With a declared length (already checked against the limit) the framing bounds the
  // body: read it in one go. Chunked bodies are counted as they stream.
  if (req.headers.get('content-length') !== null && req.headers.get('transfer-encoding') === null) {
    const buf = Buffer.from(await req.arrayBuffer());
    if (buf.length > maxBytes) throw new IngestError(413, `request body over ${maxBytes} bytes`);
    return buf;
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new IngestError(413, `request body over ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

function gunzipLimited(input: Buffer, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const gz = createGunzip();
    const chunks: Buffer[] = [];
    let total = 0;
    gz.on('data', (c: Buffer) => {
      total += c.length;
      if (total > maxBytes) {
        gz.destroy();
        reject(new IngestError(413, `decompressed body over ${maxBytes} bytes`));
      } else chunks.push(c);
    });
    gz.on('end', () => resolve(Buffer.concat(chunks)));
    gz.on('error', () => reject(new IngestError(400, 'body is not valid gzip')));
    gz.end(input);
  });
}
