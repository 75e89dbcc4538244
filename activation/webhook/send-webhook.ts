// Delivers one signed webhook. Redirects are not followed (a redirect could point at an
// internal address); any answer outside 2xx is a failure, retriable for 408/429/5xx and
// network errors, final for the rest. One deadline covers the whole attempt (lookup,
// connect, headers and body): a receiver trickling its answer a byte at a time is cut off
// at the deadline, so no send outlives the claim that guards it.
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { parseRetryAfter } from '../channels/channel.ts';
import { type GuardPolicy, guardedLookup, type Resolve, refusal } from './address-guard.ts';
import { webhookHeaders } from './sign-webhook.ts';

export interface WebhookResult {
  ok: boolean;
  status: number;
  retriable: boolean;
  error?: string;
  latencyMs: number;
  /** The receiver's Retry-After on a failure, in ms (capped). */
  retryAfterMs?: number;
}

export interface WebhookRequest {
  url: string;
  secret: string;
  /** Idempotency id: the same for every attempt of one send. */
  id: string;
  body: string;
  timestampSeconds: number;
  /** W3C traceparent to send along (not signed: it names a trace, it carries no data). */
  traceparent?: string;
}

// Connections are kept alive and reused per destination. The address guard runs when a
// connection is made (its lookup), so a reused socket is one that already passed it.
const agents = {
  http: new HttpAgent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256, timeout: 30_000 }),
  https: new HttpsAgent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256, timeout: 30_000 }),
};

export function sendWebhook(
  req: WebhookRequest,
  policy: GuardPolicy & { timeoutMs: number; resolve?: Resolve },
): Promise<WebhookResult> {
  const started = performance.now();
  const done = (r: Omit<WebhookResult, 'latencyMs'>): WebhookResult => ({
    ...r,
    latencyMs: Math.round(performance.now() - started),
  });
  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    return Promise.resolve(done({ ok: false, status: 0, retriable: false, error: 'invalid URL' }));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return Promise.resolve(
      done({ ok: false, status: 0, retriable: false, error: `unsupported scheme ${url.protocol}` }),
    );
  // Literal IPs never reach the DNS lookup, so they are checked here. (The URL parser has
  // already turned decimal, octal and hex IPv4 forms into dotted quads.)
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) {
    const why = refusal(host, policy);
    if (why)
      return Promise.resolve(
        done({ ok: false, status: 0, retriable: false, error: `destination refused: ${why}` }),
      );
  }
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const headers = {
    ...webhookHeaders(req.secret, req.id, req.timestampSeconds, req.body),
    'content-length': String(Buffer.byteLength(req.body)),
    'user-agent': 'cdp-webhooks/0.1',
    ...(req.traceparent ? { traceparent: req.traceparent } : {}),
  };
  return new Promise((resolve) => {
    const r = request(
      url,
      {
        method: 'POST',
        headers,
        lookup: guardedLookup(policy, policy.resolve) as never,
        // idle socket timeout; the deadline below bounds the attempt as a whole
        timeout: policy.timeoutMs,
        agent: url.protocol === 'https:' ? agents.https : agents.http,
      },
      (res) => {
        res.resume();
        // an answer cut off mid-body (the deadline, a reset) is a transient failure
        res.on('error', (err) => settle(done({ ok: false, status: 0, retriable: true, error: err.message })));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const ok = status >= 200 && status < 300;
          const retryAfterMs = ok ? undefined : parseRetryAfter(res.headers['retry-after'], Date.now());
          settle(
            done({
              ok,
              status,
              ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
              retriable: !ok && (status === 408 || status === 429 || status >= 500),
              error: ok
                ? undefined
                : status >= 300 && status < 400
                  ? `HTTP ${status}: redirect to ${res.headers.location ?? '?'} not followed`
                  : `HTTP ${status}`,
            }),
          );
        });
      },
    );
    let settled = false;
    const settle = (result: WebhookResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve(result);
    };
    const deadline = setTimeout(() => {
      settle(
        done({ ok: false, status: 0, retriable: true, error: `deadline of ${policy.timeoutMs} ms passed` }),
      );
      // the socket is not reused: what is left of a half-read answer would be read as the next one
      r.destroy();
    }, policy.timeoutMs);
    r.on('timeout', () => r.destroy(new Error(`timed out after ${policy.timeoutMs} ms`)));
    r.on('error', (err: NodeJS.ErrnoException) =>
      settle(done({ ok: false, status: 0, retriable: err.code !== 'EDESTREFUSED', error: err.message })),
    );
    r.end(req.body);
  });
}
