// Per-workspace channel credentials in activation. Precedence for a send of workspace W on
// email, SMS or push: W's stored credentials (PUT /v1/channels/{channel}/credentials) when
// there are any, else the deployment's (CDP_* env). Stored credentials that do not open
// (tampered, copied from elsewhere, sealed with a key this process lacks) never fall back to
// the deployment's: the send fails as retriable `credentials unreadable: ...` (retried with
// backoff, then a replayable dead letter once the key or the credentials are put right).
//
// No Redis read per send: a watcher reads the change counter every CDP_CHANNEL_CREDENTIALS_POLL_MS
// (one GET) and, when it moved, every record (one HGETALL), opening each once. A workspace's
// channel is built on its first send and built again when its credentials' digest changes; the
// one it replaces is closed a while later, when sends under way on it are done.
// Endpoints (provider base URLs, the SES endpoint) stay the deployment's.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import {
  type ChannelCredentialStore,
  type ChannelCredentials,
  GOOGLE_TOKEN_URI,
  parseSmtpUrl,
  type SmtpTarget,
  type StoredCredentials,
} from '../../runtime/channel-credentials.ts';
import type { ChannelsConfig } from '../../runtime/config.ts';
import type { Logger } from '../../runtime/log.ts';
import type { ChannelName } from '../../schemas/campaign.ts';
import { type GuardPolicy, refusal } from '../webhook/address-guard.ts';
import type { Channel, Channels, SendResult } from './channel.ts';
import { refused } from './channel.ts';
import { emailChannel } from './email.ts';
import { pushChannel } from './push.ts';
import { smsChannel } from './sms.ts';

export interface CredentialWatcher {
  /** The workspace's stored credentials for a channel as last read; undefined: none. */
  get(workspaceId: string, channel: ChannelName): StoredCredentials | undefined;
  /** Reads again now if the change counter moved (tests, and the first load). */
  refresh(): Promise<void>;
  stop(): void;
}

export async function watchChannelCredentials(opts: {
  store: ChannelCredentialStore;
  pollMs: number;
  log: Logger;
}): Promise<CredentialWatcher> {
  const { store, log } = opts;
  let rev: string | undefined;
  let records = new Map<string, StoredCredentials>();
  let loading: Promise<void> | undefined;
  const load = async () => {
    const r = await store.revision();
    if (r === rev) return;
    const next = new Map<string, StoredCredentials>();
    for (const s of await store.all()) {
      const k = `${s.workspaceId}:${s.channel}`;
      next.set(k, s);
      const was = records.get(k);
      if (!s.readable && (!was || was.readable || was.error !== s.error || was.updatedAt !== s.updatedAt))
        log.error(
          { workspaceId: s.workspaceId, channel: s.channel, keyId: s.keyId, err: s.error },
          'channel_credentials_unreadable',
        );
    }
    records = next;
    rev = r;
  };
  const refresh = () => {
    loading ??= load().finally(() => {
      loading = undefined;
    });
    return loading;
  };
  await refresh();
  const timer = setInterval(() => {
    refresh().catch((err) => log.warn({ err: (err as Error).message }, 'channel_credentials_poll_failed'));
  }, opts.pollMs);
  timer.unref();
  return {
    get: (ws, channel) => records.get(`${ws}:${channel}`),
    refresh,
    stop: () => clearInterval(timer),
  };
}

/**
 * A workspace's SMTP server is a destination a tenant chose: like a webhook's, it must not be
 * loopback or private unless the deployment allows it (CDP_WEBHOOK_ALLOW_LOOPBACK / _PRIVATE).
 * Checked on the resolved addresses before a send, the verdict kept a minute; the send then
 * goes to the address that was checked (`connect(address)`), never to a name resolved again
 * (DNS rebinding). `shape` gives the channel's name and recipient rule.
 */
