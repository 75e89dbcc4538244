import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { generateWebhookSecret } from '../../schemas/campaign.ts';
import { signWebhook, webhookHeaders } from './sign-webhook.ts';

describe('Standard Webhooks signing', () => {
  it('produces signatures the reference library verifies', () => {
    const secret = generateWebhookSecret();
    const body = JSON.stringify({ type: 'segment.entered', profileId: 'p1' });
    const ts = Math.floor(Date.now() / 1000);
    const headers = webhookHeaders(secret, 'msg_1', ts, body);
    expect(new Webhook(secret).verify(body, headers)).toEqual({ type: 'segment.entered', profileId: 'p1' });
  });

  it('matches the specification’s test vector', () => {
    // from the Standard Webhooks specification's example
    const sig = signWebhook(
      'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      'msg_p5jXN8AQM9LWM0D4loKWxJek',
      1614265330,
      '{"test": 2432232314}',
    );
    expect(sig).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('fails verification when the body changes', () => {
    const secret = generateWebhookSecret();
    const headers = webhookHeaders(secret, 'msg_2', Math.floor(Date.now() / 1000), '{"a":1}');
    expect(() => new Webhook(secret).verify('{"a":2}', headers)).toThrow();
  });
});
