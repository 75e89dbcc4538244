// OpenAPI of query/routes/journeys.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { JourneyInput } from '../../schemas/journey.ts';
import { bodySchema, errors, id, json, type OpenApiPart, op } from '../openapi-common.ts';
import { MigrateInput } from './journeys.ts';

/** OpenAPI of query/routes/journeys.ts: its paths and the schemas they refer to. */
export const journeysOpenApi: OpenApiPart = {
  paths: {
    '/v1/journeys': {
      get: op(
        'listJourneys',
        'Journeys of the workspace (latest versions); webhook secrets never (write-only: a node’s `webhook.secretSet`, `webhook.secretFingerprint`)',
      ),
      post: op(
        'createJourney',
        'Create a journey as a draft (version 1); 400 names the field of a bad graph',
        {
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/JourneyInput' }) },
          responses: {
            '201': {
              description:
                'created: {id, version, status: "draft", …}; a node’s `webhook.secret` only when the server generated it, in this answer only',
            },
            ...errors,
          },
        },
      ),
    },
    '/v1/journeys/{id}': {
      get: op('getJourney', 'A journey (latest version); webhook secrets never (`webhook.secretSet`)', {
        parameters: [id('id')],
      }),
      put: op(
        'updateJourney',
        'A new version; people in flight stay on the version they entered (409 once archived); a webhook step’s secret is kept when omitted',
        {
          parameters: [id('id')],
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/JourneyInput' }) },
        },
      ),
    },
    ...Object.fromEntries(
      (
        [
          ['activate', 'draft → active: people start entering'],
          ['pause', 'active → paused: no entries, no steps; people stay where they are'],
          ['resume', 'paused → active: waits past their time end at once'],
          ['archive', 'draft, active or paused → archived (final): runs end as they next move'],
        ] as const
      ).map(([action, summary]) => [
        `/v1/journeys/{id}/${action}`,
        {
          post: op(`${action}Journey`, `${summary} (409 from another status)`, { parameters: [id('id')] }),
        },
      ]),
    ),
    '/v1/journeys/{id}/stats': {
      get: op(
        'journeyStats',
        'Counts: {entered, refused, convertedAfterExit, ended: {reason: n}, nodes: {<nodeId>: {now, passed, converted, exited}}, branches: {<nodeId>: {<arm>: {entered, converted, rate}}}, holdouts: {<splitId>: {treatment, holdout, lift, difference, confidence}}}',
        { parameters: [id('id')] },
      ),
    },
    '/v1/journeys/{id}/migrate': {
      post: op(
        'migrateJourney',
        'Move people in flight on version `from` to the current version: {from, nodes?: {<old node>: <new node>}} → 202 (409 while one is under way)',
        {
          parameters: [id('id')],
          requestBody: { required: true, content: json(bodySchema(MigrateInput)) },
          responses: { '202': { description: 'the migration, pending' }, ...errors },
        },
      ),
    },
    '/v1/journeys/{id}/migration': {
      get: op('journeyMigration', 'The latest migration: {from, to, status, moved, skipped, …} (404: none)', {
        parameters: [id('id')],
      }),
    },
  },
  schemas: {
    JourneyInput,
  },
};