export function guardSmtpHost(
  shape: Channel,
  target: SmtpTarget,
  policy: GuardPolicy,
  connect: (address: string) => Channel,
  resolve: (host: string) => Promise<string[]> = async (h) =>
    (await lookup(h, { all: true })).map((a) => a.address),
): Channel {
  const host = target.hostname;
  let verdict: { at: number; address?: string; why?: string } | undefined;
  let conn: { address: string; channel: Channel } | undefined;
  const replaced = new Set<Channel>();
  return {
    ...shape,
    async send(req) {
      if (!verdict || Date.now() - verdict.at > 60_000) {
        let addresses: string[];
        try {
          addresses = isIP(host) ? [host] : await resolve(host);
          if (addresses.length === 0) throw new Error('no address');
        } catch (err) {
          return {
            ok: false,
            status: 0,
            retriable: true,
            error: `SMTP host ${host}: ${(err as Error).message}`,
            latencyMs: 0,
          };
        }
        const why = addresses.map((a) => refusal(a, policy)).find((w) => w !== undefined);
        verdict = { at: Date.now(), address: addresses[0], why };
      }
      if (verdict.why) return refused(`SMTP server refused: ${host} resolves to a ${verdict.why}`);
      const address = verdict.address!;
      if (conn?.address !== address) {
        // the name moved: sends under way on the old address finish there, then it closes
        const old = conn?.channel;
        if (old) {
          replaced.add(old);
          setTimeout(() => {
            replaced.delete(old);
            old.close?.().catch(() => {});
          }, 60_000).unref();
        }
        conn = { address, channel: connect(address) };
      }
      return conn.channel.send(req);
    },
    async close() {
      await conn?.channel.close?.().catch(() => {});
      for (const ch of replaced) await ch.close?.().catch(() => {});
      replaced.clear();
    },
  };
}

/**
 * nodemailer's options for a checked SMTP server: connect to `address`, verify TLS against
 * the host name; nothing else (no proxy, logger, debug or TLS options from anywhere).
 */
export function smtpOptions(t: SmtpTarget, address: string, timeoutMs: number): Record<string, unknown> {
  return {
    host: address,
    port: t.port,
    secure: t.secure,
    ...(t.user !== undefined ? { auth: { user: t.user, pass: t.pass ?? '' } } : {}),
    // SNI and certificate checks against the name the workspace gave, not the address
    ...(isIP(t.hostname) ? {} : { tls: { servername: t.hostname } }),
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
  };
}

/** A channel that sends with a workspace's own credentials; the deployment's endpoints. */
export function channelForCredentials(
  cfg: ChannelsConfig,
  c: ChannelCredentials,
  guard: GuardPolicy = { allowLoopback: false, allowPrivate: false },
  /** How an SMTP host name is resolved (tests); default: the system resolver. */
  resolve?: (host: string) => Promise<string[]>,
): Channel {
  const timeoutMs = cfg.timeoutMs;
  if (c.channel === 'sms')
    // status callbacks to the ingest host, which checks them with this account's token too
    return smsChannel({
      baseUrl: cfg.sms.baseUrl,
      ...c.creds,
      timeoutMs,
      statusCallbackBase: cfg.sms.workspaceCallbackBase ?? '',
    });
  if (c.channel === 'email') {
    const e = c.creds;
    switch (e.provider) {
      case 'smtp': {
        const t = parseSmtpUrl(e.url);
        if ('error' in t) throw new Error(t.error);
        return guardSmtpHost(
          emailChannel({ from: e.from, timeoutMs }),
          t.ok,
          guard,
          (address) => emailChannel({ smtp: smtpOptions(t.ok, address, timeoutMs), from: e.from, timeoutMs }),
          resolve,
        );
      }
      case 'ses':
        return emailChannel({
          provider: 'ses',
          from: e.from,
          timeoutMs,
          ses: {
            region: e.region,
            accessKeyId: e.accessKeyId,
            secretAccessKey: e.secretAccessKey,
            sessionToken: e.sessionToken ?? '',
            endpoint: cfg.email.ses.endpoint,
          },
        });
      case 'sendgrid':
        return emailChannel({
          provider: 'sendgrid',
          from: e.from,
          timeoutMs,
          sendgrid: { apiKey: e.apiKey, baseUrl: cfg.email.sendgrid.baseUrl },
        });
      case 'postmark':
        return emailChannel({
          provider: 'postmark',
          from: e.from,
          timeoutMs,
          postmark: {
            serverToken: e.serverToken,
            baseUrl: cfg.email.postmark.baseUrl,
            messageStream: e.messageStream ?? cfg.email.postmark.messageStream,
          },
        });
    }
  }
  const p = c.creds;
  // stored values are JSON / PEM text, checked when they were put: never a file path
  if (p.provider === 'apns')
    return pushChannel({
      provider: 'apns',
      baseUrl: cfg.push.baseUrl,
      project: '',
      token: '',
      apns: { url: cfg.push.apns.url, teamId: p.teamId, keyId: p.keyId, key: p.key, topic: p.topic },
      timeoutMs,
    });
  // stored before token_uri was pinned: not sent to another endpoint
  const tokenUri = (JSON.parse(p.serviceAccount) as { token_uri?: unknown }).token_uri;
  if (tokenUri !== GOOGLE_TOKEN_URI) throw new Error(`serviceAccount.token_uri: must be ${GOOGLE_TOKEN_URI}`);
  return pushChannel({
    provider: 'fcm',
    baseUrl: cfg.push.baseUrl,
    project: '',
    token: '',
    serviceAccount: p.serviceAccount,
    timeoutMs,
  });
}

