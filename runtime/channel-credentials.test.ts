// Validation and redaction of channel credentials, per provider (the Redis store and the
// sends are in test/channel-credentials/).
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type ChannelCredentials,
  fingerprintKey,
  fingerprint as keyedFingerprint,
  parseCredentials,
  parseSmtpUrl,
  redactCredentials,
} from './channel-credentials.ts';

const KEY = fingerprintKey(randomBytes(32));
const fingerprint = (s: string) => keyedFingerprint(s, KEY);

const ecPem = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({
  type: 'pkcs8',
  format: 'pem',
}) as string;
const rsaPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
  type: 'pkcs8',
  format: 'pem',
}) as string;
const serviceAccount = {
  type: 'service_account',
  project_id: 'shop-app',
  private_key_id: 'kid123',
  private_key: rsaPem,
  client_email: 'fcm@shop-app.iam.gserviceaccount.com',
  token_uri: 'https://oauth2.googleapis.com/token',
};

const ok = (channel: 'email' | 'sms' | 'push', body: unknown) => {
  const r = parseCredentials(channel, body);
  if ('error' in r) throw new Error(r.error);
  return r.ok;
};
const error = (channel: 'email' | 'sms' | 'push', body: unknown) => {
  const r = parseCredentials(channel, body);
  return 'error' in r ? r.error : undefined;
};

