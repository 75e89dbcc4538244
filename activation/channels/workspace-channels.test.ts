// The per-workspace channel cache: built once per credentials digest, rebuilt on a change
// (the replaced one closed later), unreadable credentials a retriable failure that never
// reaches the deployment's channel, a workspace's SMTP host checked like a webhook's and the
// send made to the address checked, and stored credentials that cannot be built a final failure.
import { SMTPServer } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import {
  type ChannelCredentials,
  parseSmtpUrl,
  type StoredCredentials,
} from '../../runtime/channel-credentials.ts';
import type { ChannelsConfig } from '../../runtime/config.ts';
import type { CampaignDefinition } from '../../schemas/campaign.ts';
import { change } from '../../test/activation-peers.ts';
import type { GuardPolicy } from '../webhook/address-guard.ts';
import type { Channel, Channels, PushDevice, SendRequest, SendResult } from './channel.ts';
import {
  type CredentialWatcher,
  channelForCredentials,
  guardSmtpHost,
  smtpOptions,
  withWorkspaceCredentials,
} from './workspace-channels.ts';

const silent = { info() {}, warn() {}, error() {} } as never;
const OK: SendResult = { ok: true, status: 201, retriable: false, latencyMs: 1 };

function fakeChannel(name: Channel['name'], sent: string[], closed?: string[]): Channel {
  return {
    name,
    recipient: () => 'r',
    async send(req) {
      sent.push(`${name}:${req.campaign.workspaceId}`);
      return OK;
    },
    async close() {
      closed?.push(name);
    },
  };
}

const req = (ws: string): SendRequest =>
  ({
    campaign: { workspaceId: ws, id: 'c' } as CampaignDefinition,
    sendKey: 'k',
    recipient: 'r',
  }) as SendRequest;

const sms = (token: string, digest: string): StoredCredentials => ({
  readable: true,
  workspaceId: 'A',
  channel: 'sms',
  credentials: { channel: 'sms', creds: { accountSid: 'AC1', authToken: token, from: '+1555' } },
  keyId: 'k1',
  updatedAt: '',
  updatedBy: '',
  digest,
});

/** A full email send request (the SMTP tests send through a real nodemailer transport). */
function emailReq(to: string): SendRequest {
  const at = new Date().toISOString();
  return {
    campaign: {
      id: 'cmp_ws_smtp',
      workspaceId: 'A',
      name: 'Own SMTP',
      segmentId: 'seg',
      on: 'enter',
      channel: 'email',
      email: { subject: 'Hi', text: 'Hello' },
      status: 'active',
      version: 1,
      createdAt: at,
      updatedAt: at,
    },
    change: change('A', 'seg', `p-${to}`, { email: to }),
    sendKey: `sk-${to}`,
    recipient: to,
    unsubscribeUrl: 'http://127.0.0.1:8081/v1/unsubscribe?token=t0k',
    nowMs: Date.now(),
  };
}

