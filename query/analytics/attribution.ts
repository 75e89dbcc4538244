// Attribution: for each conversion in range, its touches are the same person's events at
// or before it and within `lookback` (possibly before `from`) whose touchpoint field is
// non-empty, in time order. Credit per model:
//   first_touch / last_touch   1 to the earliest / latest touch
//   linear                     1/n to each
//   time_decay                 2^(-age/halfLife), normalised to 1 (age = conversion − touch)
//   position_based             40% first, 40% last, 20% split over those between;
//                              one touch 100%, two 50/50
// `value` (a numeric field of the conversion, 0 when absent) is shared in the same
// proportions. A conversion without touches counts in `unattributed`.
// With `sends`, the messages sent to the person are touches too: the ledger's `sent` rows
// (one per send key: a redelivered batch writes a row twice), at the time of the decision,
// of the person the profile belongs to now (a merged-away profile's sends count for the
// survivor), named `campaign:<id>` (a journey step `journey:<id>:<node>`, any version) or
// `channel:<channel>`.
// One pass per person: its conversions and its touches as arrays, no self-join.
import type { ATTRIBUTION_MODELS, AttributionBody } from './bodies.ts';
import { fieldSql } from './fields.ts';
import { type AnalyticsContext, checkRowCap, runAnalyticsQuery } from './run-query.ts';
import { InputError, SqlParams } from './sql-params.ts';
import { stitchedEvents } from './stitched-events.ts';
import { DAY_MS, parseDuration, parseRange } from './time.ts';
import { compileWhere } from './where.ts';

export type AttributionModel = (typeof ATTRIBUTION_MODELS)[number];

export interface AttributionResult {
  rows: Array<{ touchpoint: string; model: AttributionModel; conversions: number; value: number }>;
  unattributed: number;
  unattributedValue: number;
}

export async function attribution(ctx: AnalyticsContext, body: AttributionBody): Promise<AttributionResult> {
  const { fromMs, toMs } = parseRange(body, ctx.limits.maxRangeDays);
  const lookbackMs = parseDuration(body.lookback, 'lookback');
  const halfLifeMs = parseDuration(body.halfLife ?? '7d', 'halfLife');
  const params = new SqlParams();
  const conv = params.bind(body.conversionEvent, 'String');
  if (body.touchpoint === undefined && body.sends === undefined)
    throw new InputError('touchpoint', 'give a touchpoint field, sends, or both');
  const touch = body.touchpoint === undefined ? "''" : fieldSql(body.touchpoint, 'touchpoint', params).str;
  const value = body.value === undefined ? '0' : `ifNull(${fieldSql(body.value, 'value', params).num}, 0)`;
  // `where` narrows the conversions (touches are whatever carries the touchpoint)
  const where = body.where === undefined ? '1' : compileWhere(body.where, 'where', params);
  const events = stitchedEvents(
    {
      workspaceId: ctx.workspaceId,
      // touches may come before `from`, by up to the lookback
      fromMs: fromMs - lookbackMs,
      toMs,
      columns: {
        is_conv: `(event = ${conv} AND ${where})`,
        tp: touch,
        val: value,
      },
      persons: true,
    },
    params,
  );
  const touches =
    body.sends === undefined
      ? events
      : `(SELECT person, ts, message_id, is_conv, toFloat64(val) AS val, tp FROM ${events}
          UNION ALL
          SELECT person, ts, '' AS message_id, 0 AS is_conv, 0. AS val, tp
          FROM ${sentTouches(ctx.workspaceId, fromMs - lookbackMs, toMs, body.sends, params)})`;
  const from = params.bind(fromMs, 'Int64');
  const lookback = params.bind(lookbackMs, 'Int64');
  const halfLife = params.bind(halfLifeMs, 'Float64');
  const models = params.bind([...body.models], 'Array(String)');
  // per conversion: ct = its touches (time, touchpoint) sorted, n = how many
  const weights = `multiIf(
      n = 0, [1.],
      model = 'first_touch', arrayMap(i -> if(i = 1, 1., 0.), arrayEnumerate(ct)),
      model = 'last_touch', arrayMap(i -> if(i = n, 1., 0.), arrayEnumerate(ct)),
      model = 'linear', arrayMap(i -> 1. / n, arrayEnumerate(ct)),
      model = 'time_decay', arrayMap(d -> d / arraySum(decay), decay),
      arrayMap(i -> multiIf(n = 1, 1., n = 2, 0.5, i = 1 OR i = n, 0.4, 0.2 / (n - 2)), arrayEnumerate(ct)))`;
  const sql = `SELECT model, tw.1 AS touchpoint, sum(tw.2) AS conversions, sum(tw.2 * cval) AS value
    FROM (
      SELECT c.3 AS cval, arrayFilter(t -> t.1 <= c.1 AND t.1 >= c.1 - ${lookback}, touches) AS ct,
        length(ct) AS n, arrayMap(t -> pow(2., -(c.1 - t.1) / ${halfLife}), ct) AS decay
      FROM (
        SELECT groupArrayIf((ts, message_id, val), is_conv AND ts >= ${from}) AS convs,
          arraySort(groupArrayIf((ts, tp), tp != '')) AS touches
        FROM ${touches}
        GROUP BY person
        HAVING length(convs) > 0)
      ARRAY JOIN convs AS c)
    ARRAY JOIN ${models} AS model
    ARRAY JOIN arrayZip(if(n = 0, [''], arrayMap(t -> t.2, ct)), ${weights}) AS tw
    GROUP BY model, touchpoint
    ORDER BY model, conversions DESC, touchpoint
    LIMIT ${params.bind(ctx.limits.maxRows + body.models.length + 1, 'UInt32')}`;
  const rows = await runAnalyticsQuery<{
    model: string;
    touchpoint: string;
    conversions: number;
    value: number;
  }>(ctx, 'attribution', sql, params);
  const attributed = rows.filter((r) => r.touchpoint !== '');
  checkRowCap(attributed.length, ctx, 'touchpoint');
  const none = rows.find((r) => r.touchpoint === '');
  return {
    rows: attributed.map((r) => ({
      touchpoint: r.touchpoint,
      model: r.model as AttributionModel,
      conversions: Number(r.conversions),
      value: Number(r.value),
    })),
    unattributed: Math.round(Number(none?.conversions ?? 0)),
    unattributedValue: Number(none?.value ?? 0),
  };
}

