// Local stand-ins for the email providers' send APIs that check their documented contracts,
// not stubs that accept anything:
// - Amazon SES v2 SendEmail: the SigV4 signature recomputed with the `aws4` package (an
//   implementation independent of ours) from the signed headers and the body, the credential
//   scope (date, region, `ses`), a timestamp within 15 minutes; 403 UnrecognizedClientException /
//   SignatureDoesNotMatch / InvalidSignatureException; the SendEmail body (Content.Simple, tags);
//   MessageRejected for an unverified sender, TooManyRequestsException 429;
// - SendGrid v3 mail/send: a bearer key with the mail.send scope (401 unknown, 403 without the
//   scope), personalizations/from/subject/content (text/plain first), custom_args strings,
//   reserved headers refused, a verified sender (403), 429 with X-RateLimit-* headers, 202
//   with X-Message-Id;
// - Postmark /email: X-Postmark-Server-Token (401 ErrorCode 10), JSON content types, the
//   message fields, Metadata limits, the message stream (ErrorCode 1235), sender signatures
//   (ErrorCode 400), inactive recipients (ErrorCode 406), 429.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import aws4 from 'aws4';

const read = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let s = '';
    req.setEncoding('utf8');
    req.on('data', (c) => {
      s += c;
    });
    req.on('end', () => resolve(s));
  });

const reply = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body === undefined ? '' : JSON.stringify(body));
};

const addressOf = (s: string) => (/<([^>]+)>\s*$/.exec(s)?.[1] ?? s).trim().toLowerCase();
const EMAIL = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/;

