// OpenAPI of query/routes/forms.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { FormInput } from '../../schemas/form.ts';
import { errors, id, json, type OpenApiPart, op } from '../openapi-common.ts';

/** OpenAPI of query/routes/forms.ts: its paths and the schemas they refer to. */
export const formsOpenApi: OpenApiPart = {
  paths: {
    '/v1/forms': {
      get: op('listForms', 'Forms of the workspace (latest versions)'),
      post: op('createForm', 'Create a form (version 1; status active unless given); 400 names the field', {
        requestBody: { required: true, content: json({ $ref: '#/components/schemas/FormInput' }) },
        responses: { '201': { description: 'created: {id, version, status, …}' }, ...errors },
      }),
    },
    '/v1/forms/{id}': {
      get: op('getForm', 'A form (latest version)', { parameters: [id('id')] }),
      put: op('updateForm', 'A new version (consent records name the version whose text was shown)', {
        parameters: [id('id')],
        requestBody: { required: true, content: json({ $ref: '#/components/schemas/FormInput' }) },
      }),
      delete: op('deleteForm', 'Delete a form (its versions stay, for the consent records)', {
        parameters: [id('id')],
      }),
    },
    '/v1/forms/{id}/versions/{version}': {
      get: op('getFormVersion', 'A saved version of a form', { parameters: [id('id'), id('version')] }),
    },
    '/v1/forms/{id}/pause': {
      post: op('pauseForm', 'Pause: the ingest host answers its posts 409', { parameters: [id('id')] }),
    },
    '/v1/forms/{id}/activate': {
      post: op('activateForm', 'Take submissions again', { parameters: [id('id')] }),
    },
  },
  schemas: {
    FormInput,
  },
};
