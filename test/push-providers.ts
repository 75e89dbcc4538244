// Local stand-ins for the push providers that check their documented contracts, not stubs
// that accept anything:
// - Google's OAuth token endpoint: the JWT bearer grant (RFC 7523) with an RS256 assertion
//   verified against the service account's public key, its iss/scope/aud/iat/exp claims;
// - FCM HTTP v1 messages:send: a bearer token it issued and that has not expired, the v1
//   message shape (data values strings), and its documented errors (UNREGISTERED 404,
//   INVALID_ARGUMENT 400, QUOTA_EXCEEDED 429 with Retry-After, UNAUTHENTICATED 401,
//   UNAVAILABLE 503 for a token the test asked to fail: failNext);
// - APNs over HTTP/2 (h2c on loopback): an ES256 provider token verified against the .p8
//   key's public half, `kid`, `iss`, an `iat` under an hour old, apns-topic/-push-type/-id,
//   the 64-hex device token, and Apple's errors (BadDeviceToken, Unregistered 410,
//   TooManyRequests 429, ExpiredProviderToken 403).
import { createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, verify } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer as createH2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';

const b64json = (s: string) => JSON.parse(Buffer.from(s, 'base64url').toString()) as Record<string, unknown>;
const read = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let s = '';
    req.on('data', (c) => {
      s += c;
    });
    req.on('end', () => resolve(s));
  });

/** A service account with a fresh RSA key, its token_uri set by the caller. */
export function serviceAccount(tokenUri: string, projectId = 'p1') {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    json: JSON.stringify({
      type: 'service_account',
      project_id: projectId,
      private_key_id: 'k1',
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      client_email: `cdp@${projectId}.iam.gserviceaccount.com`,
      token_uri: tokenUri,
    }),
    publicKey,
    clientEmail: `cdp@${projectId}.iam.gserviceaccount.com`,
  };
}