const unreadable = (error: string): SendResult => ({
  ok: false,
  status: 0,
  retriable: true,
  error,
  latencyMs: 0,
});

/** Credentials that open but cannot be used (fail the same way every time): final. */
const unusable = (error: string): SendResult => ({
  ok: false,
  status: 0,
  retriable: false,
  error: `credentials unusable: ${error}`,
  latencyMs: 0,
});

/**
 * `defaults` (the deployment's channels) with email, SMS and push sending through a
 * workspace's own credentials where it has them. `retireAfterMs`: how long a replaced
 * channel stays open for the sends under way on it.
 */
export function withWorkspaceCredentials(
  defaults: Channels,
  watcher: CredentialWatcher,
  build: (c: ChannelCredentials) => Channel,
  opts: { retireAfterMs: number; log: Logger },
): Channels {
  const built = new Map<
    string,
    { digest: string; channel: Channel } | { digest: string; unusable: string }
  >();
  const retiring = new Set<Channel>();
  const retire = (ch: Channel) => {
    retiring.add(ch);
    setTimeout(() => {
      retiring.delete(ch);
      ch.close?.().catch(() => {});
    }, opts.retireAfterMs).unref();
  };
  /** The channel a workspace sends with now: its own (built once per change), else the deployment's. */
  const current = (base: Channel, ws: string): Channel | { unreadable: string } | { unusable: string } => {
    const s = watcher.get(ws, base.name);
    if (!s) return base;
    if (!s.readable) return { unreadable: s.error };
    const k = `${ws}:${base.name}`;
    let b = built.get(k);
    if (!b || b.digest !== s.digest) {
      if (b && 'channel' in b) retire(b.channel);
      try {
        b = { digest: s.digest, channel: build(s.credentials) };
        opts.log.info({ workspaceId: ws, channel: base.name, keyId: s.keyId }, 'channel_credentials_applied');
      } catch (err) {
        // never a throw out of send: one workspace's bad record must not stall a partition
        b = { digest: s.digest, unusable: String((err as Error)?.message ?? err).slice(0, 300) };
        opts.log.error(
          { workspaceId: ws, channel: base.name, keyId: s.keyId, err: b.unusable },
          'channel_credentials_unusable',
        );
      }
      built.set(k, b);
    }
    return 'channel' in b ? b.channel : { unusable: b.unusable };
  };
  const wrap = (base: Channel): Channel => ({
    name: base.name,
    recipient: (c, change) => base.recipient(c, change),
    // push: the devices the workspace's own provider can reach (APNs and FCM differ)
    devicesFor(devices, ws) {
      const ch = current(base, ws);
      // the send fails `credentials unreadable` / `unusable` anyway
      if ('unreadable' in ch || 'unusable' in ch) return devices;
      return ch.devicesFor ? ch.devicesFor(devices, ws) : devices;
    },
    async send(req) {
      const ch = current(base, req.campaign.workspaceId);
      if ('unreadable' in ch) return unreadable(ch.unreadable);
      if ('unusable' in ch) return unusable(ch.unusable);
      return ch.send(req);
    },
    async close() {
      // the deployment's channel, and every workspace's built or being retired
      await base.close?.();
      for (const [k, b] of built)
        if (k.endsWith(`:${base.name}`)) {
          built.delete(k);
          if ('channel' in b) await b.channel.close?.().catch(() => {});
        }
      for (const ch of retiring)
        if (ch.name === base.name) {
          retiring.delete(ch);
          await ch.close?.().catch(() => {});
        }
    },
  });
  return {
    webhook: defaults.webhook,
    email: wrap(defaults.email),
    sms: wrap(defaults.sms),
    push: wrap(defaults.push),
  };
}