describe('workspace channels', () => {
  it('builds once per digest, rebuilds on a change, falls back only when nothing is stored', async () => {
    const envSent: string[] = [];
    const defaults = Object.fromEntries(
      (['webhook', 'email', 'sms', 'push'] as const).map((n) => [n, fakeChannel(n, envSent)]),
    ) as Channels;
    const stored = new Map<string, StoredCredentials>();
    const watcher: CredentialWatcher = {
      get: (ws, ch) => stored.get(`${ws}:${ch}`),
      refresh: async () => {},
      stop() {},
    };
    const builds: string[] = [];
    const wsSent: string[] = [];
    const closed: string[] = [];
    const channels = withWorkspaceCredentials(
      defaults,
      watcher,
      (c: ChannelCredentials) => {
        builds.push(c.channel === 'sms' ? c.creds.authToken : c.channel);
        return fakeChannel(c.channel, wsSent, closed);
      },
      { retireAfterMs: 30, log: silent },
    );
    stored.set('A:sms', sms('t1', 'd1'));
    for (let i = 0; i < 5; i++) await channels.sms.send(req('A'));
    await channels.sms.send(req('B'));
    expect(builds).toEqual(['t1']);
    expect(wsSent).toEqual(Array(5).fill('sms:A'));
    expect(envSent).toEqual(['sms:B']);
    stored.set('A:sms', sms('t2', 'd2'));
    await channels.sms.send(req('A'));
    expect(builds).toEqual(['t1', 't2']);
    expect(closed).toEqual([]);
    await new Promise((r) => setTimeout(r, 60));
    expect(closed).toEqual(['sms']); // the replaced one, after sends under way had time to end

    stored.set('A:sms', {
      readable: false,
      workspaceId: 'A',
      channel: 'sms',
      error: 'credentials unreadable: x',
    });
    const r = await channels.sms.send(req('A'));
    expect(r).toMatchObject({ ok: false, retriable: true, error: 'credentials unreadable: x' });
    expect(envSent).toEqual(['sms:B']); // not sent with the deployment's credentials
    stored.delete('A:sms');
    await channels.sms.send(req('A'));
    expect(envSent).toEqual(['sms:B', 'sms:A']);
    // the webhook channel has no stored credentials: the deployment's, as is
    expect(channels.webhook).toBe(defaults.webhook);
  });

  it("a workspace's SMTP host must not be loopback or private unless allowed", async () => {
    const sent: string[] = [];
    const connected: string[] = [];
    const shape = fakeChannel('email', []);
    const connect = (address: string) => {
      connected.push(address);
      return fakeChannel('email', sent);
    };
    const target = (url: string) => {
      const t = parseSmtpUrl(url);
      if ('error' in t) throw new Error(t.error);
      return t.ok;
    };
    const guard = (url: string, policy: GuardPolicy, dns: (h: string) => Promise<string[]>) =>
      guardSmtpHost(shape, target(url), policy, connect, dns);
    const deny = { allowLoopback: false, allowPrivate: false };
    const dns = async (h: string) => (h === 'mail.internal' ? ['10.1.2.3'] : ['93.184.216.34']);
    const loop = await guard('smtp://u:p@127.0.0.1:2525', deny, dns).send(req('A'));
    expect(loop).toMatchObject({
      ok: false,
      retriable: false,
      error: expect.stringMatching(/loopback address/),
    });
    const priv = await guard('smtps://mail.internal:465', deny, dns).send(req('A'));
    expect(priv.error).toMatch(
      /^SMTP server refused: mail.internal resolves to a private or reserved address/,
    );
    const v6 = await guard('smtp://[::1]:25', deny, dns).send(req('A'));
    expect(v6.error).toMatch(/loopback/);
    expect(sent).toEqual([]);
    expect(connected).toEqual([]); // nothing refused was ever connected to
    expect((await guard('smtp://mail.example.com', deny, dns).send(req('A'))).ok).toBe(true);
    const allowed = { allowLoopback: true, allowPrivate: false };
    expect((await guard('smtp://127.0.0.1:2525', allowed, dns).send(req('A'))).ok).toBe(true);
    const failing = async () => {
      throw new Error('getaddrinfo ENOTFOUND');
    };
    const nx = await guard('smtp://nx.example', deny, failing).send(req('A'));
    expect(nx).toMatchObject({ ok: false, retriable: true });
    // a name that resolves to nothing is not a pass
    const none = await guard('smtp://empty.example', deny, async () => []).send(req('A'));
    expect(none).toMatchObject({ ok: false, retriable: true, error: 'SMTP host empty.example: no address' });
    expect(sent).toEqual(['email:A', 'email:A']);
    // the connection goes to the address checked, not to the name
    expect(connected).toEqual(['93.184.216.34', '127.0.0.1']);
  });

  it('sends to the SMTP address that was checked, with the decoded user and password, no second lookup', async () => {
    const got: Array<{ user?: string; pass?: string; local: string; to: string[] }> = [];
    const server = new SMTPServer({
      disabledCommands: ['STARTTLS'],
      authOptional: false,
      allowInsecureAuth: true,
      logger: false,
      onAuth(auth, _session, cb) {
        cb(null, { user: { name: auth.username, pass: auth.password } });
      },
      onData(stream, session, cb) {
        stream.resume();
        stream.on('end', () => {
          const u = session.user as { name?: string; pass?: string } | undefined;
          got.push({
            user: u?.name,
            pass: u?.pass,
            local: session.localAddress,
            to: session.envelope.rcptTo.map((r) => r.address),
          });
          cb();
        });
      },
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    try {
      const lookups: string[] = [];
      // a name no DNS server knows: had nodemailer resolved it again, the send would fail
      const resolve = async (h: string) => {
        lookups.push(h);
        return ['127.0.0.1'];
      };
      const cfg = { timeoutMs: 5000 } as ChannelsConfig;
      const creds: ChannelCredentials = {
        channel: 'email',
        creds: {
          provider: 'smtp',
          from: 'shop@a.test',
          url: `smtp://mailer:p%40ss%3Aw@mail.rebind.invalid:${port}`,
        },
      };
      const loopbackOk = { allowLoopback: true, allowPrivate: false };
      const ch = channelForCredentials(cfg, creds, loopbackOk, resolve);
      for (const to of ['ann@x.test', 'bob@x.test']) {
        const r = await ch.send(emailReq(to));
        expect(r, r.error).toMatchObject({ ok: true });
      }
      await ch.close?.();
      expect(lookups).toEqual(['mail.rebind.invalid']); // checked once, the verdict kept
      expect(got).toEqual([
        { user: 'mailer', pass: 'p@ss:w', local: '127.0.0.1', to: ['ann@x.test'] },
        { user: 'mailer', pass: 'p@ss:w', local: '127.0.0.1', to: ['bob@x.test'] },
      ]);
      // without the loopback allowance the same name is refused before any connection
      const denied = channelForCredentials(
        cfg,
        creds,
        { allowLoopback: false, allowPrivate: false },
        resolve,
      );
      expect(await denied.send(emailReq('cy@x.test'))).toMatchObject({
        ok: false,
        retriable: false,
        error: expect.stringMatching(/^SMTP server refused: mail.rebind.invalid resolves to a loopback/),
      });
      expect(got).toHaveLength(2);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('nodemailer gets options, never the URL: no proxy, logger or debug; TLS checked against the name', () => {
    const t = parseSmtpUrl('smtps://u%40shop:pw@mail.shop.test:2465');
    if ('error' in t) throw new Error(t.error);
    expect(smtpOptions(t.ok, '203.0.113.7', 1000)).toEqual({
      host: '203.0.113.7',
      port: 2465,
      secure: true,
      auth: { user: 'u@shop', pass: 'pw' },
      tls: { servername: 'mail.shop.test' },
      connectionTimeout: 1000,
      greetingTimeout: 1000,
      socketTimeout: 1000,
    });
  });

  it('stored credentials that cannot be built fail final, never throw out of send', async () => {
    const envSent: string[] = [];
    const defaults = Object.fromEntries(
      (['webhook', 'email', 'sms', 'push'] as const).map((n) => [n, fakeChannel(n, envSent)]),
    ) as Channels;
    const stored = new Map<string, StoredCredentials>();
    const watcher: CredentialWatcher = {
      get: (ws, ch) => stored.get(`${ws}:${ch}`),
      refresh: async () => {},
      stop() {},
    };
    const cfg = { timeoutMs: 1000 } as ChannelsConfig;
    const channels = withWorkspaceCredentials(defaults, watcher, (c) => channelForCredentials(cfg, c), {
      retireAfterMs: 30,
      log: silent,
    });
    const record = (creds: ChannelCredentials, digest: string): StoredCredentials => ({
      readable: true,
      workspaceId: 'A',
      channel: creds.channel,
      credentials: creds,
      keyId: 'k1',
      updatedAt: '',
      updatedBy: '',
      digest,
    });
    // as put before the URL checks (or crafted): the URL does not even parse
    stored.set(
      'A:email',
      record(
        { channel: 'email', creds: { provider: 'smtp', from: 'a@b.test', url: 'smtp://[::1:25' } },
        'd1',
      ),
    );
    const r = await channels.email.send(req('A'));
    expect(r).toMatchObject({
      ok: false,
      retriable: false,
      error: 'credentials unusable: url: not a valid URL (smtp[s]://user:password@host:port)',
    });
    // a query string from before is refused too, not handed to nodemailer
    stored.set(
      'A:email',
      record(
        {
          channel: 'email',
          creds: { provider: 'smtp', from: 'a@b.test', url: 'smtp://x.test/?proxy=http://127.0.0.1:1' },
        },
        'd2',
      ),
    );
    expect((await channels.email.send(req('A'))).error).toMatch(
      /^credentials unusable: url: no query string/,
    );
    // an FCM account whose token endpoint is not Google's is not used
    stored.set(
      'A:push',
      record(
        {
          channel: 'push',
          creds: {
            provider: 'fcm',
            serviceAccount: JSON.stringify({
              project_id: 'p',
              client_email: 'e',
              private_key: 'k',
              token_uri: 'https://evil.test/t',
            }),
          },
        },
        'd3',
      ),
    );
    expect(channels.push.devicesFor?.([], 'A')).toEqual([]);
    expect(await channels.push.send(req('A'))).toMatchObject({
      ok: false,
      retriable: false,
      error: 'credentials unusable: serviceAccount.token_uri: must be https://oauth2.googleapis.com/token',
    });
    expect(envSent).toEqual([]); // never the deployment's channel instead
    await channels.email.close?.();
    await channels.push.close?.();
  });

  it("push: a workspace's own provider decides which devices it can reach", () => {
    const devices: PushDevice[] = [
      { key: 'i:1', token: 'a'.repeat(64), type: 'ios', seenMs: 1 },
      { key: 'i:2', token: 'fcm-token', type: 'android', seenMs: 2 },
    ];
    const only = (type: string): Channel => ({
      ...fakeChannel('push', []),
      devicesFor: (list) => list.filter((d) => d.type === type),
    });
    const defaults = {
      webhook: fakeChannel('webhook', []),
      email: fakeChannel('email', []),
      sms: fakeChannel('sms', []),
      push: only('android'), // the deployment's FCM
    } as Channels;
    const stored = new Map<string, StoredCredentials>([
      ['A:push', { ...sms('x', 'd1'), channel: 'push', credentials: { channel: 'push' } } as never],
      ['U:push', { readable: false, workspaceId: 'U', channel: 'push', error: 'tampered' } as never],
    ]);
    const watcher: CredentialWatcher = {
      get: (ws, ch) => stored.get(`${ws}:${ch}`),
      refresh: async () => {},
      stop() {},
    };
    // workspace A has its own APNs account
    const channels = withWorkspaceCredentials(defaults, watcher, () => only('ios'), {
      retireAfterMs: 30,
      log: silent,
    });
    expect(channels.push.devicesFor!(devices, 'A').map((d) => d.key)).toEqual(['i:1']);
    expect(channels.push.devicesFor!(devices, 'B').map((d) => d.key)).toEqual(['i:2']);
    // unreadable: every device passes, and the send fails `credentials unreadable`
    expect(channels.push.devicesFor!(devices, 'U')).toHaveLength(2);
  });
});