export async function startFcm(opts: { now: () => number; projectId?: string }) {
  const project = opts.projectId ?? 'p1';
  const issued = new Map<string, number>(); // access token → expiry (ms)
  const grants: Array<{ claims: Record<string, unknown> }> = [];
  const messages: Array<{ bearer: string; message: Record<string, unknown> }> = [];
  const refusedGrants: string[] = [];
  /** Every device token a well-formed, authenticated send was for, whatever the answer. */
  const attempts: string[] = [];
  /** token → how many more sends to it are answered 503 UNAVAILABLE */
  const failing = new Map<string, number>();
  let account: { publicKey: KeyObject; clientEmail: string } | undefined;
  let tokenUri = '';
  let n = 0;
  const server = createHttpServer(async (req, res) => {
    const body = await read(req);
    const send = (status: number, v: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(v));
    };
    if (req.method === 'POST' && req.url === '/token') {
      const form = new URLSearchParams(body);
      const refuse = (why: string) => {
        refusedGrants.push(why);
        send(400, { error: 'invalid_grant', error_description: why });
      };
      if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') return refuse('content type');
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer')
        return refuse('grant_type');
      const [h, c, s] = (form.get('assertion') ?? '').split('.');
      if (!h || !c || !s || !account) return refuse('assertion');
      if (b64json(h).alg !== 'RS256') return refuse('alg');
      if (!verify('RSA-SHA256', Buffer.from(`${h}.${c}`), account.publicKey, Buffer.from(s, 'base64url')))
        return refuse('signature');
      const claims = b64json(c);
      const now = Math.floor(opts.now() / 1000);
      if (claims.iss !== account.clientEmail) return refuse('iss');
      if (claims.aud !== tokenUri) return refuse('aud');
      if (claims.scope !== 'https://www.googleapis.com/auth/firebase.messaging') return refuse('scope');
      const iat = Number(claims.iat);
      const exp = Number(claims.exp);
      if (!(Math.abs(iat - now) <= 300 && exp > now && exp - iat <= 3600)) return refuse('iat/exp');
      grants.push({ claims });
      const token = `ya29.${randomBytes(12).toString('hex')}`;
      issued.set(token, opts.now() + 3600_000);
      return send(200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
    }
    if (req.method === 'POST' && req.url === `/v1/projects/${project}/messages:send`) {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      const exp = issued.get(bearer);
      if (exp === undefined || exp <= opts.now())
        return send(401, {
          error: {
            code: 401,
            message: 'Request had invalid authentication credentials.',
            status: 'UNAUTHENTICATED',
          },
        });
      let m: {
        message?: {
          token?: unknown;
          notification?: { title?: unknown; body?: unknown };
          data?: Record<string, unknown>;
        };
      };
      try {
        m = JSON.parse(body);
      } catch {
        return send(400, {
          error: { code: 400, status: 'INVALID_ARGUMENT', message: 'Invalid JSON payload received.' },
        });
      }
      const msg = m.message;
      // FCM refuses fields the v1 Message does not have, and checks the platform blocks' shapes
      const known = [
        'name',
        'data',
        'notification',
        'android',
        'webpush',
        'apns',
        'fcm_options',
        'token',
        'topic',
        'condition',
      ];
      const unknown = Object.keys(msg ?? {}).find((k) => !known.includes(k));
      if (unknown)
        return send(400, {
          error: {
            code: 400,
            status: 'INVALID_ARGUMENT',
            message: `Invalid JSON payload received. Unknown name "${unknown}" at 'message': Cannot find field.`,
          },
        });
      const android = (msg as { android?: { collapse_key?: unknown; notification?: { tag?: unknown } } })
        ?.android;
      const apnsHeaders = (msg as { apns?: { headers?: Record<string, unknown> } })?.apns?.headers;
      const platformOk =
        (android === undefined ||
          ((android.collapse_key === undefined || typeof android.collapse_key === 'string') &&
            (android.notification?.tag === undefined || typeof android.notification.tag === 'string'))) &&
        Object.values(apnsHeaders ?? {}).every((v) => typeof v === 'string') &&
        Buffer.byteLength(String(apnsHeaders?.['apns-collapse-id'] ?? '')) <= 64;
      if (!platformOk)
        return send(400, {
          error: {
            code: 400,
            status: 'INVALID_ARGUMENT',
            message: 'Invalid value at message.android or message.apns',
          },
        });
      const dataOk = Object.values(msg?.data ?? {}).every((v) => typeof v === 'string');
      if (!msg || typeof msg.token !== 'string' || !dataOk || typeof msg.notification?.title !== 'string')
        return send(400, {
          error: { code: 400, status: 'INVALID_ARGUMENT', message: 'Invalid value at message' },
        });
      attempts.push(msg.token);
      const fails = failing.get(msg.token) ?? 0;
      if (fails > 0) {
        failing.set(msg.token, fails - 1);
        return send(503, {
          error: { code: 503, status: 'UNAVAILABLE', message: 'The service is currently unavailable.' },
        });
      }
      if (msg.token === 'malformed')
        return send(400, {
          error: {
            code: 400,
            status: 'INVALID_ARGUMENT',
            message: 'The registration token is not a valid FCM registration token',
          },
        });
      if (msg.token === 'gone')
        return send(404, {
          error: {
            code: 404,
            status: 'NOT_FOUND',
            message: 'Requested entity was not found.',
            details: [
              { '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'UNREGISTERED' },
            ],
          },
        });
      if (msg.token === 'busy')
        return send(
          429,
          { error: { code: 429, status: 'RESOURCE_EXHAUSTED', details: [{ errorCode: 'QUOTA_EXCEEDED' }] } },
          { 'retry-after': '10' },
        );
      messages.push({ bearer, message: msg as Record<string, unknown> });
      return send(200, { name: `projects/${project}/messages/${++n}` });
    }
    send(404, { error: { code: 404, status: 'NOT_FOUND' } });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  tokenUri = `${url}/token`;
  const sa = serviceAccount(tokenUri, project);
  account = sa;
  return {
    url,
    serviceAccountJson: sa.json,
    grants,
    refusedGrants,
    messages,
    attempts,
    /** The next `times` sends to this device token are answered 503 UNAVAILABLE. */
    failNext: (token: string, times = 1) => failing.set(token, times),
    /** The provider forgets every token it issued (a revoked key, a rotated secret). */
    revokeAll: () => issued.clear(),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export async function startApns(opts: { now: () => number; teamId: string; keyId: string; topic: string }) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const pub = createPublicKey(publicKey.export({ type: 'spki', format: 'pem' }));
  const delivered: Array<{
    token: string;
    apnsId: string;
    collapseId?: string;
    jwt: string;
    payload: Record<string, unknown>;
  }> = [];
  const refused: string[] = [];
  /** provider tokens issued before this (ms) are refused as expired (Apple rotated trust) */
  let expireBefore = 0;
  const server = createH2Server();
  server.on('stream', (stream, headers) => {
    let body = '';
    stream.on('data', (c) => {
      body += c;
    });
    stream.on('end', () => {
      const answer = (status: number, reason?: string) => {
        if (reason) refused.push(reason);
        stream.respond({
          ':status': status,
          'apns-id': String(headers['apns-id'] ?? ''),
          'content-type': 'application/json',
        });
        stream.end(
          reason
            ? JSON.stringify({ reason, ...(status === 410 ? { timestamp: opts.now() } : {}) })
            : undefined,
        );
      };
      const jwt = /^bearer (.+)$/.exec(String(headers.authorization ?? ''))?.[1] ?? '';
      const [h, c, s] = jwt.split('.');
      if (!h || !c || !s) return answer(403, 'MissingProviderToken');
      const head = b64json(h);
      const claims = b64json(c);
      if (head.alg !== 'ES256' || head.kid !== opts.keyId) return answer(403, 'InvalidProviderToken');
      if (
        !verify(
          'sha256',
          Buffer.from(`${h}.${c}`),
          { key: pub, dsaEncoding: 'ieee-p1363' },
          Buffer.from(s, 'base64url'),
        )
      )
        return answer(403, 'InvalidProviderToken');
      if (claims.iss !== opts.teamId) return answer(403, 'InvalidProviderToken');
      const iatMs = Number(claims.iat) * 1000;
      if (opts.now() - iatMs > 3600_000 || iatMs < expireBefore) return answer(403, 'ExpiredProviderToken');
      if (headers[':method'] !== 'POST') return answer(405, 'MethodNotAllowed');
      const m = /^\/3\/device\/([^/]+)$/.exec(String(headers[':path']));
      if (!m) return answer(404, 'BadPath');
      if (headers['apns-topic'] !== opts.topic) return answer(400, 'DeviceTokenNotForTopic');
      if (headers['apns-push-type'] !== 'alert') return answer(400, 'InvalidPushType');
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(String(headers['apns-id'])))
        return answer(400, 'BadMessageId');
      const collapseId =
        headers['apns-collapse-id'] === undefined ? undefined : String(headers['apns-collapse-id']);
      if (collapseId !== undefined && Buffer.byteLength(collapseId) > 64) return answer(400, 'BadCollapseId');
      const token = m[1]!;
      if (!/^[0-9a-f]{64}$/.test(token)) return answer(400, 'BadDeviceToken');
      let payload: Record<string, unknown>;
      try {
        payload = JSON.parse(body) as Record<string, unknown>;
      } catch {
        return answer(400, 'PayloadEmpty');
      }
      if (!(payload.aps as { alert?: unknown } | undefined)?.alert) return answer(400, 'PayloadEmpty');
      if (token === 'b'.repeat(64)) return answer(410, 'Unregistered');
      if (token === 'd'.repeat(64)) return answer(429, 'TooManyRequests');
      delivered.push({ token, apnsId: String(headers['apns-id']), collapseId, jwt, payload });
      answer(200);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    keyPem: pem,
    delivered,
    refused,
    expireTokensBefore: (ms: number) => {
      expireBefore = ms;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
