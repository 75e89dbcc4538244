// The email channel through provider APIs (CDP_EMAIL_PROVIDER) against local stand-ins that
// check the real contracts (test/email-providers.ts): SES v2 with a SigV4 signature the server
// recomputes with the `aws4` package, SendGrid v3 with a scoped API key, Postmark with a server
// token and its inactive-recipient error. Each: the rendered message arrives in the provider's
// shape with the unsubscribe headers and the send key; a wrong credential is final; throttling
// is retriable; the provider's permanent refusals are not.
import aws4 from 'aws4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../runtime/config.ts';
import type { CampaignDefinition } from '../../schemas/campaign.ts';
import {
  emailTagSecret,
  emailTagSignature,
  fromSesTagValue,
  sesTagValue,
  verifyEmailTags,
} from '../../schemas/email-tags.ts';
import { change } from '../../test/activation-peers.ts';
import { startPostmark, startSendgrid, startSes } from '../../test/email-providers.ts';
import type { SendRequest } from './channel.ts';
import { emailChannel } from './email.ts';
import { parseAddress } from './email-providers.ts';
import { signRequest } from './sigv4.ts';

const clock = Date.parse('2026-06-01T10:00:00Z');
const now = () => clock;
const FROM = 'Shop <news@shop.test>';
const SES_KEY = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
};
const HOSTILE = '<b>Ada</b>';

let ses: Awaited<ReturnType<typeof startSes>>;
let sendgrid: Awaited<ReturnType<typeof startSendgrid>>;
let postmark: Awaited<ReturnType<typeof startPostmark>>;

beforeAll(async () => {
  ses = await startSes({ now, region: 'eu-west-1', ...SES_KEY, verified: ['news@shop.test'] });
  sendgrid = await startSendgrid({
    keys: { 'SG.full': ['mail.send'], 'SG.readonly': ['stats.read'] },
    verified: ['news@shop.test'],
  });
  postmark = await startPostmark({
    token: 'pm-server-token',
    signatures: ['news@shop.test'],
    streams: ['outbound', 'broadcast'],
    inactive: ['bounced@example.com'],
  });
});
afterAll(async () => {
  await ses?.close();
  await sendgrid?.close();
  await postmark?.close();
});

const TAG_SECRET = emailTagSecret('unit-test-unsubscribe-secret');
/** cdp_sig of the tags a request's send carries. */
const sigOf = (req: SendRequest, withCampaign = true) =>
  emailTagSignature(TAG_SECRET, {
    workspaceId: req.change.workspaceId,
    sendKey: req.sendKey,
    ...(withCampaign ? { campaignId: req.campaign.id } : {}),
    profileId: req.change.profileId,
  });

function request(to: string, from?: string): SendRequest {
  const at = new Date(clock).toISOString();
  const campaign: CampaignDefinition = {
    id: 'cmp_mail',
    workspaceId: 'ws',
    name: 'Mail',
    segmentId: 'seg',
    on: 'enter',
    channel: 'email',
    email: {
      subject: 'Hi {{ traits.name }}',
      text: 'Your plan: {{ traits.plan }}',
      html: '<p>Hello {{ traits.name }}</p><a href="{{ unsubscribe_url }}">unsubscribe</a>',
      ...(from ? { from } : {}),
    },
    status: 'active',
    version: 1,
    createdAt: at,
    updatedAt: at,
  };
  return {
    campaign,
    change: change('ws', 'seg', `p-${Math.random().toString(36).slice(2)}`, {
      email: to,
      name: HOSTILE,
      plan: 'pro',
    }),
    sendKey: `msg_${Math.random().toString(36).slice(2).padEnd(12, 'x')}`,
    recipient: to,
    unsubscribeUrl: 'http://127.0.0.1:8081/v1/unsubscribe?token=t0k',
    nowMs: clock,
  };
}

