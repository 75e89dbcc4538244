// OpenAPI of query/routes/profile-definitions.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { ComputedTraitInput } from '../../schemas/computed-trait.ts';
import { LeadScoreInput } from '../../schemas/lead-score.ts';
import { err, errors, id, json, type OpenApiPart, op } from '../openapi-common.ts';

/** OpenAPI of query/routes/profile-definitions.ts: its paths and the schemas they refer to. */
export const profileDefinitionsOpenApi: OpenApiPart = {
  paths: {
    '/v1/computed-traits': {
      get: op('listComputedTraits', 'Computed traits of the workspace'),
      post: op(
        'createComputedTrait',
        'Define a count, sum, min, max or last value of an event property over a window',
        {
          requestBody: {
            required: true,
            content: json({ $ref: '#/components/schemas/ComputedTraitInput' }),
          },
          responses: {
            '201': { description: 'created' },
            '409': { description: 'name in use', content: json(err) },
            ...errors,
          },
        },
      ),
    },
    '/v1/computed-traits/{id}': {
      get: op('getComputedTrait', 'A computed trait', { parameters: [id('id')] }),
      put: op('updateComputedTrait', 'Replace the definition; the version increases', {
        parameters: [id('id')],
        requestBody: { required: true, content: json({ $ref: '#/components/schemas/ComputedTraitInput' }) },
      }),
      delete: op('deleteComputedTrait', 'Delete (refused while a segment reads it)', {
        parameters: [id('id')],
        responses: {
          '204': { description: 'deleted' },
          '409': { description: 'in use', content: json(err) },
          ...errors,
        },
      }),
    },
    '/v1/scores': {
      get: op('listScores', 'Lead scores of the workspace'),
      post: op(
        'createScore',
        'Define a lead score: points per event or while a trait condition holds, optional half-life',
        {
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/LeadScoreInput' }) },
          responses: {
            '201': { description: 'created' },
            '409': { description: 'name in use', content: json(err) },
            ...errors,
          },
        },
      ),
    },
    '/v1/scores/{id}': {
      get: op('getScore', 'A lead score', { parameters: [id('id')] }),
      put: op('updateScore', 'Replace the definition; the version increases', {
        parameters: [id('id')],
        requestBody: { required: true, content: json({ $ref: '#/components/schemas/LeadScoreInput' }) },
      }),
      delete: op('deleteScore', 'Delete (refused while a segment reads it)', {
        parameters: [id('id')],
        responses: {
          '204': { description: 'deleted' },
          '409': { description: 'in use', content: json(err) },
          ...errors,
        },
      }),
    },
  },
  schemas: {
    ComputedTraitInput,
    LeadScoreInput,
  },
};
