// OpenAPI of query/routes/tracking-plan.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { errors, id, json, type OpenApiPart, op, query } from '../openapi-common.ts';

/** OpenAPI of query/routes/tracking-plan.ts: its paths and the schemas they refer to. */
export const trackingPlanOpenApi: OpenApiPart = {
  paths: {
    '/v1/tracking-plan': {
      get: op('getTrackingPlan', 'The workspace tracking plan (latest version); 404 when there is none'),
      put: op(
        'putTrackingPlan',
        'Save the tracking plan (a new version; applies at ingest within CDP_DEFINITIONS_POLL_MS); 400 names the path of a schema that does not compile, refers outside itself, is too large or deep, or has a nested-quantifier pattern',
        {
          requestBody: {
            required: true,
            content: json({ $ref: '#/components/schemas/TrackingPlanInput' }),
          },
          responses: {
            '200': { description: 'updated: the plan with its new version' },
            '201': { description: 'created: the plan, version after any deleted plan versions' },
            ...errors,
          },
        },
      ),
      delete: op('deleteTrackingPlan', 'Remove the plan (its versions stay); events are no longer checked', {
        responses: { '204': { description: 'deleted' }, ...errors },
      }),
    },
    '/v1/tracking-plan/versions/{version}': {
      get: op('getTrackingPlanVersion', 'A saved version of the tracking plan', {
        parameters: [id('version')],
      }),
    },
    '/v1/tracking-plan/violations': {
      get: op(
        'trackingPlanViolations',
        'Violations in [from, to) by event, property path and keyword: distinct events, by mode, last seen; and per event. Identify and group traits are under $identify and $group',
        {
          parameters: [
            query('from', { type: 'string', format: 'date-time' }),
            query('to', { type: 'string', format: 'date-time' }),
            query('event'),
          ],
        },
      ),
    },
    '/v1/tracking-plan/quarantine': {
      get: op(
        'listQuarantinedEvents',
        'Quarantined events, newest first, with reason, violations and the event (payload); paged by cursor',
        {
          parameters: [
            query('from', { type: 'string', format: 'date-time' }),
            query('to', { type: 'string', format: 'date-time' }),
            query('limit', { type: 'integer', minimum: 1, maximum: 1000 }),
            query('cursor'),
            query('event'),
            query('status', { type: 'string', enum: ['quarantined', 'replayed', 'all'] }),
          ],
        },
      ),
    },
    '/v1/tracking-plan/replay': {
      post: op(
        'replayQuarantine',
        'Re-check quarantined events against the current plan; the passing ones go to the pipeline with their messageId and are marked replayed → {replayed, stillInvalid, more, planVersion}; 409 while another replay of the workspace runs',
        {
          requestBody: {
            required: false,
            content: json({
              type: 'object',
              additionalProperties: false,
              properties: {
                from: { type: 'string', format: 'date-time' },
                to: { type: 'string', format: 'date-time' },
                event: {
                  type: 'string',
                  description: 'only events of this name ($identify, $group for those calls)',
                },
              },
            }),
          },
        },
      ),
    },
  },
  schemas: {
    TrackingPlanInput: {
      type: 'object',
      required: ['mode', 'events'],
      additionalProperties: false,
      properties: {
        mode: { type: 'string', enum: ['allow', 'flag', 'quarantine'] },
        unplannedEvents: {
          type: 'string',
          enum: ['allow', 'violation'],
          description: 'what a track event whose name is not listed is (default allow)',
        },
        events: {
          type: 'object',
          description: 'track events by name',
          additionalProperties: {
            type: 'object',
            additionalProperties: false,
            properties: {
              description: { type: 'string', maxLength: 2000 },
              properties: { description: 'JSON Schema (draft 2020-12) of the event properties' },
              traits: { description: 'JSON Schema of context.traits' },
            },
          },
        },
        identify: {
          type: 'object',
          additionalProperties: false,
          properties: { traits: { description: 'JSON Schema of identify traits' } },
        },
        group: {
          type: 'object',
          additionalProperties: false,
          properties: { traits: { description: 'JSON Schema of group traits' } },
        },
      },
    },
  },
};