/** What every provider must receive, rendered once by email.ts. */
function expectRendered(
  m: { subject: string; text: string; html: string; headers: Record<string, string> },
  key: string,
) {
  expect(m.subject).toBe(`Hi ${HOSTILE}`); // subject is plain text
  expect(m.text).toBe('Your plan: pro\n\nUnsubscribe: http://127.0.0.1:8081/v1/unsubscribe?token=t0k\n');
  expect(m.html).toBe(
    '<p>Hello &lt;b&gt;Ada&lt;/b&gt;</p><a href="http://127.0.0.1:8081/v1/unsubscribe?token=t0k">unsubscribe</a>',
  );
  expect(m.headers).toEqual({
    'List-Unsubscribe': '<http://127.0.0.1:8081/v1/unsubscribe?token=t0k>',
    'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    'X-CDP-Send-Key': key,
  });
}
const headerMap = (h: unknown) =>
  Object.fromEntries((h as Array<{ Name: string; Value: string }>).map((x) => [x.Name, x.Value]));

describe('SigV4 signer', () => {
  it("matches AWS's published get-vanilla test vector", () => {
    const h = signRequest(
      {
        method: 'GET',
        url: new URL('https://example.amazonaws.com/'),
        headers: {},
        body: '',
        service: 'service',
        region: 'us-east-1',
        nowMs: Date.parse('2015-08-30T12:36:00Z'),
      },
      { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
    );
    expect(h.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    );
  });

  it('agrees with the aws4 package on paths, queries, headers and bodies', () => {
    const cases = [
      { url: 'https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails', body: '{"a":1}' },
      { url: 'https://host.test:8443/a%20b/c~d?z=1&a=x%2Fy&a=b&empty=', body: 'ünïcode ✓' },
      { url: 'http://127.0.0.1:9999/', body: '' },
    ];
    for (const c of cases) {
      const url = new URL(c.url);
      const creds = { ...SES_KEY, sessionToken: 'FwoGZXIvYXdzEJr//session' };
      const ours = signRequest(
        {
          method: 'POST',
          url,
          headers: { 'content-type': 'application/json', 'X-Custom': '  a   b  ' },
          body: c.body,
          service: 'ses',
          region: 'eu-west-1',
          nowMs: clock,
        },
        creds,
      );
      const theirs = aws4.sign(
        {
          host: url.host,
          method: 'POST',
          path: `${url.pathname}${url.search}`,
          service: 'ses',
          region: 'eu-west-1',
          body: c.body,
          headers: {
            'content-type': 'application/json',
            'X-Custom': '  a   b  ',
            'X-Amz-Date': ours['x-amz-date']!,
          },
          extraHeadersToIgnore: { 'content-length': true },
        } as aws4.Request,
        creds,
      );
      expect(ours.authorization, c.url).toBe(theirs.headers?.Authorization);
    }
  });
});

describe('Amazon SES v2', () => {
  const channel = (secretAccessKey = SES_KEY.secretAccessKey) =>
    emailChannel({
      from: FROM,
      provider: 'ses',
      ses: { region: 'eu-west-1', accessKeyId: SES_KEY.accessKeyId, secretAccessKey, endpoint: ses.url },
      timeoutMs: 3000,
      now,
      tagSecret: TAG_SECRET,
    });

  it('sends the rendered message as SendEmail, signed, and returns the MessageId', async () => {
    const req = request('ada@example.com');
    const r = await channel().send(req);
    expect(r, r.error).toMatchObject({ ok: true, status: 200, retriable: false });
    const got = ses.sent.at(-1)!;
    expect(r.providerId).toMatch(/^0100018c-\d{8}-000000$/);
    expect(got.signedHeaders).toEqual(['content-type', 'host', 'x-amz-date']);
    expect(got.authorization).toContain(
      `Credential=${SES_KEY.accessKeyId}/20260601/eu-west-1/ses/aws4_request`,
    );
    const b = got.body as {
      FromEmailAddress: string;
      Destination: unknown;
      Content: {
        Simple: {
          Subject: { Data: string };
          Body: { Text: { Data: string }; Html: { Data: string } };
          Headers: unknown;
        };
      };
      EmailTags: unknown;
    };
    expect(b.FromEmailAddress).toBe(FROM);
    expect(b.Destination).toEqual({ ToAddresses: ['ada@example.com'] });
    const s = b.Content.Simple;
    expectRendered(
      {
        subject: s.Subject.Data,
        text: s.Body.Text.Data,
        html: s.Body.Html.Data,
        headers: headerMap(s.Headers),
      },
      req.sendKey,
    );
    expect(b.EmailTags).toEqual([
      { Name: 'cdp_send_key', Value: req.sendKey },
      { Name: 'cdp_campaign', Value: 'cmp_mail' },
      { Name: 'cdp_profile', Value: req.change.profileId },
      { Name: 'cdp_ws', Value: req.change.workspaceId },
      { Name: 'cdp_sig', Value: sigOf(req) },
    ]);
    // what the webhook checks: the signature over the tags, with the deployment's key only
    const sig = sigOf(req);
    expect(sig).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const t = {
      workspaceId: req.change.workspaceId,
      sendKey: req.sendKey,
      campaignId: 'cmp_mail',
      profileId: req.change.profileId,
    };
    expect(verifyEmailTags(TAG_SECRET, t, sig)).toBe(true);
    expect(verifyEmailTags(emailTagSecret('another-deployment'), t, sig)).toBe(false);
    expect(verifyEmailTags(TAG_SECRET, { ...t, workspaceId: 'ws_other' }, sig)).toBe(false);
    expect(verifyEmailTags(TAG_SECRET, { ...t, campaignId: 'cmp_other' }, sig)).toBe(false);
  });

  it('a campaign id SES would refuse as a tag value goes encoded, one too long even so is left out', async () => {
    const req = request('ada@example.com');
    const odd = { ...req, campaign: { ...req.campaign, id: 'Spring sale: 20% ✓' } };
    const r = await channel().send(odd);
    // the stand-in refuses tag values outside [A-Za-z0-9_.@-]{1,256}, as SES does
    expect(r, r.error).toMatchObject({ ok: true });
    const tags = (ses.sent.at(-1)!.body as { EmailTags: Array<{ Name: string; Value: string }> }).EmailTags;
    const campaign = tags.find((t) => t.Name === 'cdp_campaign')!.Value;
    expect(campaign).toMatch(/^b64\.[A-Za-z0-9_-]+$/);
    expect(fromSesTagValue(campaign)).toBe('Spring sale: 20% ✓');
    // signed over the value it stands for
    expect(tags.find((t) => t.Name === 'cdp_sig')!.Value).toBe(sigOf(odd));
    // a value that looks encoded is encoded too, so reading back is unambiguous
    expect(fromSesTagValue(sesTagValue('b64.abc'))).toBe('b64.abc');

    const long = { ...req, campaign: { ...req.campaign, id: 'é'.repeat(150) } };
    expect((await channel().send(long)).ok).toBe(true);
    const names = (ses.sent.at(-1)!.body as { EmailTags: Array<{ Name: string }> }).EmailTags.map(
      (t) => t.Name,
    );
    expect(names).toEqual(['cdp_send_key', 'cdp_profile', 'cdp_ws', 'cdp_sig']);
    // the signature covers what travels: no campaign
    const sent = (ses.sent.at(-1)!.body as { EmailTags: Array<{ Name: string; Value: string }> }).EmailTags;
    expect(sent.find((t) => t.Name === 'cdp_sig')!.Value).toBe(sigOf(long, false));
  });

  it('a wrong secret is refused by the signature check, and that is final', async () => {
    const before = ses.sent.length;
    const r = await channel('wrong/secret/key/wrong/secret/key/wrongxx').send(request('ada@example.com'));
    expect(r).toMatchObject({ ok: false, status: 403, retriable: false });
    expect(r.error).toContain('SignatureDoesNotMatch');
    expect(ses.refused.at(-1)).toBe('SignatureDoesNotMatch');
    expect(ses.sent.length).toBe(before);
    const unknown = await emailChannel({
      from: FROM,
      provider: 'ses',
      ses: {
        region: 'eu-west-1',
        accessKeyId: 'AKIAUNKNOWNKEY000000',
        secretAccessKey: 'x',
        endpoint: ses.url,
      },
      timeoutMs: 3000,
      now,
    }).send(request('ada@example.com'));
    expect(unknown).toMatchObject({ ok: false, status: 403, retriable: false });
    expect(unknown.error).toContain('UnrecognizedClientException');
    // signed for another region: the credential scope is wrong, whatever the key
    const region = await emailChannel({
      from: FROM,
      provider: 'ses',
      ses: { region: 'us-east-1', ...SES_KEY, endpoint: ses.url },
      timeoutMs: 3000,
      now,
    }).send(request('ada@example.com'));
    expect(region).toMatchObject({ ok: false, status: 403, retriable: false });
    expect(ses.sent.length).toBe(before);
  });

  it('refuses a body changed after signing and a request signed 20 minutes ago', async () => {
    const url = new URL(`${ses.url}/v2/email/outbound-emails`);
    const sign = (body: string, at: number) =>
      signRequest(
        {
          method: 'POST',
          url,
          headers: { 'content-type': 'application/json' },
          body,
          service: 'ses',
          region: 'eu-west-1',
          nowMs: at,
        },
        SES_KEY,
      );
    const { host: _h, ...headers } = sign('{"FromEmailAddress":"news@shop.test"}', clock);
    const tampered = await fetch(url, {
      method: 'POST',
      headers,
      body: '{"FromEmailAddress":"evil@shop.test"}',
    });
    expect(tampered.status).toBe(403);
    expect(tampered.headers.get('x-amzn-errortype')).toMatch(/^SignatureDoesNotMatch:/);
    const { host: _h2, ...old } = sign('{}', clock - 20 * 60_000);
    const stale = await fetch(url, { method: 'POST', headers: old, body: '{}' });
    expect(stale.status).toBe(403);
    expect(stale.headers.get('x-amzn-errortype')).toMatch(/^InvalidSignatureException:/);
  });

  it('TooManyRequestsException is retriable; MessageRejected (unverified sender) is not', async () => {
    ses.throttle(1);
    const throttled = await channel().send(request('ada@example.com'));
    expect(throttled).toMatchObject({ ok: false, status: 429, retriable: true });
    expect(throttled.error).toContain('TooManyRequestsException');
    expect((await channel().send(request('ada@example.com'))).ok).toBe(true); // the retry goes through
    // the sending rate refused under the query-API error name (400 Throttling) is throttling too
    ses.throttle(1, { status: 400, type: 'Throttling' });
    expect(await channel().send(request('ada@example.com'))).toMatchObject({
      ok: false,
      status: 400,
      retriable: true,
    });

    const rejected = await channel().send(request('ada@example.com', 'Spoof <ceo@other.test>'));
    expect(rejected).toMatchObject({ ok: false, status: 400, retriable: false });
    expect(rejected.error).toContain('MessageRejected');
    expect(rejected.invalidRecipient).toBeUndefined(); // the sender is the problem, not the address
  });

  it('loadConfig names the missing SES settings and wires the ones given', () => {
    expect(() => loadConfig({ CDP_EMAIL_PROVIDER: 'ses', CDP_SES_REGION: 'eu-west-1' })).toThrow(ConfigError);
    try {
      loadConfig({ CDP_EMAIL_PROVIDER: 'ses', CDP_SES_REGION: 'eu-west-1' });
    } catch (err) {
      expect((err as ConfigError).problems.join('\n')).toMatch(
        /CDP_SES_ACCESS_KEY_ID[\s\S]*CDP_SES_SECRET_ACCESS_KEY/,
      );
    }
    const cfg = loadConfig({
      CDP_EMAIL_PROVIDER: 'ses',
      CDP_SES_REGION: 'eu-west-1',
      CDP_SES_ACCESS_KEY_ID: SES_KEY.accessKeyId,
      CDP_SES_SECRET_ACCESS_KEY: SES_KEY.secretAccessKey,
      CDP_SES_ENDPOINT: ses.url,
    }).channels.email;
    expect(cfg.provider).toBe('ses');
    expect(cfg.ses).toMatchObject({ region: 'eu-west-1', endpoint: ses.url });
    expect(loadConfig({}).channels.email.provider).toBe('smtp');
  });
});

describe('SendGrid v3', () => {
  const channel = (apiKey: string) =>
    emailChannel({
      from: FROM,
      provider: 'sendgrid',
      sendgrid: { apiKey, baseUrl: sendgrid.url },
      timeoutMs: 3000,
      tagSecret: TAG_SECRET,
    });

  it('sends personalizations/from/subject/content with the bearer key; 202 and X-Message-Id', async () => {
    const req = request('ada@example.com');
    const r = await channel('SG.full').send(req);
    expect(r, r.error).toMatchObject({ ok: true, status: 202, retriable: false });
    const got = sendgrid.sent.at(-1)!;
    expect(r.providerId).toBe(got.messageId);
    const b = got.body as {
      personalizations: unknown;
      from: unknown;
      subject: string;
      content: Array<{ type: string; value: string }>;
      headers: Record<string, string>;
    };
    expect(b.personalizations).toEqual([
      {
        to: [{ email: 'ada@example.com' }],
        custom_args: {
          cdp_send_key: req.sendKey,
          cdp_campaign: 'cmp_mail',
          cdp_profile: req.change.profileId,
          cdp_ws: req.change.workspaceId,
          cdp_sig: sigOf(req),
        },
      },
    ]);
    expect(b.from).toEqual({ email: 'news@shop.test', name: 'Shop' });
    expect(b.content.map((c) => c.type)).toEqual(['text/plain', 'text/html']);
    expectRendered(
      { subject: b.subject, text: b.content[0]!.value, html: b.content[1]!.value, headers: b.headers },
      req.sendKey,
    );
  });

  it('an unknown key (401) and a key without mail.send (403) are final', async () => {
    const before = sendgrid.sent.length;
    const unknown = await channel('SG.revoked').send(request('ada@example.com'));
    expect(unknown).toMatchObject({ ok: false, status: 401, retriable: false });
    const scoped = await channel('SG.readonly').send(request('ada@example.com'));
    expect(scoped).toMatchObject({ ok: false, status: 403, retriable: false });
    expect(sendgrid.sent.length).toBe(before);
  });

  it('429 is retriable; an unverified sender (403) is not', async () => {
    sendgrid.throttle(1);
    const throttled = await channel('SG.full').send(request('ada@example.com'));
    expect(throttled).toMatchObject({ ok: false, status: 429, retriable: true });
    expect(throttled.error).toMatch(/rate limit resets at \d+/);
    // the retry waits for the window to reset (the stand-in resets it a minute ahead)
    expect(throttled.retryAfterMs).toBeGreaterThan(55_000);
    expect(throttled.retryAfterMs).toBeLessThanOrEqual(61_000);
    expect((await channel('SG.full').send(request('ada@example.com'))).ok).toBe(true);
    const unverified = await channel('SG.full').send(request('ada@example.com', 'ceo@other.test'));
    expect(unverified).toMatchObject({ ok: false, status: 403, retriable: false });
    expect(unverified.error).toContain('verified Sender Identity');
  });
});

describe('Postmark', () => {
  const channel = (serverToken: string) =>
    emailChannel({
      from: FROM,
      provider: 'postmark',
      postmark: { serverToken, baseUrl: postmark.url, messageStream: 'broadcast' },
      timeoutMs: 3000,
      tagSecret: TAG_SECRET,
    });

  it('sends From/To/Subject/bodies/Headers/Metadata to the broadcast stream; 200 with MessageID', async () => {
    const req = request('ada@example.com');
    const r = await channel('pm-server-token').send(req);
    expect(r, r.error).toMatchObject({ ok: true, status: 200, retriable: false });
    const got = postmark.sent.at(-1)!;
    expect(r.providerId).toBe(got.messageId);
    const b = got.body as Record<string, unknown>;
    expect(b.From).toBe(FROM);
    expect(b.To).toBe('ada@example.com');
    expect(b.MessageStream).toBe('broadcast');
    expect(b.Metadata).toEqual({
      cdp_send_key: req.sendKey,
      cdp_campaign: 'cmp_mail',
      cdp_profile: req.change.profileId,
      cdp_ws: req.change.workspaceId,
      cdp_sig: sigOf(req),
    });
    expectRendered(
      {
        subject: String(b.Subject),
        text: String(b.TextBody),
        html: String(b.HtmlBody),
        headers: headerMap(b.Headers),
      },
      req.sendKey,
    );
  });

  it('a wrong server token (401, ErrorCode 10) is final', async () => {
    const r = await channel('not-the-token').send(request('ada@example.com'));
    expect(r).toMatchObject({ ok: false, status: 401, retriable: false });
    expect(r.error).toContain('ErrorCode 10');
    expect(r.invalidRecipient).toBeUndefined();
  });

  it('429 is retriable; an inactive recipient (406) is final and marks the address invalid', async () => {
    postmark.throttle(1);
    const throttled = await channel('pm-server-token').send(request('ada@example.com'));
    expect(throttled).toMatchObject({ ok: false, status: 429, retriable: true });
    expect((await channel('pm-server-token').send(request('ada@example.com'))).ok).toBe(true);

    const inactive = await channel('pm-server-token').send(request('bounced@example.com'));
    expect(inactive).toMatchObject({ ok: false, status: 422, retriable: false, invalidRecipient: true });
    expect(inactive.error).toContain('ErrorCode 406');
  });

  it('an unknown sender signature or message stream is final, and the address stays valid', async () => {
    const sender = await channel('pm-server-token').send(request('ada@example.com', 'ceo@other.test'));
    expect(sender).toMatchObject({ ok: false, status: 422, retriable: false });
    expect(sender.error).toContain('ErrorCode 400');
    expect(sender.invalidRecipient).toBeUndefined();
    const stream = await emailChannel({
      from: FROM,
      provider: 'postmark',
      postmark: { serverToken: 'pm-server-token', baseUrl: postmark.url, messageStream: 'newsletters' },
      timeoutMs: 3000,
    }).send(request('ada@example.com'));
    expect(stream).toMatchObject({ ok: false, status: 422, retriable: false });
    expect(stream.error).toContain('ErrorCode 1235');
  });
});

describe('provider selection', () => {
  it('a provider without its credential refuses the send without calling anyone', async () => {
    const r = await emailChannel({
      from: FROM,
      provider: 'postmark',
      postmark: { serverToken: '', baseUrl: postmark.url, messageStream: 'broadcast' },
      timeoutMs: 3000,
    }).send(request('ada@example.com'));
    expect(r).toMatchObject({ ok: false, retriable: false });
    expect(r.error).toContain('CDP_POSTMARK_SERVER_TOKEN');
  });

  it('parses display-name addresses for SendGrid', () => {
    expect(parseAddress('Shop <news@shop.test>')).toEqual({ name: 'Shop', email: 'news@shop.test' });
    expect(parseAddress('"Shop, Inc." <news@shop.test>')).toEqual({
      name: 'Shop, Inc.',
      email: 'news@shop.test',
    });
    expect(parseAddress('news@shop.test')).toEqual({ email: 'news@shop.test' });
  });
});
