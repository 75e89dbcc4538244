// Validation and redaction of channel credentials, per provider (the Redis store and the
// sends are in test/channel-credentials/).
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fingerprint, parseCredentials, redactCredentials } from './channel-credentials.ts';

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
    const shown = redactCredentials(smtp);
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
    expect(redactCredentials(ses)).toEqual({
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
    expect(redactCredentials(apns)).toEqual({
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
      const shown = redactCredentials(fcm);
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
    ).toBe('serviceAccount.token_uri: expected an https URL');
    expect(
      error('push', { provider: 'fcm', serviceAccount: { ...serviceAccount, private_key: ecPem } }),
    ).toBe('serviceAccount.private_key: expected an RSA key');
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
