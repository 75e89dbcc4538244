// OpenAPI of query/routes/pages.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { PageInput } from '../../schemas/page.ts';
import { errors, id, json, type OpenApiPart, op, query } from '../openapi-common.ts';

/** OpenAPI of query/routes/pages.ts: its paths and the schemas they refer to. */
export const pagesOpenApi: OpenApiPart = {
  paths: {
    '/v1/forms/{id}/stats': {
      get: op(
        'formStats',
        'Submissions (all, from landing pages), unique submitters, the landing-page views that showed the form, conversions and rate, by day and by page',
        {
          parameters: [
            id('id'),
            query('from', { type: 'string', format: 'date-time' }),
            query('to', { type: 'string', format: 'date-time' }),
          ],
        },
      ),
    },
    '/v1/pages': {
      get: op('listPages', 'Landing pages of the workspace (latest versions)', {
        parameters: [query('status', { type: 'string', enum: ['draft', 'published', 'archived'] })],
      }),
      post: op(
        'createPage',
        'Create a landing page (version 1; a draft unless status given); 400 names the field, 409 slug in use, 413 over 256 KB',
        {
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/PageInput' }) },
          responses: { '201': { description: 'created: {id, version, status, slug, …}' }, ...errors },
        },
      ),
    },
    '/v1/pages/{id}': {
      get: op('getPage', 'A landing page (latest version)', { parameters: [id('id')] }),
      put: op('updatePage', 'A new version; 409 when the new slug is in use', {
        parameters: [id('id')],
        requestBody: { required: true, content: json({ $ref: '#/components/schemas/PageInput' }) },
      }),
      delete: op('deletePage', 'Delete a page (its versions stay; its slug is freed)', {
        parameters: [id('id')],
      }),
    },
    '/v1/pages/{id}/versions/{version}': {
      get: op('getPageVersion', 'A saved version of a page', { parameters: [id('id'), id('version')] }),
    },
    '/v1/pages/{id}/publish': {
      post: op('publishPage', 'Publish: the ingest host serves it at /p/{workspace}/{slug}', {
        parameters: [id('id')],
      }),
    },
    '/v1/pages/{id}/unpublish': {
      post: op('unpublishPage', 'Back to draft: a 404 on the ingest host', { parameters: [id('id')] }),
    },
    '/v1/pages/{id}/archive': {
      post: op('archivePage', 'Archive: a 404 on the ingest host; the slug stays taken', {
        parameters: [id('id')],
      }),
    },
    '/v1/pages/{id}/stats': {
      get: op(
        'pageStats',
        'Views, unique visitors, submissions, unique submitters, conversions (submitters who viewed the variant) and rate; per variant and per day',
        {
          parameters: [
            id('id'),
            query('from', { type: 'string', format: 'date-time' }),
            query('to', { type: 'string', format: 'date-time' }),
          ],
        },
      ),
    },
  },
  schemas: {
    PageInput,
  },
};
