// OpenAPI 3.1 description of the ingest routes, built from the same TypeBox schemas that
// validate requests, so the document cannot drift from what is enforced.
import { IncomingEvent, NormalizedEvent } from '../schemas/event.ts';

const error = {
  type: 'object',
  properties: { success: { const: false }, error: { type: 'string' } },
  required: ['success', 'error'],
};
const ok = { type: 'object', properties: { success: { const: true } }, required: ['success'] };
const responses = {
  '200': {
    description: 'Accepted: every event of the request is in Kafka',
    content: { 'application/json': { schema: ok } },
  },
  '400': {
    description: 'Invalid input; `error` names the field',
    content: { 'application/json': { schema: error } },
  },
  '401': {
    description: 'Missing, unknown or revoked write key',
    content: { 'application/json': { schema: error } },
  },
  '413': {
    description: 'Body over 500 KB (also after gzip)',
    content: { 'application/json': { schema: error } },
  },
  '415': {
    description: 'Unsupported content type or encoding',
    content: { 'application/json': { schema: error } },
  },
  '429': {
    description: 'Write key over its rate; retry after `Retry-After` seconds',
    headers: { 'Retry-After': { schema: { type: 'integer' } } },
    content: { 'application/json': { schema: error } },
  },
  '503': {
    description: 'Kafka did not acknowledge in time; nothing was accepted, retry',
    headers: { 'Retry-After': { schema: { type: 'integer' } } },
    content: { 'application/json': { schema: error } },
  },
};

const body = (schema: object) => ({
  required: true,
  content: {
    'application/json': { schema },
    'text/plain': {
      schema: { type: 'string', description: 'the same JSON, sent as text/plain by browser SDKs' },
    },
  },
});

const calls: Array<[string, string, string]> = [
  ['track', 't', 'Record an action (`event` required)'],
  ['identify', 'i', 'Tie a user to their traits'],
  ['page', 'p', 'Record a page view'],
  ['screen', 's', 'Record a mobile screen view'],
  ['group', 'g', 'Associate the user with a group (`groupId` required)'],
  ['alias', 'a', 'Link `previousId` to `userId`'],
];

