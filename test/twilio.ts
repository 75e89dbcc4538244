// A local Twilio Programmable Messaging API that checks what Twilio checks, for tests of the
// SMS channel: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, a form body, HTTP Basic
// with the account SID and auth token (401 code 20003 otherwise), `To` in E.164 (400 code
// 21211), `From` or `MessagingServiceSid` (21603), a `Body` (21602) of at most 1,600
// characters (21617), a StatusCallback that is an absolute http(s) URL (21609). A number on its
// opted-out list (it texted STOP) is 400 code 21610. It answers 201 with a Message resource
// (`sid` SM + 32 hex, `status` queued) in Twilio's JSON shape, and errors in Twilio's error
// shape {code, message, more_info, status}. Like Twilio, it has no idempotency for message
// creation: two requests are two messages. `failNext` makes the next answers throttling (429,
// code 20429, with Retry-After) or server errors.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';

export interface TwilioMessage {
  sid: string;
  to: string;
  from: string;
  body: string;
  statusCallback?: string;
  headers: IncomingHttpHeaders;
}

export interface TwilioRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
  /** When it arrived (epoch ms). */
  at: number;
}

const E164 = /^\+[1-9][0-9]{6,14}$/;

export async function startTwilio(opts: { accountSid: string; authToken: string }) {
  const messages: TwilioMessage[] = [];
  const requests: TwilioRequest[] = [];
  const optedOut = new Set<string>();
  const failures: Array<{ status: number; retryAfter?: string }> = [];
  const wantAuth = `Basic ${Buffer.from(`${opts.accountSid}:${opts.authToken}`).toString('base64')}`;

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const answer = (status: number, json: unknown, headers: Record<string, string> = {}) => {
        requests.push({ path: req.url ?? '', headers: req.headers, body, status, at: Date.now() });
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(json));
      };
      const error = (status: number, code: number, message: string, headers: Record<string, string> = {}) =>
        answer(
          status,
          { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status },
          headers,
        );
      const path = `/2010-04-01/Accounts/${opts.accountSid}/Messages.json`;
      if (req.method !== 'POST' || req.url !== path)
        return error(404, 20404, 'The requested resource was not found');
      if (req.headers.authorization !== wantAuth) return error(401, 20003, 'Authenticate');
      if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded'))
        return error(400, 20001, 'Unsupported content type');
      const f = failures.shift();
      if (f?.status === 429)
        return error(429, 20429, 'Too Many Requests', f.retryAfter ? { 'retry-after': f.retryAfter } : {});
      if (f) return error(f.status, 20500, 'Internal Server Error');
      const form = new URLSearchParams(body);
      const to = form.get('To') ?? '';
      const from = form.get('From') ?? '';
      const text = form.get('Body') ?? '';
      const callback = form.get('StatusCallback') ?? undefined;
      if (!E164.test(to)) return error(400, 21211, `Invalid 'To' Phone Number: ${to}`);
      if (!from && !form.get('MessagingServiceSid'))
        return error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message");
      if (!text && !form.get('MediaUrl')) return error(400, 21602, 'Message body is required.');
      if (text.length > 1600)
        return error(400, 21617, 'The concatenated message body exceeds the 1600 character limit.');
      if (callback !== undefined && !/^https?:\/\/[^\s/]+/.test(callback))
        return error(400, 21609, 'Invalid StatusCallback');
      if (optedOut.has(to)) return error(400, 21610, 'Attempt to send to unsubscribed recipient');
      const sid = `SM${randomBytes(16).toString('hex')}`;
      messages.push({ sid, to, from, body: text, statusCallback: callback, headers: req.headers });
      answer(201, {
        sid,
        account_sid: opts.accountSid,
        api_version: '2010-04-01',
        to,
        from,
        body: text,
        status: 'queued',
        num_segments: String(Math.max(1, Math.ceil(text.length / 153))),
        direction: 'outbound-api',
        date_created: new Date().toUTCString().replace('GMT', '+0000'),
        error_code: null,
        error_message: null,
        uri: `/2010-04-01/Accounts/${opts.accountSid}/Messages/${sid}.json`,
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    /** Messages Twilio accepted (each one reaches a phone). */
    messages,
    /** Every request with the status it got. */
    requests,
    /** Numbers that texted STOP at the carrier: sends to them are refused with 21610. */
    optOut: (phone: string) => optedOut.add(phone),
    /** The next answers fail: 429 (with an optional Retry-After in seconds) or a 5xx. */
    failNext: (...f: Array<{ status: number; retryAfter?: string }>) => failures.push(...f),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