export const DEFAULT_HALF_LIFE_MS = 7 * DAY_MS;

/** The ledger's sends as touches: `person`, `ts` (ms), `tp`, once per send key. */
function sentTouches(
  workspaceId: string,
  fromMs: number,
  toMs: number,
  sends: NonNullable<AttributionBody['sends']>,
  params: SqlParams,
): string {
  const ws = params.bind(workspaceId, 'String');
  // journey sends are recorded under `<journeyId>@<version>.<nodeId>`
  const name =
    sends.by === 'channel'
      ? `concat('channel:', channel)`
      : `if(match(campaign_id, '^jrn_[^@]*@[0-9]+[.]'),
          concat('journey:', substring(campaign_id, 1, position(campaign_id, '@') - 1), ':',
                 replaceRegexpOne(campaign_id, '^[^@]*@[0-9]+[.]', '')),
          concat('campaign:', campaign_id))`;
  const channels = sends.channels ? `AND channel IN ${params.bind(sends.channels, 'Array(String)')}` : '';
  return `(SELECT if(pl.pid != '', pl.pid, s.profile_id) AS person, s.ts AS ts, s.tp AS tp
    FROM (
      SELECT send_key, any(profile_id) AS profile_id, toUnixTimestamp64Milli(min(at)) AS ts, any(${name}) AS tp
      FROM activation_ledger
      WHERE workspace_id = ${ws} AND outcome = 'sent' AND channel != 'destination'
        AND at >= fromUnixTimestamp64Milli(${params.bind(fromMs, 'Int64')})
        AND at < fromUnixTimestamp64Milli(${params.bind(toMs, 'Int64')})
        ${channels}
      GROUP BY send_key) AS s
    LEFT JOIN (SELECT id_value, argMax(profile_id, version) AS pid
      FROM identity_links WHERE workspace_id = ${ws} AND id_type = 'profile' GROUP BY id_value) AS pl
      ON pl.id_value = s.profile_id)`;
}
