// OpenAPI of query/routes/campaigns.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { CampaignInput } from '../../schemas/campaign.ts';
import { errors, id, json, type OpenApiPart, op } from '../openapi-common.ts';

/** OpenAPI of query/routes/campaigns.ts: its paths and the schemas they refer to. */
export const campaignsOpenApi: OpenApiPart = {
  paths: {
    '/v1/campaigns': {
      get: op(
        'listCampaigns',
        'Campaigns of the workspace; a webhook secret never (write-only: `webhook.secretSet`, `webhook.secretFingerprint` with CDP_SECRETS_KEY)',
      ),
      post: op('createCampaign', 'Create a campaign; a webhook secret is generated when none is given', {
        requestBody: { required: true, content: json({ $ref: '#/components/schemas/CampaignInput' }) },
        responses: {
          '201': {
            description:
              'created; `webhook.secret` only when the server generated it, in this answer only (afterwards `webhook.secretSet` and `webhook.secretFingerprint`)',
          },
          ...errors,
        },
      }),
    },
    '/v1/campaigns/{id}': {
      get: op(
        'getCampaign',
        'A campaign; a webhook secret never (`webhook.secretSet`, `webhook.secretFingerprint`)',
        {
          parameters: [id('id')],
        },
      ),
      put: op(
        'updateCampaign',
        'Replace the campaign; the version increases; a webhook secret is kept when omitted (the answer carries `webhook.secret` only when one was generated now)',
        {
          parameters: [id('id')],
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/CampaignInput' }) },
        },
      ),
      delete: op('deleteCampaign', 'Delete', {
        parameters: [id('id')],
        responses: { '204': { description: 'deleted' }, ...errors },
      }),
    },
    '/v1/campaigns/{id}/pause': {
      post: op('pauseCampaign', 'Pause: nothing is sent, delayed and retried sends are dropped (on record)', {
        parameters: [id('id')],
      }),
    },
    '/v1/campaigns/{id}/resume': {
      post: op('resumeCampaign', 'Resume a paused campaign', { parameters: [id('id')] }),
    },
    '/v1/campaigns/{id}/stats': {
      get: op(
        'campaignStats',
        'Sent, failed, retried, delayed, suppressed by reason; delivery latency p50/p99 (ms); what the email provider reported back, delivery {delivered, bounced, softBounced, complained, deliveryRate, bounceRate, complaintRate} (never counted as sends); with email tracking, engagement {opened, clicked, machineOnlyOpened, machineOnlyClicked, openRate, clickRate} per send',
        {
          parameters: [id('id')],
        },
      ),
    },
  },
  schemas: {
    CampaignInput,
  },
};