async function listen(server: ReturnType<typeof createServer>) {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export async function startSes(opts: {
  now: () => number;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  verified: string[];
}) {
  const sent: Array<{ body: Record<string, unknown>; authorization: string; signedHeaders: string[] }> = [];
  const refused: string[] = [];
  let throttle = 0;
  let throttleAs = { status: 429, type: 'TooManyRequestsException' };
  let n = 0;
  const server = createServer(async (req, res) => {
    const body = await read(req);
    const error = (status: number, type: string, message: string) => {
      refused.push(type);
      reply(
        res,
        status,
        { message },
        { 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.coral.service/` },
      );
    };
    if (req.method !== 'POST' || req.url !== '/v2/email/outbound-emails')
      return error(404, 'NotFoundException', 'Resource not found');
    const auth = req.headers.authorization ?? '';
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(
        auth,
      );
    if (!m) return error(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
    const [, keyId, date, region, service, signedList, signature] = m as unknown as string[];
    if (keyId !== opts.accessKeyId)
      return error(
        403,
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
      );
    const signed = signedList!.split(';');
    const stamp = String(req.headers['x-amz-date'] ?? '');
    if (!signed.includes('host') || !signed.includes('x-amz-date') || !/^\d{8}T\d{6}Z$/.test(stamp))
      return error(403, 'SignatureDoesNotMatch', "'Host' and 'X-Amz-Date' must be signed");
    if (date !== stamp.slice(0, 8) || region !== opts.region || service !== 'ses')
      return error(403, 'SignatureDoesNotMatch', `Credential should be scoped to a valid region and service`);
    const at = Date.parse(stamp.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
    if (Math.abs(opts.now() - at) > 15 * 60_000)
      return error(
        403,
        'InvalidSignatureException',
        `Signature expired: ${stamp} is now earlier than allowed`,
      );
    // recompute with aws4 over exactly the headers the client signed
    const headers: Record<string, string> = {};
    for (const h of signed) headers[h] = String(req.headers[h] ?? '');
    const ignore: Record<string, boolean> = {};
    for (const h of ['content-type', 'content-length']) if (!signed.includes(h)) ignore[h] = true;
    const expected = aws4.sign(
      {
        host: String(req.headers.host),
        method: 'POST',
        path: req.url,
        service: 'ses',
        region: opts.region,
        headers,
        body,
        extraHeadersToIgnore: ignore,
      } as aws4.Request,
      { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey },
    );
    const want = /Signature=([0-9a-f]{64})/.exec(String(expected.headers?.Authorization))?.[1];
    const wantSigned = /SignedHeaders=([^,]+)/.exec(String(expected.headers?.Authorization))?.[1];
    if (want !== signature || wantSigned !== signedList)
      return error(
        403,
        'SignatureDoesNotMatch',
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      );
    if (throttle > 0) {
      throttle--;
      return error(throttleAs.status, throttleAs.type, 'Maximum sending rate exceeded.');
    }
    let b: {
      FromEmailAddress?: unknown;
      Destination?: { ToAddresses?: unknown };
      Content?: {
        Simple?: {
          Subject?: { Data?: unknown };
          Body?: { Text?: { Data?: unknown }; Html?: { Data?: unknown } };
          Headers?: unknown;
        };
      };
      EmailTags?: unknown;
    };
    try {
      b = JSON.parse(body);
    } catch {
      return error(400, 'BadRequestException', 'Invalid JSON');
    }
    const to = b.Destination?.ToAddresses;
    const simple = b.Content?.Simple;
    const headersOk =
      simple?.Headers === undefined ||
      (Array.isArray(simple.Headers) &&
        simple.Headers.every(
          (h: { Name?: unknown; Value?: unknown }) =>
            typeof h.Name === 'string' && typeof h.Value === 'string',
        ));
    const tagsOk =
      b.EmailTags === undefined ||
      (Array.isArray(b.EmailTags) &&
        b.EmailTags.every(
          (t: { Name?: unknown; Value?: unknown }) =>
            typeof t.Name === 'string' &&
            typeof t.Value === 'string' &&
            /^[A-Za-z0-9_.@-]{1,256}$/.test(t.Name) &&
            /^[A-Za-z0-9_.@-]{1,256}$/.test(t.Value),
        ));
    if (
      typeof b.FromEmailAddress !== 'string' ||
      !Array.isArray(to) ||
      to.length === 0 ||
      !to.every((a) => typeof a === 'string' && EMAIL.test(addressOf(a))) ||
      typeof simple?.Subject?.Data !== 'string' ||
      (typeof simple.Body?.Text?.Data !== 'string' && typeof simple.Body?.Html?.Data !== 'string') ||
      !headersOk ||
      !tagsOk
    )
      return error(400, 'BadRequestException', '1 validation error detected');
    if (!opts.verified.includes(addressOf(b.FromEmailAddress)))
      return error(
        400,
        'MessageRejected',
        `Email address is not verified. The following identities failed the check in region ${opts.region.toUpperCase()}: ${b.FromEmailAddress}`,
      );
    sent.push({ body: b as Record<string, unknown>, authorization: auth, signedHeaders: signed });
    reply(res, 200, { MessageId: `0100018c-${(++n).toString().padStart(8, '0')}-000000` });
  });
  return {
    url: await listen(server),
    sent,
    refused,
    /** The next n signed requests are throttled (429 TooManyRequestsException unless `as` says). */
    throttle: (k: number, as = { status: 429, type: 'TooManyRequestsException' }) => {
      throttle = k;
      throttleAs = as;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const RESERVED = new Set([
  'x-sg-id',
  'x-sg-eid',
  'received',
  'dkim-signature',
  'content-type',
  'content-transfer-encoding',
  'to',
  'from',
  'subject',
  'reply-to',
  'cc',
  'bcc',
]);

export async function startSendgrid(opts: { keys: Record<string, string[]>; verified: string[] }) {
  const sent: Array<{ body: Record<string, unknown>; messageId: string }> = [];
  const refused: Array<{ status: number; message: string }> = [];
  let throttle = 0;
  const server = createServer(async (req, res) => {
    const body = await read(req);
    const error = (
      status: number,
      message: string,
      field: string | null = null,
      h: Record<string, string> = {},
    ) => {
      refused.push({ status, message });
      reply(res, status, { errors: [{ message, field, help: null }] }, h);
    };
    if (req.method !== 'POST' || req.url !== '/v3/mail/send') return error(404, 'not found');
    const key = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const scopes = opts.keys[key];
    if (!scopes) return error(401, 'The provided authorization grant is invalid, expired, or revoked');
    if (!scopes.includes('mail.send')) return error(403, 'access forbidden');
    if (throttle > 0) {
      throttle--;
      return error(429, 'too many requests', null, {
        'x-ratelimit-limit': '600',
        'x-ratelimit-remaining': '0',
        'x-ratelimit-reset': String(Math.ceil(Date.now() / 1000) + 60),
      });
    }
    if (!/^application\/json/.test(req.headers['content-type'] ?? ''))
      return error(415, 'Content-Type should be application/json.');
    let b: {
      personalizations?: Array<{ to?: Array<{ email?: unknown }>; custom_args?: Record<string, unknown> }>;
      from?: { email?: unknown; name?: unknown };
      subject?: unknown;
      content?: Array<{ type?: unknown; value?: unknown }>;
      headers?: Record<string, unknown>;
    };
    try {
      b = JSON.parse(body);
    } catch {
      return error(400, 'Bad Request', null);
    }
    const p = b.personalizations;
    if (!Array.isArray(p) || p.length === 0 || p.length > 1000)
      return error(
        400,
        'The personalizations field is required and must have at least one personalization.',
        'personalizations',
      );
    for (const x of p) {
      if (
        !Array.isArray(x.to) ||
        x.to.length === 0 ||
        !x.to.every((t) => typeof t.email === 'string' && EMAIL.test(t.email))
      )
        return error(400, 'Does not contain a valid address.', 'personalizations.0.to.0.email');
      if (x.custom_args && !Object.values(x.custom_args).every((v) => typeof v === 'string'))
        return error(400, 'Invalid type. Expected: string, given: other.', 'personalizations.0.custom_args');
    }
    if (typeof b.from?.email !== 'string' || !EMAIL.test(b.from.email))
      return error(400, 'The from object must be provided for every email send.', 'from');
    if (typeof b.subject !== 'string' || b.subject === '')
      return error(400, 'The subject is required.', 'subject');
    const c = b.content;
    if (
      !Array.isArray(c) ||
      c.length === 0 ||
      !c.every((x) => typeof x.type === 'string' && typeof x.value === 'string')
    )
      return error(
        400,
        'Unless a valid template_id is provided, the content parameter is required.',
        'content',
      );
    const plain = c.findIndex((x) => x.type === 'text/plain');
    if (plain > 0) return error(400, 'If present, text/plain content must be first.', 'content');
    for (const [k, v] of Object.entries(b.headers ?? {})) {
      if (RESERVED.has(k.toLowerCase())) return error(400, `Header "${k}" is reserved.`, 'headers');
      if (typeof v !== 'string') return error(400, 'Invalid type. Expected: string.', 'headers');
    }
    if (!opts.verified.includes(b.from.email.toLowerCase()))
      return error(
        403,
        'The from address does not match a verified Sender Identity. Mail cannot be sent until this error is resolved.',
        'from',
      );
    const messageId = randomUUID().replace(/-/g, '').slice(0, 22);
    sent.push({ body: b as Record<string, unknown>, messageId });
    res.writeHead(202, { 'x-message-id': messageId });
    res.end();
  });
  return {
    url: await listen(server),
    sent,
    refused,
    throttle: (k: number) => {
      throttle = k;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export async function startPostmark(opts: {
  token: string;
  signatures: string[];
  streams: string[];
  inactive: string[];
}) {
  const sent: Array<{ body: Record<string, unknown>; messageId: string }> = [];
  const refused: Array<{ status: number; code: number }> = [];
  let throttle = 0;
  const server = createServer(async (req, res) => {
    const body = await read(req);
    const error = (status: number, code: number, message: string) => {
      refused.push({ status, code });
      reply(res, status, { ErrorCode: code, Message: message });
    };
    if (req.method !== 'POST' || req.url !== '/email') return error(404, 0, 'Not found');
    if (req.headers['x-postmark-server-token'] !== opts.token)
      return error(401, 10, 'Request does not contain a valid Server token.');
    if (
      !/^application\/json/.test(req.headers['content-type'] ?? '') ||
      !/application\/json/.test(req.headers.accept ?? '')
    )
      return error(415, 0, 'Unsupported Media Type: send and accept application/json');
    if (throttle > 0) {
      throttle--;
      return error(429, 0, 'Rate limit exceeded');
    }
    let b: Record<string, unknown>;
    try {
      b = JSON.parse(body) as Record<string, unknown>;
    } catch {
      return error(422, 402, 'Received invalid JSON input.');
    }
    const headers = b.Headers;
    const metadata = b.Metadata as Record<string, unknown> | undefined;
    if (
      typeof b.From !== 'string' ||
      typeof b.To !== 'string' ||
      !EMAIL.test(addressOf(b.To)) ||
      typeof b.Subject !== 'string' ||
      (typeof b.TextBody !== 'string' && typeof b.HtmlBody !== 'string') ||
      (headers !== undefined &&
        !(
          Array.isArray(headers) &&
          headers.every(
            (h: { Name?: unknown; Value?: unknown }) =>
              typeof h.Name === 'string' && typeof h.Value === 'string',
          )
        ))
    )
      return error(422, 300, 'Invalid email request');
    if (
      metadata !== undefined &&
      (Object.keys(metadata).length > 10 ||
        !Object.entries(metadata).every(
          ([k, v]) => k.length <= 20 && typeof v === 'string' && v.length <= 80,
        ))
    )
      return error(
        422,
        300,
        'Invalid metadata: at most 10 fields, names up to 20 and values up to 80 characters',
      );
    if (!opts.streams.includes(String(b.MessageStream ?? 'outbound')))
      return error(422, 1235, "The message stream for the provided 'ID' was not found.");
    if (!opts.signatures.includes(addressOf(b.From)))
      return error(
        422,
        400,
        "The 'From' address you supplied is not a Sender Signature on your account. Add and confirm this address in order to be able to use it in the 'From' field of your messages.",
      );
    if (opts.inactive.includes(addressOf(b.To)))
      return error(
        422,
        406,
        'You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: ' +
          `${b.To}. Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression.`,
      );
    const messageId = randomUUID();
    sent.push({ body: b, messageId });
    reply(res, 200, {
      To: b.To,
      SubmittedAt: new Date().toISOString(),
      MessageID: messageId,
      ErrorCode: 0,
      Message: 'OK',
    });
  });
  return {
    url: await listen(server),
    sent,
    refused,
    throttle: (k: number) => {
      throttle = k;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
