// Apple Push Notification service: HTTP/2 to /3/device/<token>, authenticated with a
// provider token, a JWT signed with the team's .p8 key (ES256, `kid` the key id, `iss` the
// team id). Apple refuses a token older than an hour and throttles one renewed more often than
// every 20 minutes, so it is made again after 40 minutes (or at once on ExpiredProviderToken).
// One HTTP/2 session per process, opened again when the server closes it.
import { createHash, createPrivateKey, type KeyObject, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type ClientHttp2Session, connect, constants } from 'node:http2';

const TOKEN_TTL_MS = 40 * 60_000;

export interface ApnsConfig {
  /** https://api.push.apple.com, https://api.sandbox.push.apple.com (h2c only for local tests). */
  baseUrl: string;
  teamId: string;
  keyId: string;
  /** The .p8 key: PEM text or the path of the file. */
  key: string;
  /** The app's bundle id (apns-topic). */
  topic: string;
  timeoutMs: number;
  now: () => number;
}

export interface ApnsAnswer {
  status: number;
  /** Apple's `reason` (BadDeviceToken, Unregistered, TooManyRequests, ...). */
  reason?: string;
  apnsId?: string;
}

const b64url = (s: string | Buffer) => Buffer.from(s).toString('base64url');

/** The provider token for `nowMs` (ES256 in JOSE form: r || s, not DER). */
export function apnsProviderToken(key: KeyObject, teamId: string, keyId: string, nowMs: number): string {
  const head = b64url(JSON.stringify({ alg: 'ES256', kid: keyId }));
  const claims = b64url(JSON.stringify({ iss: teamId, iat: Math.floor(nowMs / 1000) }));
  const signature = sign('sha256', Buffer.from(`${head}.${claims}`), { key, dsaEncoding: 'ieee-p1363' });
  return `${head}.${claims}.${b64url(signature)}`;
}

/** A UUID made from the send key: the same send always carries the same apns-id. */
export function apnsIdOf(sendKey: string): string {
  const h = createHash('sha256').update(sendKey).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export class ApnsClient {
  private readonly key: KeyObject;
  private token?: { jwt: string; madeAt: number };
  private session?: ClientHttp2Session;

  constructor(private readonly cfg: ApnsConfig) {
    const pem = cfg.key.includes('-----BEGIN') ? cfg.key : readFileSync(cfg.key, 'utf8');
    this.key = createPrivateKey(pem);
    if (this.key.asymmetricKeyType !== 'ec') throw new Error('the APNs key must be an EC (P-256) .p8 key');
  }

  private providerToken(): string {
    const now = this.cfg.now();
    if (!this.token || now - this.token.madeAt > TOKEN_TTL_MS)
      this.token = { jwt: apnsProviderToken(this.key, this.cfg.teamId, this.cfg.keyId, now), madeAt: now };
    return this.token.jwt;
  }

  private connection(): ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const s = connect(this.cfg.baseUrl);
    s.on('error', () => {}); // surfaced on the request; the next send reconnects
    s.on('goaway', () => s.close());
    s.unref();
    this.session = s;
    return s;
  }

  /**
   * Sends one notification; a refused provider token is made again and the send tried once
   * more. `collapseId` (apns-collapse-id, ≤ 64 bytes): notifications with the same one replace
   * each other on the device, so a repeat of a send shows once.
   */
  async send(
    deviceToken: string,
    payload: object,
    sendKey: string,
    collapseId?: string,
  ): Promise<ApnsAnswer> {
    const first = await this.request(deviceToken, payload, sendKey, collapseId);
    if (
      first.status === 403 &&
      (first.reason === 'ExpiredProviderToken' || first.reason === 'InvalidProviderToken')
    ) {
      this.token = undefined;
      return this.request(deviceToken, payload, sendKey, collapseId);
    }
    return first;
  }

  private request(
    deviceToken: string,
    payload: object,
    sendKey: string,
    collapseId?: string,
  ): Promise<ApnsAnswer> {
    const body = Buffer.from(JSON.stringify(payload));
    return new Promise((resolve, reject) => {
      let req: ReturnType<ClientHttp2Session['request']>;
      try {
        req = this.connection().request({
          [constants.HTTP2_HEADER_METHOD]: 'POST',
          [constants.HTTP2_HEADER_PATH]: `/3/device/${encodeURIComponent(deviceToken)}`,
          authorization: `bearer ${this.providerToken()}`,
          'apns-topic': this.cfg.topic,
          'apns-push-type': 'alert',
          'apns-priority': '10',
          'apns-id': apnsIdOf(sendKey),
          ...(collapseId && Buffer.byteLength(collapseId) <= 64 ? { 'apns-collapse-id': collapseId } : {}),
          'content-type': 'application/json',
          'content-length': body.length,
        });
      } catch (err) {
        reject(err);
        return;
      }
      req.setTimeout(this.cfg.timeoutMs, () => req.close(constants.NGHTTP2_CANCEL));
      let status = 0;
      let apnsId: string | undefined;
      const chunks: Buffer[] = [];
      req.on('response', (h) => {
        status = Number(h[constants.HTTP2_HEADER_STATUS]);
        apnsId = typeof h['apns-id'] === 'string' ? h['apns-id'] : undefined;
      });
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('error', reject);
      req.on('close', () => {
        if (!status) return reject(new Error('APNs: no answer (timeout or connection closed)'));
        let reason: string | undefined;
        try {
          const r = chunks.length
            ? (JSON.parse(Buffer.concat(chunks).toString()) as { reason?: unknown }).reason
            : undefined;
          reason = typeof r === 'string' ? r : undefined;
        } catch {}
        resolve({ status, reason, apnsId });
      });
      req.end(body);
    });
  }

  close(): void {
    this.session?.close();
  }
}
