// AWS Signature Version 4 for one request (header form, not presigned URLs), as documented in
// "Create a signed AWS API request": a canonical request (method, URI-encoded path, sorted
// query, lowercased sorted headers, the signed header list, the payload's SHA-256), a string
// to sign (algorithm, timestamp, credential scope, the canonical request's hash) and the
// signing key derived by HMAC from the secret through date, region, service and
// `aws4_request`. Checked against AWS's published test vector and the `aws4` package.
import { createHash, createHmac } from 'node:crypto';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SignInput {
  method: string;
  url: URL;
  /** Header names in any case; `host` and `x-amz-date` are added. */
  headers: Record<string, string>;
  body: string;
  service: string;
  region: string;
  nowMs: number;
}

const sha256hex = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const hmac = (key: string | Buffer, s: string) => createHmac('sha256', key).update(s).digest();

/** RFC 3986 encoding as SigV4 wants it: unreserved characters as they are, the rest %XX uppercase. */
export const uriEncode = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** `20150830T123600Z` */
export const amzDate = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');

export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

export function canonicalRequest(method: string, url: URL, headers: Record<string, string>, body: string) {
  // non-S3 services: each path segment is encoded twice (once in the URL, once here)
  const path =
    url.pathname === ''
      ? '/'
      : url.pathname
          .split('/')
          .map((seg) => uriEncode(seg))
          .join('/');
  const query = [...url.searchParams]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const names = Object.keys(headers)
    .map((h) => h.toLowerCase())
    .sort();
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const canonicalHeaders = names
    .map((n) => `${n}:${String(lower[n]).trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const signedHeaders = names.join(';');
  return {
    text: [method.toUpperCase(), path, query, canonicalHeaders, signedHeaders, sha256hex(body)].join('\n'),
    signedHeaders,
  };
}

/** The headers to send: the caller's, plus host, x-amz-date, the session token and Authorization. */
export function signRequest(input: SignInput, creds: AwsCredentials): Record<string, string> {
  const stamp = amzDate(input.nowMs);
  const date = stamp.slice(0, 8);
  const headers: Record<string, string> = {
    ...input.headers,
    host: input.url.host,
    'x-amz-date': stamp,
    ...(creds.sessionToken ? { 'x-amz-security-token': creds.sessionToken } : {}),
  };
  const { text, signedHeaders } = canonicalRequest(input.method, input.url, headers, input.body);
  const scope = `${date}/${input.region}/${input.service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', stamp, scope, sha256hex(text)].join('\n');
  const signature = createHmac('sha256', signingKey(creds.secretAccessKey, date, input.region, input.service))
    .update(toSign)
    .digest('hex');
  return {
    ...headers,
    authorization: `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  };
}