export function ingestOpenApi(): object {
  const ref = { $ref: '#/components/schemas/IncomingEvent' };
  const batch = {
    type: 'object',
    required: ['batch'],
    properties: {
      batch: { type: 'array', items: ref, minItems: 1 },
      context: { type: 'object', description: 'merged under each event’s own context' },
      integrations: { type: 'object' },
      writeKey: { type: 'string' },
    },
  };
  const paths: Record<string, object> = {};
  for (const [name, short, summary] of calls) {
    const op = { summary, tags: ['tracking'], requestBody: body(ref), responses };
    paths[`/v1/${name}`] = { post: { ...op, operationId: name } };
    paths[`/v1/${short}`] = {
      post: { ...op, operationId: `${name}Short`, summary: `${summary} (browser SDK short form)` },
    };
  }
  const batchOp = {
    summary: 'Send many events; all or nothing (one invalid event rejects the request, naming it)',
    tags: ['tracking'],
    requestBody: body(batch),
    responses,
  };
  paths['/v1/batch'] = { post: { ...batchOp, operationId: 'batch' } };
  paths['/v1/import'] = { post: { ...batchOp, operationId: 'import' } };
  paths['/v1/b'] = { post: { ...batchOp, operationId: 'batchShort' } };
  paths['/v1/projects/{writeKey}/settings'] = {
    get: {
      operationId: 'browserSettings',
      summary: 'Settings the browser SDK loads at start-up, with apiHost pointing at this host',
      tags: ['browser'],
      parameters: [{ name: 'writeKey', in: 'path', required: true, schema: { type: 'string' } }],
      responses: { '200': { description: 'settings' }, '404': { description: 'unknown write key' } },
    },
  };
  const form = [
    { name: 'workspace', in: 'path', required: true, schema: { type: 'string' } },
    { name: 'formId', in: 'path', required: true, schema: { type: 'string' } },
  ];
  paths['/v1/forms/embed.js'] = {
    get: {
      operationId: 'formEmbedScript',
      summary:
        'The embeddable form script: put `<script src=".../v1/forms/embed.js" data-workspace data-form async>` or a `<div data-cdp-form="ws/id">` on any page; it renders the form from its JSON definition and posts JSON with the page URL, referrer and the analytics.js anonymousId',
      tags: ['forms'],
      security: [],
      responses: {
        '200': {
          description:
            'text/javascript (gzip when accepted); Cache-Control public, max-age=86400, stale-while-revalidate=604800; weak ETag; Access-Control-Allow-Origin *',
        },
        '304': { description: 'If-None-Match matched the ETag' },
      },
    },
  };
  paths['/v1/forms/{workspace}/{formId}'] = {
    get: {
      operationId: 'renderForm',
      summary:
        'The form as an HTML page that works without JavaScript, or as JSON (Accept: application/json; CORS for any origin, without credentials) with a fresh signed `_token`',
      tags: ['forms'],
      security: [],
      parameters: form,
      responses: {
        '200': {
          description:
            'the form; as JSON {id, version, name, fields (without trait), consents: [{name, text, required}], action, token, minFillMs (post no sooner after the token), maxAgeMs (renew the token after), meta: {token, honeypot, page, referrer, anonymousId, …}}',
        },
        '404': { description: 'no such form' },
        '409': { description: 'paused' },
      },
    },
  };
  paths['/v1/forms/{workspace}/{formId}/submit'] = {
    post: {
      operationId: 'submitForm',
      summary:
        'A submission: application/x-www-form-urlencoded (an HTML form; answered 303 to the redirect or an HTML page) or a flat JSON object (answered JSON)',
      tags: ['forms'],
      security: [],
      parameters: form,
      responses: {
        '200': { description: '{success: true, message | redirect} (JSON), or the message page' },
        '303': { description: "to the form's redirect" },
        '400': { description: '{success: false, error, errors: {field: why}}, or a page listing them' },
        '404': { description: 'no such form' },
        '409': { description: 'the form is paused' },
        '413': { description: 'body over 32 KB' },
        '415': { description: 'not urlencoded or JSON' },
        '429': { description: 'over the per-address or per-form rate; Retry-After' },
        '503': { description: 'not stored; retry' },
      },
    },
  };
  const confirmToken = [
    {
      name: 't',
      in: 'query',
      required: true,
      schema: { type: 'string', maxLength: 2048 },
      description: 'the signed token from the confirmation mail',
    },
  ];
  paths['/v1/consent/confirm'] = {
    get: {
      operationId: 'consentConfirmPage',
      summary:
        'Double opt-in: the confirmation page (what is confirmed, the text agreed to, a Confirm button). Changes nothing: mail scanners fetch GET links',
      tags: ['consent'],
      security: [],
      parameters: confirmToken,
      responses: {
        '200': { description: 'HTML page (or "already confirmed")' },
        '400': { description: 'malformed or tampered token' },
        '410': { description: 'expired, or nothing to confirm (erased, past retention)' },
        '503': { description: 'try again' },
      },
    },
    post: {
      operationId: 'consentConfirm',
      summary:
        'Double opt-in: confirms (the page button). Single use: a replay or a concurrent second POST answers 200 "already confirmed" and writes nothing',
      tags: ['consent'],
      security: [],
      parameters: confirmToken,
      responses: {
        '200': { description: 'confirmed, or already confirmed (HTML)' },
        '400': { description: 'malformed or tampered token' },
        '410': { description: 'expired, or nothing to confirm' },
        '503': { description: 'not confirmed; try again' },
      },
    },
  };
  paths['/p/{workspace}/{slug}'] = {
    get: {
      operationId: 'renderLandingPage',
      summary:
        'A published landing page as HTML (no script, strict CSP; form blocks post to the form submit endpoint without JavaScript). The variant is sticky per visitor (ajs_anonymous_id cookie, set when absent); each GET is produced as a page call',
      tags: ['pages'],
      security: [],
      parameters: [
        { name: 'workspace', in: 'path', required: true, schema: { type: 'string' } },
        {
          name: 'slug',
          in: 'path',
          required: true,
          schema: { type: 'string', pattern: '^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$' },
        },
      ],
      responses: {
        '200': { description: 'the page (text/html); Set-Cookie ajs_anonymous_id for a new visitor' },
        '404': { description: 'no published page at this slug (draft, archived, deleted or unknown)' },
      },
    },
  };
  const trackingToken = [
    { name: 'token', in: 'path', required: true, schema: { type: 'string', maxLength: 4096 } },
  ];
  paths['/v1/e/o/{token}.gif'] = {
    get: {
      operationId: 'emailOpenPixel',
      summary:
        'Email open pixel: the 43-byte transparent GIF (no-store); records a track "Email Opened" for the profile in the signed token (machines flagged bot: true, repeats in the hour one event)',
      tags: ['email'],
      security: [],
      parameters: trackingToken,
      responses: {
        '200': { description: 'image/gif, 43 bytes' },
        '400': { description: 'malformed, tampered or foreign token (nothing recorded)' },
      },
    },
  };
  paths['/v1/e/c/{token}'] = {
    get: {
      operationId: 'emailClick',
      summary:
        'Email click: 302 to the URL inside the signed token (never any other); records a track "Email Link Clicked" with the URL (machines flagged bot: true)',
      tags: ['email'],
      security: [],
      parameters: trackingToken,
      responses: {
        '302': { description: 'to the signed URL' },
        '400': {
          description: 'malformed, tampered or foreign token: an HTML page, no redirect, nothing recorded',
        },
      },
    },
  };

  const emailWebhookResponses = {
    '200': {
      description:
        'stored: `{success, processed, suppressed, skipped}` (suppressed: addresses newly put on the list)',
    },
    '400': { description: 'malformed JSON, or not the expected shape' },
    '404': { description: 'unknown workspace' },
    '413': { description: 'body over 1 MB, or over 1,000 events' },
    '503': { description: 'Redis or Kafka unavailable: retry (providers do)' },
  };
  const workspaceParam = [{ name: 'workspace', in: 'path', required: true, schema: { type: 'string' } }];
  paths['/v1/webhooks/email/sendgrid/{workspace}'] = {
    post: {
      operationId: 'sendgridEventWebhook',
      summary:
        'SendGrid Signed Event Webhook: bounce (type bounce: hard, suppresses; blocked: soft), dropped, spamreport (suppresses), delivered. Verified with CDP_SENDGRID_WEBHOOK_PUBLIC_KEY; signatures over 10 minutes old are refused; ledger rows and soft-bounce resends only for events whose tags (cdp_ws, cdp_sig) verify for this workspace, others still suppress and track',
      tags: ['email'],
      security: [],
      parameters: [
        ...workspaceParam,
        {
          name: 'X-Twilio-Email-Event-Webhook-Signature',
          in: 'header',
          required: true,
          schema: { type: 'string' },
          description: 'base64 DER ECDSA P-256 SHA-256 signature over timestamp + raw body',
        },
        {
          name: 'X-Twilio-Email-Event-Webhook-Timestamp',
          in: 'header',
          required: true,
          schema: { type: 'string' },
          description: 'unix seconds',
        },
      ],
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'array',
              maxItems: 1000,
              items: {
                type: 'object',
                properties: {
                  email: { type: 'string' },
                  event: { type: 'string' },
                  type: { type: 'string' },
                  reason: { type: 'string' },
                  sg_event_id: { type: 'string' },
                  timestamp: { type: 'integer' },
                  cdp_send_key: { type: 'string' },
                  cdp_campaign: { type: 'string' },
                  cdp_profile: { type: 'string' },
                },
              },
            },
          },
        },
      },
      responses: {
        ...emailWebhookResponses,
        '403': { description: 'bad, missing or stale signature (nothing changed)' },
      },
    },
  };
  paths['/v1/webhooks/email/postmark/{workspace}'] = {
    post: {
      operationId: 'postmarkWebhook',
      summary:
        'Postmark webhook: Bounce (HardBounce, BadEmailAddress, ManuallyDeactivated suppress; SoftBounce, Transient… do not), SpamComplaint (suppresses), Delivery. HTTP Basic credentials from the webhook URL (CDP_POSTMARK_WEBHOOK_USER / _PASSWORD); ledger rows and soft-bounce resends only for events whose tags (cdp_ws, cdp_sig) verify for this workspace, others still suppress and track',
      tags: ['email'],
      security: [{ basicAuth: [] }],
      parameters: workspaceParam,
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              properties: {
                RecordType: { type: 'string', enum: ['Bounce', 'SpamComplaint', 'Delivery'] },
                ID: { type: 'integer' },
                Type: { type: 'string' },
                Email: { type: 'string' },
                Recipient: { type: 'string' },
                MessageID: { type: 'string' },
                Metadata: { type: 'object', description: 'cdp_send_key, cdp_campaign, cdp_profile as sent' },
              },
            },
          },
        },
      },
      responses: {
        ...emailWebhookResponses,
        '401': { description: 'missing or wrong Basic credentials (nothing changed)' },
      },
    },
  };
  paths['/v1/webhooks/email/ses/{workspace}'] = {
    post: {
      operationId: 'sesSnsWebhook',
      summary:
        'Amazon SES bounces, complaints and deliveries through an Amazon SNS HTTPS subscription (raw message delivery off). SNS signature v1/v2 checked with the certificate from https://sns.<region>.amazonaws.com; TopicArn must be on CDP_SES_SNS_TOPIC_ARNS (an `arn=workspace` entry only at that workspace URL); certificate URL https://sns.<region>.amazonaws.com/SimpleNotificationService-<hex>.pem; Timestamp at most 65 minutes old. Bounce Permanent suppresses, Transient/Undetermined are soft, Complaint suppresses (feedback type not-spam is ignored), Delivery is a delivery; ledger rows and soft-bounce resends only for events whose cdp_sig verifies for this workspace; one event per recipient. A SubscriptionConfirmation passing all checks is confirmed (GET of SubscribeURL) and audited',
      tags: ['email'],
      security: [],
      parameters: [
        ...workspaceParam,
        {
          name: 'x-amz-sns-message-type',
          in: 'header',
          required: false,
          schema: {
            type: 'string',
            enum: ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'],
          },
          description: 'set by SNS; the signed Type in the body is what counts',
        },
      ],
      requestBody: {
        required: true,
        description: 'the SNS message as JSON (SNS sends it as text/plain)',
        content: {
          'text/plain': {
            schema: {
              type: 'object',
              required: [
                'Type',
                'MessageId',
                'TopicArn',
                'Message',
                'Timestamp',
                'SignatureVersion',
                'Signature',
                'SigningCertURL',
              ],
              properties: {
                Type: {
                  type: 'string',
                  enum: ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'],
                },
                MessageId: { type: 'string' },
                TopicArn: { type: 'string' },
                Subject: { type: 'string' },
                Message: {
                  type: 'string',
                  description: 'the SES notification JSON (notificationType or eventType)',
                },
                Timestamp: { type: 'string', format: 'date-time' },
                SignatureVersion: { type: 'string', enum: ['1', '2'] },
                Signature: { type: 'string', description: 'base64' },
                SigningCertURL: { type: 'string', format: 'uri' },
                SubscribeURL: { type: 'string', format: 'uri' },
                Token: { type: 'string' },
                UnsubscribeURL: { type: 'string', format: 'uri' },
              },
            },
          },
        },
      },
      responses: {
        ...emailWebhookResponses,
        '200': {
          description:
            'Notification stored: `{success, processed, suppressed, skipped}`; SubscriptionConfirmation: `{success, confirmed: true, already?: true}`; UnsubscribeConfirmation: `{success}`',
        },
        '403': {
          description:
            'not configured (no CDP_SES_SNS_TOPIC_ARNS), topic bound to another workspace, unsigned, bad signature, topic not allowed, certificate URL not on SNS, unusable certificate, stale Timestamp, SubscribeURL not on SNS (nothing changed)',
        },
        '503': {
          description:
            'Redis or Kafka unavailable, the certificate could not be fetched just now, the subscription could not be confirmed, or the same event is being handled by another delivery: retry (SNS does)',
        },
      },
    },
  };
  const twilioWorkspace = [
    {
      name: 'workspace',
      in: 'path',
      required: true,
      schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
    },
    {
      name: 'X-Twilio-Signature',
      in: 'header',
      required: true,
      description:
        'base64 HMAC-SHA1 (key CDP_SMS_AUTH_TOKEN) of CDP_INGEST_PUBLIC_URL + path (+ query) followed by each POST parameter name+value, sorted by name',
      schema: { type: 'string' },
    },
  ];
  const twimlResponses = {
    '200': { description: 'TwiML', content: { 'text/xml': { schema: { type: 'string' } } } },
    '400': { description: 'missing MessageSid / MessageStatus / From, or an unknown status' },
    '403': { description: 'signature missing or wrong; nothing changed' },
    '404': { description: 'unknown workspace' },
    '413': { description: 'body over 64 KB' },
    '415': { description: 'not application/x-www-form-urlencoded' },
    '429': { description: 'too many requests from this address (Retry-After)' },
    '503': { description: 'not configured (CDP_SMS_AUTH_TOKEN unset) or Redis unavailable: retry' },
  };
  paths['/v1/webhooks/sms/twilio/{workspace}/status'] = {
    post: {
      operationId: 'twilioSmsStatus',
      summary:
        'Twilio delivery status callback: kept per MessageSid; failed/undelivered with 21610, 21211 or 21614 suppresses To (phone:). A redelivery changes nothing',
      tags: ['sms'],
      security: [],
      parameters: twilioWorkspace,
      requestBody: {
        required: true,
        content: {
          'application/x-www-form-urlencoded': {
            schema: {
              type: 'object',
              required: ['MessageSid', 'MessageStatus'],
              properties: {
                MessageSid: { type: 'string', maxLength: 64 },
                MessageStatus: {
                  type: 'string',
                  enum: [
                    'accepted',
                    'scheduled',
                    'queued',
                    'sending',
                    'sent',
                    'delivered',
                    'undelivered',
                    'failed',
                    'receiving',
                    'received',
                    'read',
                    'canceled',
                  ],
                },
                ErrorCode: { type: 'string' },
                To: { type: 'string' },
                From: { type: 'string' },
                AccountSid: { type: 'string' },
              },
            },
          },
        },
      },
      responses: twimlResponses,
    },
  };
  paths['/v1/webhooks/sms/twilio/{workspace}/inbound'] = {
    post: {
      operationId: 'twilioSmsInbound',
      summary:
        'Twilio incoming message: STOP/STOPALL/UNSUBSCRIBE/CANCEL/END/QUIT suppress From (phone:), START/UNSTOP/YES lift it (each logged in consent_log, source sms_keyword), HELP answers CDP_SMS_HELP_TEXT. A redelivery changes nothing',
      tags: ['sms'],
      security: [],
      parameters: twilioWorkspace,
      requestBody: {
        required: true,
        content: {
          'application/x-www-form-urlencoded': {
            schema: {
              type: 'object',
              required: ['MessageSid', 'From'],
              properties: {
                MessageSid: { type: 'string', maxLength: 64 },
                From: { type: 'string' },
                To: { type: 'string' },
                Body: { type: 'string' },
              },
            },
          },
        },
      },
      responses: twimlResponses,
    },
  };

  paths['/healthz'] = {
    get: {
      operationId: 'healthz',
      summary: 'Alive',
      tags: ['health'],
      responses: { '200': { description: 'alive' } },
    },
  };
  paths['/readyz'] = {
    get: {
      operationId: 'readyz',
      summary: 'Kafka reachable',
      tags: ['health'],
      responses: {
        '200': { description: 'ready' },
        '503': { description: 'not ready; `checks` names what failed' },
      },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'cdp ingest: Segment-compatible HTTP Tracking API',
      version: '0.1.0',
      description:
        'Authenticate with HTTP Basic (write key as user name, empty password) or `writeKey` in the body. ' +
        'Bodies may be gzip-encoded. Limits: 32 KB per event, 500 KB per request.',
    },
    components: {
      securitySchemes: {
        writeKey: { type: 'http', scheme: 'basic' },
        basicAuth: { type: 'http', scheme: 'basic' },
      },
      schemas: { IncomingEvent, NormalizedEvent },
    },
    security: [{ writeKey: [] }],
    paths,
  };
}
