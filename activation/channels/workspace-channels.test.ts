// The per-workspace channel cache: built once per credentials digest, rebuilt on a change
// (the replaced one closed later), unreadable credentials a retriable failure that never
// reaches the deployment's channel, and a workspace's SMTP host checked like a webhook's.
import { describe, expect, it } from 'vitest';
import type { ChannelCredentials, StoredCredentials } from '../../runtime/channel-credentials.ts';
import type { CampaignDefinition } from '../../schemas/campaign.ts';
import type { Channel, Channels, PushDevice, SendRequest, SendResult } from './channel.ts';
import { type CredentialWatcher, guardSmtpHost, withWorkspaceCredentials } from './workspace-channels.ts';

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
    const inner = fakeChannel('email', sent);
    const deny = { allowLoopback: false, allowPrivate: false };
    const dns = async (h: string) => (h === 'mail.internal' ? ['10.1.2.3'] : ['93.184.216.34']);
    const loop = await guardSmtpHost(inner, 'smtp://u:p@127.0.0.1:2525', deny, dns).send(req('A'));
    expect(loop).toMatchObject({
      ok: false,
      retriable: false,
      error: expect.stringMatching(/loopback address/),
    });
    const priv = await guardSmtpHost(inner, 'smtps://mail.internal:465', deny, dns).send(req('A'));
    expect(priv.error).toMatch(
      /^SMTP server refused: mail.internal resolves to a private or reserved address/,
    );
    const v6 = await guardSmtpHost(inner, 'smtp://[::1]:25', deny, dns).send(req('A'));
    expect(v6.error).toMatch(/loopback/);
    expect(sent).toEqual([]);
    expect((await guardSmtpHost(inner, 'smtp://mail.example.com', deny, dns).send(req('A'))).ok).toBe(true);
    const allowed = { allowLoopback: true, allowPrivate: false };
    expect((await guardSmtpHost(inner, 'smtp://127.0.0.1:2525', allowed, dns).send(req('A'))).ok).toBe(true);
    const failing = async () => {
      throw new Error('getaddrinfo ENOTFOUND');
    };
    const nx = await guardSmtpHost(inner, 'smtp://nx.example', deny, failing).send(req('A'));
    expect(nx).toMatchObject({ ok: false, retriable: true });
    expect(sent).toEqual(['email:A', 'email:A']);
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