describe('channel credentials: validation and redaction', () => {
  it('email providers: each its fields, shown without secrets', () => {
    const smtp = ok('email', {
      provider: 'smtp',
      from: 'Shop <news@shop.test>',
      url: 'smtps://mailer:p%40ss-word-123@smtp.shop.test:465',
    });
    const shown = redactCredentials(smtp, KEY);
    expect(shown).toEqual({
      provider: 'smtp',
      from: 'Shop <news@shop.test>',
      server: 'smtps://mailer@smtp.shop.test:465',
      secrets: { url: fingerprint('smtps://mailer:p%40ss-word-123@smtp.shop.test:465') },
    });
    expect(JSON.stringify(shown)).not.toContain('ss-word');
    const ses = ok('email', {
      provider: 'ses',
      from: 'news@shop.test',
      region: 'eu-west-1',
      accessKeyId: 'AKIAEXAMPLEKEY12',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      sessionToken: 'FwoGZXIvYXdzEXAMPLE',
    });
    expect(redactCredentials(ses, KEY)).toEqual({
      provider: 'ses',
      from: 'news@shop.test',
      region: 'eu-west-1',
      accessKeyId: 'AKIAEXAMPLEKEY12',
      secrets: {
        secretAccessKey: fingerprint('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'),
        sessionToken: fingerprint('FwoGZXIvYXdzEXAMPLE'),
      },
    });
    expect(
      redactCredentials(
        ok('email', {
          provider: 'postmark',
          from: 'a@b.test',
          serverToken: 'pm-token-123456',
          messageStream: 'outbound',
        }),
        KEY,
      ),
    ).toEqual({
      provider: 'postmark',
      from: 'a@b.test',
      messageStream: 'outbound',
      secrets: { serverToken: fingerprint('pm-token-123456') },
    });
    expect(
      error('email', {
        provider: 'ses',
        from: 'a@b.test',
        region: 'mars',
        accessKeyId: 'AKIAEXAMPLEKEY12',
        secretAccessKey: 'x'.repeat(40),
      }),
    ).toMatch(/^region: /);
    expect(error('email', { provider: 'smtp', from: 'a@b.test', url: 'http://x' })).toMatch(/^url: /);
    expect(error('email', { provider: 'sendgrid', from: 'nobody', apiKey: 'SG.0123456789' })).toMatch(
      /^from: /,
    );
    expect(error('email', null)).toBe('body: expected a JSON object');
  });

  it('push: an APNs .p8 key (EC P-256) and an FCM service account, checked, never a file path', () => {
    const apns = ok('push', {
      provider: 'apns',
      teamId: 'ABCDE12345',
      keyId: 'KEY1234567',
      key: ecPem,
      topic: 'com.shop.app',
    });
    expect(redactCredentials(apns, KEY)).toEqual({
      provider: 'apns',
      teamId: 'ABCDE12345',
      keyId: 'KEY1234567',
      topic: 'com.shop.app',
      secrets: { key: fingerprint(ecPem.trim()) },
    });
    expect(
      error('push', { provider: 'apns', teamId: 'ABCDE12345', keyId: 'KEY1234567', key: rsaPem, topic: 'a' }),
    ).toBe('key: expected an APNs .p8 key (EC P-256)');
    for (const sa of [serviceAccount, JSON.stringify(serviceAccount)]) {
      const fcm = ok('push', { provider: 'fcm', serviceAccount: sa });
      expect(fcm.creds).toEqual({ provider: 'fcm', serviceAccount: JSON.stringify(serviceAccount) });
      const shown = redactCredentials(fcm, KEY);
      expect(shown).toEqual({
        provider: 'fcm',
        projectId: 'shop-app',
        clientEmail: 'fcm@shop-app.iam.gserviceaccount.com',
        privateKeyId: 'kid123',
        secrets: { serviceAccount: fingerprint(rsaPem) },
      });
      expect(JSON.stringify(shown)).not.toContain('PRIVATE KEY');
    }
    expect(error('push', { provider: 'fcm', serviceAccount: '/etc/passwd' })).toMatch(
      /^serviceAccount: not JSON/,
    );
    expect(
      error('push', { provider: 'fcm', serviceAccount: { ...serviceAccount, private_key: undefined } }),
    ).toBe('serviceAccount.private_key: required');
    expect(
      error('push', {
        provider: 'fcm',
        serviceAccount: { ...serviceAccount, token_uri: 'http://169.254.169.254/' },
      }),
    ).toBe('serviceAccount.token_uri: must be https://oauth2.googleapis.com/token');
    // any other endpoint, even https (the token request and its answer would go there)
    for (const token_uri of [
      'https://attacker.test/token',
      'https://oauth2.googleapis.com/token?x=1',
      'https://oauth2.googleapis.com:443/token/',
    ])
      expect(error('push', { provider: 'fcm', serviceAccount: { ...serviceAccount, token_uri } })).toMatch(
        /^serviceAccount\.token_uri: must be /,
      );
    expect(
      error('push', { provider: 'fcm', serviceAccount: { ...serviceAccount, private_key: ecPem } }),
    ).toBe('serviceAccount.private_key: expected an RSA key');
  });

  it('smtp URL: only scheme, user, password, host and port; what is checked is what is used', () => {
    const smtp = (url: string) => error('email', { provider: 'smtp', from: 'a@b.test', url });
    // nodemailer reads host, port, proxy, logger and TLS options from the query: none allowed
    for (const url of [
      'smtp:///?host=10.0.0.5&port=25',
      'smtp://mail.shop.test/?host=10.0.0.5',
      'smtp://mail.shop.test:25?proxy=http://127.0.0.1:3128',
      'smtp://mail.shop.test?logger=true&debug=true',
      'smtp://mail.shop.test/?',
      'smtp://mail.shop.test/#x',
    ])
      expect(smtp(url), url).toMatch(/^url: no query string or fragment/);
    expect(smtp('smtp:///////')).toBe('url: no host');
    expect(parseSmtpUrl('smtp:///')).toEqual({ error: 'url: no host' });
    expect(smtp('smtp://[::1:25')).toMatch(/^url: not a valid URL/);
    expect(smtp('smtp://%31%32%37.0.0.1:25')).toBe('url: the host is not a host name or IP address');
    expect(smtp('smtp://mail.shop.test/relay')).toBe('url: no path allowed');
    expect(smtp('smtp://mail.shop.test:0')).toBe('url: port must be 1-65535');
    expect(smtp('smtp://mail.shop.test:70000')).toMatch(/^url: /);
    expect(smtp('smtp://%E0%A4%A:pw@mail.shop.test')).toBe(
      'url: the user name or password is not valid percent-encoding',
    );
    expect(smtp('smtp://u:%E0%A4%A@mail.shop.test')).toMatch(/not valid percent-encoding/);
    expect(smtp('smtp://:pw@mail.shop.test')).toBe('url: a password needs a user name');
    expect(smtp('ftp://mail.shop.test')).toMatch(/^url: /);
    // no problem echoes the value (a password may be in it)
    expect(smtp('smtp://u:hunter2secret@mail.shop.test/?x')).not.toContain('hunter2');
    expect(parseSmtpUrl('smtps://mailer:p%40ss@smtp.shop.test:2465/')).toEqual({
      ok: { secure: true, hostname: 'smtp.shop.test', port: 2465, user: 'mailer', pass: 'p@ss' },
    });
    expect(parseSmtpUrl('smtp://[2001:db8::1]')).toEqual({
      ok: { secure: false, hostname: '2001:db8::1', port: 587 },
    });
    expect(parseSmtpUrl('smtps://10.0.0.5')).toEqual({
      ok: { secure: true, hostname: '10.0.0.5', port: 465 },
    });
  });

  it('fingerprints are keyed: not the plain SHA-256, different under another key; redaction never throws', () => {
    const fp = fingerprint('pm-token-123456');
    expect(fp).toMatch(/^hmac:[0-9a-f]{12}$/);
    expect(fp.slice(5)).not.toBe(createHash('sha256').update('pm-token-123456').digest('hex').slice(0, 12));
    expect(keyedFingerprint('pm-token-123456', fingerprintKey(randomBytes(32)))).not.toBe(fp);
    expect(fingerprint('pm-token-123456')).toBe(fp);
    // a record that could not be put any more (crafted, or stored before the checks) still shows
    const crafted = (url: string): ChannelCredentials => ({
      channel: 'email',
      creds: { provider: 'smtp', from: 'a@b.test', url },
    });
    expect(redactCredentials(crafted('smtp://%E0%A4%A:pw@mail.shop.test'), KEY)).toEqual({
      provider: 'smtp',
      from: 'a@b.test',
      server: 'smtp://%E0%A4%A@mail.shop.test',
      secrets: { url: fingerprint('smtp://%E0%A4%A:pw@mail.shop.test') },
    });
    expect(redactCredentials(crafted('smtp://[::1:25'), KEY)).toMatchObject({ server: '(not a valid URL)' });
    expect(
      redactCredentials({ channel: 'push', creds: { provider: 'fcm', serviceAccount: '{not json' } }, KEY),
    ).toEqual({ provider: 'fcm', shown: false });
  });

  it('sms: a Twilio account SID, a token and a sender', () => {
    expect(
      error('sms', { accountSid: `AC${'0'.repeat(32)}`, authToken: 't'.repeat(32), from: 'ShopAlerts' }),
    ).toBeUndefined();
    expect(
      error('sms', { accountSid: `AC${'0'.repeat(32)}`, authToken: 't'.repeat(32), from: '12345' }),
    ).toMatch(/^from: /);
    expect(
      error('sms', { accountSid: `AC${'0'.repeat(32)}`, authToken: 'short', from: '+15551234567' }),
    ).toMatch(/^authToken: /);
  });
});
