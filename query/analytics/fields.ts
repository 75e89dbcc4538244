// Field paths into an event, checked against a strict grammar and turned into SQL over the
// `events` table: typed columns where one holds exactly that value, else JSONExtract on
// the stored JSON string with every key bound as a parameter.
//
//   top-level   event | type | name | userId | anonymousId | messageId | groupId
//   typed       context.campaign.{name,source,medium,term,content}  → campaign_*
//               properties.revenue, properties.value                → revenue, value
//               page.{url,path,referrer} (properties.url, else context.page.url, …) → page_*
//               context.ip                                          → ip
//   JSON        properties.a.b, context.a.b, traits.a, integrations.a (1 to 8 keys of
//               letters, digits, _ $ -, each at most 64 characters)
// A leading `event.` is accepted and ignored (segment rules write `event.properties.x`).
import { InputError, type SqlParams } from './sql-params.ts';

export interface FieldSql {
  /** The value as a String ('' when absent or not a string). */
  str: string;
  /** The value as Nullable(Float64) (NULL when absent or not a number). */
  num: string;
  /** The value as Nullable(Bool). */
  bool: string;
}

const TOP: Record<string, string> = {
  event: 'event',
  type: 'type',
  name: 'name',
  userId: 'user_id',
  anonymousId: 'anonymous_id',
  messageId: 'message_id',
  groupId: 'group_id',
};
const TYPED_STRING: Record<string, string> = {
  'context.campaign.name': 'campaign_name',
  'context.campaign.source': 'campaign_source',
  'context.campaign.medium': 'campaign_medium',
  'context.campaign.term': 'campaign_term',
  'context.campaign.content': 'campaign_content',
  'page.url': 'page_url',
  'page.path': 'page_path',
  'page.referrer': 'page_referrer',
  'context.ip': 'ip',
};
const TYPED_NUMBER: Record<string, string> = {
  'properties.revenue': 'revenue',
  'properties.value': 'value',
};
const JSON_ROOTS = new Set(['properties', 'context', 'traits', 'integrations']);
const KEY = /^[A-Za-z0-9_$-]{1,64}$/;
const MAX_KEYS = 8;

export const FIELD_GRAMMAR =
  'a top-level field (event, type, name, userId, anonymousId, messageId, groupId), page.url|path|referrer, ' +
  'or properties|context|traits|integrations followed by 1 to 8 .keys of letters, digits, _ $ -';

export function fieldSql(path: unknown, field: string, params: SqlParams): FieldSql {
  if (typeof path !== 'string' || path.length === 0 || path.length > 600)
    throw new InputError(field, `expected a field path: ${FIELD_GRAMMAR}`);
  const p = path.startsWith('event.') ? path.slice('event.'.length) : path;
  const top = TOP[p];
  if (top) return { str: top, num: `toFloat64OrNull(${top})`, bool: "CAST(NULL, 'Nullable(Bool)')" };
  const ts = TYPED_STRING[p];
  if (ts) return { str: ts, num: `toFloat64OrNull(${ts})`, bool: "CAST(NULL, 'Nullable(Bool)')" };
  const tn = TYPED_NUMBER[p];
  if (tn)
    return {
      str: `ifNull(toString(${tn}), '')`,
      num: tn,
      bool: "CAST(NULL, 'Nullable(Bool)')",
    };
  const parts = p.split('.');
  const root = parts[0]!;
  const keys = parts.slice(1);
  if (!JSON_ROOTS.has(root) || keys.length < 1 || keys.length > MAX_KEYS || !keys.every((k) => KEY.test(k)))
    throw new InputError(
      field,
      `${JSON.stringify(path.slice(0, 100))} is not a field path: ${FIELD_GRAMMAR}`,
    );
  const args = keys.map((k) => params.bind(k, 'String')).join(', ');
  return {
    str: `JSONExtractString(${root}, ${args})`,
    num: `JSONExtract(${root}, ${args}, 'Nullable(Float64)')`,
    bool: `JSONExtract(${root}, ${args}, 'Nullable(Bool)')`,
  };
}
