// OpenAPI of query/routes/segments.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { SegmentInput } from '../../schemas/segment.ts';
import { bodySchema, err, errors, id, json, type OpenApiPart, op, query } from '../openapi-common.ts';
import { SegmentPreviewInput } from './segments.ts';

/** OpenAPI of query/routes/segments.ts: its paths and the schemas they refer to. */
export const segmentsOpenApi: OpenApiPart = {
  paths: {
    '/v1/segments': {
      get: op('listSegments', 'Segments of the workspace'),
      post: op('createSegment', 'Create a segment from a JSON Logic rule', {
        requestBody: { required: true, content: json({ $ref: '#/components/schemas/SegmentInput' }) },
        responses: { '201': { description: 'created' }, ...errors },
      }),
    },
    '/v1/segments/preview': {
      post: op(
        'previewSegment',
        'Evaluate a rule over a sample of profiles without saving it: estimated size and matching profiles',
        {
          requestBody: {
            required: true,
            content: json(bodySchema(SegmentPreviewInput)),
          },
        },
      ),
    },
    '/v1/segments/{id}': {
      get: op(
        'getSegment',
        'A segment, with its backfill status and `noCampaign: {entered, exited}` (changes no active campaign matched)',
        { parameters: [id('id')] },
      ),
      put: op('updateSegment', 'Replace name and rule; the version increases', {
        parameters: [id('id')],
        requestBody: { required: true, content: json({ $ref: '#/components/schemas/SegmentInput' }) },
      }),
      delete: op(
        'deleteSegment',
        'Delete (refused while other segments or campaigns use it); emits no exits',
        {
          parameters: [id('id')],
          responses: {
            '204': { description: 'deleted' },
            '409': { description: 'in use', content: json(err) },
            ...errors,
          },
        },
      ),
    },
    '/v1/segments/{id}/members': {
      get: op('segmentMembers', 'Member profile ids, oldest entry first', {
        parameters: [
          id('id'),
          query('cursor'),
          query('limit', { type: 'integer', minimum: 1, maximum: 1000 }),
        ],
      }),
    },
  },
  schemas: {
    SegmentInput,
  },
};
