// What the OpenAPI parts of the query API share (query/routes/*.openapi.ts, query/openapi.ts):
// content and error helpers, parameters, and schemas more than one part refers to.
import { ERASURE_STEPS } from '../schemas/erasure.ts';

/** One route file's share of the document: its paths and the component schemas they refer to. */
export interface OpenApiPart {
  paths: Record<string, object>;
  schemas?: Record<string, object>;
}

export const json = (schema: object) => ({ 'application/json': { schema } });

/** A TypeBox schema as the document shows it: without the `errorMessage` only our 400s use. */
export const bodySchema = (schema: object): object =>
  JSON.parse(JSON.stringify(schema, (k, v) => (k === 'errorMessage' ? undefined : v)));

export const err = { type: 'object', properties: { error: { type: 'string' } }, required: ['error'] };

export const errors = {
  '400': { description: 'Invalid input; `error` names the field', content: json(err) },
  '401': { description: 'Missing or unknown admin key', content: json(err) },
  '404': { description: 'Not found', content: json(err) },
  '429': {
    description: 'Too many wrong admin keys from this address; retry after `Retry-After` seconds',
    headers: { 'Retry-After': { schema: { type: 'integer' } } },
    content: json(err),
  },
};

export const id = (name: string) => ({ name, in: 'path', required: true, schema: { type: 'string' } });

export const query = (name: string, schema: object = { type: 'string' }) => ({
  name,
  in: 'query',
  required: false,
  schema,
});

/** Time range, page size, cursor and format of the keyset-paged listings (ledger, audit). */
export const pageParams = [
  query('from', { type: 'string', format: 'date-time' }),
  query('to', { type: 'string', format: 'date-time' }),
  query('limit', { type: 'integer', minimum: 1, maximum: 1000 }),
  query('cursor'),
  query('format', { type: 'string', enum: ['json', 'csv'] }),
];

export const op = (operationId: string, summary: string, extra: object = {}) => ({
  operationId,
  summary,
  responses: { '200': { description: 'OK' }, ...errors },
  ...extra,
});

export const ErasureJob = {
  type: 'object',
  description: 'An erasure job: its state and counts, never the erased data',
  properties: {
    id: { type: 'string' },
    profileId: { type: 'string' },
    status: { type: 'string', enum: ['pending', 'done'] },
    done: {
      type: 'array',
      items: { type: 'string', enum: [...ERASURE_STEPS] },
      description: 'steps done, in order',
    },
    counts: { type: 'object', additionalProperties: { type: 'integer' } },
    requestedBy: { type: 'string', description: 'fingerprint of the admin key' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    finishedAt: { type: ['string', 'null'], format: 'date-time' },
    attempts: { type: 'integer', description: 'failed attempts so far' },
    lastError: { type: ['string', 'null'] },
    nextAttemptAt: { type: ['string', 'null'], format: 'date-time' },
  },
};
