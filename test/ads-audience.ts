// A local ads custom audience API for the destination tests, in the shape of Meta's
// Marketing API: POST /{version}/{audience_id}/users adds, DELETE removes, Bearer access
// token, JSON body `{payload: {schema: ["EMAIL_SHA256"] | ["PHONE_SHA256"], data: [[hash], …]}}`
// with 1..10,000 rows of 64 lower-case hex characters. It refuses what Meta refuses with
// Meta's error object (`{error: {message, type, code, error_subcode?, fbtrace_id}}`): an
// invalid token (OAuthException, code 190), an audience that does not exist (code 100,
// subcode 33), an invalid parameter (code 100), and it can throttle (code 80003, the
// custom-audience rate limit). Anything that looks like a raw identifier is noted in `raw`.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export interface AudienceRequest {
  at: number;
  method: string;
  status: number;
  schema?: string[];
  hashes: string[];
}

export async function audienceServer(o: {
  token: string;
  audienceId: string;
  /** The first n requests are answered with the rate-limit error (code 80003). */
  throttleFirst?: number;
  /** Retry-After (seconds) with a throttle. */
  retryAfterSeconds?: number;
  /** Answer this status to everything (after auth). */
  fail?: number;
}) {
  const members = new Set<string>();
  const requests: AudienceRequest[] = [];
  /** Bodies or URLs that carried something other than hashes (an @, a +, a digit run). */
  const raw: string[] = [];
  let throttle = o.throttleFirst ?? 0;

  const reply = (res: ServerResponse, status: number, body: unknown) => {
    res.statusCode = status;
    res.setHeader('content-type', 'application/json; charset=UTF-8');
    res.end(JSON.stringify(body));
  };
  const fbError = (message: string, type: string, code: number, extra: Record<string, unknown> = {}) => ({
    error: { message, type, code, ...extra, fbtrace_id: randomBytes(8).toString('base64url') },
  });

  const handle = (req: IncomingMessage, res: ServerResponse, text: string) => {
    const now = Date.now();
    const rec = (status: number, r: Partial<AudienceRequest> = {}) =>
      requests.push({ at: now, method: req.method ?? '', status, hashes: [], ...r });
    if (/@|%40/.test(req.url ?? '') || /@/.test(text)) raw.push(`${req.url} ${text.slice(0, 200)}`);
    if (/access_token=/.test(req.url ?? '')) raw.push(`token in URL: ${req.url}`);
    if (req.headers.authorization !== `Bearer ${o.token}`) {
      rec(400);
      return reply(
        res,
        400,
        fbError('Invalid OAuth access token - Cannot parse access token', 'OAuthException', 190),
      );
    }
    const m = /^\/(v[0-9]+\.[0-9]+)\/([0-9]+)\/users$/.exec(req.url ?? '');
    if (!m || (req.method !== 'POST' && req.method !== 'DELETE')) {
      rec(400);
      return reply(res, 400, fbError(`Unknown path components: ${req.url}`, 'OAuthException', 2500));
    }
    if (m[2] !== o.audienceId) {
      rec(400);
      return reply(
        res,
        400,
        fbError(
          `Unsupported post request. Object with ID '${m[2]}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.`,
          'GraphMethodException',
          100,
          { error_subcode: 33 },
        ),
      );
    }
    if (throttle > 0) {
      throttle--;
      rec(400);
      if (o.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(o.retryAfterSeconds));
      return reply(
        res,
        400,
        fbError(
          '(#80003) There have been too many calls to this ad-account. Wait a bit and try again.',
          'OAuthException',
          80003,
          { is_transient: true },
        ),
      );
    }
    if (o.fail) {
      rec(o.fail);
      return reply(
        res,
        o.fail,
        fbError('An unexpected error has occurred. Please retry your request later.', 'OAuthException', 2, {
          is_transient: true,
        }),
      );
    }
    const invalid = (why: string) => {
      rec(400);
      reply(res, 400, fbError(`(#100) ${why}`, 'OAuthException', 100));
    };
    if (!String(req.headers['content-type']).startsWith('application/json'))
      return invalid('Invalid content type');
    let body: { payload?: { schema?: unknown; data?: unknown } };
    try {
      body = JSON.parse(text);
    } catch {
      return invalid('Invalid JSON for postfield payload');
    }
    const schema = body?.payload?.schema;
    const data = body?.payload?.data;
    if (
      !Array.isArray(schema) ||
      schema.length !== 1 ||
      !['EMAIL_SHA256', 'PHONE_SHA256'].includes(schema[0])
    )
      return invalid('Invalid parameter: payload.schema');
    if (!Array.isArray(data) || data.length === 0)
      return invalid('Invalid parameter: payload.data must not be empty');
    if (data.length > 10_000) return invalid('Too many users in one request (at most 10000)');
    const hashes: string[] = [];
    for (const row of data) {
      if (!Array.isArray(row) || row.length !== 1 || typeof row[0] !== 'string')
        return invalid('Invalid parameter: payload.data rows match the schema');
      if (!/^[0-9a-f]{64}$/.test(row[0])) {
        raw.push(String(row[0]).slice(0, 100));
        return invalid('Invalid parameter: payload.data values must be SHA-256 hashes');
      }
      hashes.push(row[0]);
    }
    for (const h of hashes) req.method === 'POST' ? members.add(h) : members.delete(h);
    rec(200, { schema: schema as string[], hashes });
    reply(res, 200, {
      audience_id: o.audienceId,
      session_id: String(Date.now()),
      num_received: hashes.length,
      num_invalid_entries: 0,
      invalid_entry_samples: {},
    });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    members,
    requests,
    raw,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
