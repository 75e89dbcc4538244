// Standard Webhooks signing (https://www.standardwebhooks.com): the HMAC-SHA256 key is the
// base64-decoded part of a `whsec_` secret, the signed content is "id.timestamp.body".
import { createHmac } from 'node:crypto';

export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  if (!secret.startsWith('whsec_')) throw new Error('webhook secret must start with whsec_');
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const mac = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return `v1,${mac}`;
}

export function webhookHeaders(
  secret: string,
  id: string,
  timestampSeconds: number,
  body: string,
): Record<string, string> {
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': signWebhook(secret, id, timestampSeconds, body),
  };
}
