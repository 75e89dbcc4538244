// OpenAPI of query/routes/ledger.ts: its paths, and the schemas they refer to (TypeBox ones where
// the route validates with them); query/openapi.ts assembles the parts.
import { type OpenApiPart, op, pageParams, query } from '../openapi-common.ts';

/** OpenAPI of query/routes/ledger.ts: its paths and the schemas they refer to. */
export const ledgerOpenApi: OpenApiPart = {
  paths: {
    '/v1/ledger': {
      get: op(
        'listLedger',
        'Send decisions (sent, suppressed and why, failed, retried, delayed), newest first: {items, nextCursor}; `nextCursor` is the cursor of the following page (null at the end); `format=csv` streams every matching row',
        {
          parameters: [
            ...pageParams,
            ...['campaignId', 'journeyId', 'outcome', 'reason', 'channel', 'profileId', 'userId'].map((n) =>
              query(n),
            ),
          ],
        },
      ),
    },
    '/v1/ledger/journey-steps': {
      get: op(
        'listJourneySteps',
        'Steps of journey runs (entered, waited, branched, sent, converted, exited), newest first, paged as /v1/ledger',
        {
          parameters: [
            ...pageParams,
            ...['journeyId', 'step', 'nodeId', 'profileId', 'userId'].map((n) => query(n)),
          ],
        },
      ),
    },
  },
};
