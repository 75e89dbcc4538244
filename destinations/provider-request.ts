// One request to a built-in destination's provider API (HubSpot, …): like sendWebhook, the
// address guard runs on every connection, redirects are not followed and one deadline covers
// the whole attempt; unlike it, any method and headers, and the answer's headers and body are
// read (bounded: a provider's error text is kept, an endless answer is not).
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import {
  type GuardPolicy,
  guardedLookup,
  type Resolve,
  refusal,
} from '../activation/webhook/address-guard.ts';

/** What is read of an answer's body; the rest is dropped. */
export const MAX_ANSWER_BYTES = 256 * 1024;

export interface ProviderAnswer {
  /** 0 when no answer came (refused, network error, deadline). */
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  latencyMs: number;
  /** Why no answer came. */
  error?: string;
  /** A refusal by the address guard or an unusable URL: never worth a retry. */
  refused?: boolean;
}

const agents = {
  http: new HttpAgent({ keepAlive: true, maxSockets: 64, timeout: 30_000 }),
  https: new HttpsAgent({ keepAlive: true, maxSockets: 64, timeout: 30_000 }),
};

export function providerRequest(
  req: { url: string; method: string; headers: Record<string, string>; body?: string },
  policy: GuardPolicy & { timeoutMs: number; resolve?: Resolve },
): Promise<ProviderAnswer> {
  const started = performance.now();
  const done = (a: Omit<ProviderAnswer, 'latencyMs'>): ProviderAnswer => ({
    ...a,
    latencyMs: Math.round(performance.now() - started),
  });
  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    return Promise.resolve(done({ status: 0, headers: {}, body: '', error: 'invalid URL', refused: true }));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return Promise.resolve(
      done({ status: 0, headers: {}, body: '', error: `unsupported scheme ${url.protocol}`, refused: true }),
    );
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) {
    const why = refusal(host, policy);
    if (why)
      return Promise.resolve(
        done({ status: 0, headers: {}, body: '', error: `destination refused: ${why}`, refused: true }),
      );
  }
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const headers: Record<string, string> = {
    ...req.headers,
    'user-agent': 'cdp-destinations/0.1',
    ...(req.body !== undefined ? { 'content-length': String(Buffer.byteLength(req.body)) } : {}),
  };
  return new Promise((resolve) => {
    let settled = false;
    const settle = (a: ProviderAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve(a);
    };
    const r = request(
      url,
      {
        method: req.method,
        headers,
        lookup: guardedLookup(policy, policy.resolve) as never,
        timeout: policy.timeoutMs,
        agent: url.protocol === 'https:' ? agents.https : agents.http,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (size >= MAX_ANSWER_BYTES) return;
          chunks.push(c);
          size += c.length;
        });
        res.on('error', (err) => settle(done({ status: 0, headers: {}, body: '', error: err.message })));
        res.on('end', () =>
          settle(
            done({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString('utf8'),
            }),
          ),
        );
      },
    );
    const deadline = setTimeout(() => {
      settle(done({ status: 0, headers: {}, body: '', error: `deadline of ${policy.timeoutMs} ms passed` }));
      r.destroy();
    }, policy.timeoutMs);
    r.on('timeout', () => r.destroy(new Error(`timed out after ${policy.timeoutMs} ms`)));
    r.on('error', (err: NodeJS.ErrnoException) =>
      settle(
        done({
          status: 0,
          headers: {},
          body: '',
          error: err.message,
          ...(err.code === 'EDESTREFUSED' ? { refused: true } : {}),
        }),
      ),
    );
    r.end(req.body);
  });
}
