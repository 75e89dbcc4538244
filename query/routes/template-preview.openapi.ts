// OpenAPI of query/routes/template-preview.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { bodySchema, json, type OpenApiPart, op } from '../openapi-common.ts';
import { TemplatePreviewInput } from './template-preview.ts';

/** OpenAPI of query/routes/template-preview.ts: its paths and the schemas they refer to. */
export const templatePreviewOpenApi: OpenApiPart = {
  paths: {
    '/v1/templates/preview': {
      post: op(
        'previewTemplate',
        'Render a channel’s Liquid templates (email, sms, push) for a profile, as activation would; nothing is sent',
        {
          requestBody: {
            required: true,
            content: json(bodySchema(TemplatePreviewInput)),
          },
        },
      ),
    },
  },
};
