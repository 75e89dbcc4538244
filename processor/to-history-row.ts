// Step (pure): a normalised event to a row of the ClickHouse `events` table.
import type { NormalizedEvent } from '../schemas/event.ts';

export interface HistoryRow {
  workspace_id: string;
  message_id: string;
  type: string;
  event: string;
  name: string;
  user_id: string;
  anonymous_id: string;
  group_id: string;
  previous_id: string;
  timestamp: number;
  received_at: number;
  sent_at: number | null;
  original_timestamp: number | null;
  properties: string;
  traits: string;
  context: string;
  integrations: string;
  page_url: string;
  page_path: string;
  page_referrer: string;
  campaign_name: string;
  campaign_source: string;
  campaign_medium: string;
  campaign_term: string;
  campaign_content: string;
  revenue: number | null;
  value: number | null;
  ip: string;
}

/** The columns a HistoryRow fills, in insert order. */
export const HISTORY_COLUMNS = [
  'workspace_id',
  'message_id',
  'type',
  'event',
  'name',
  'user_id',
  'anonymous_id',
  'group_id',
  'previous_id',
  'timestamp',
  'received_at',
  'sent_at',
  'original_timestamp',
  'properties',
  'traits',
  'context',
  'integrations',
  'page_url',
  'page_path',
  'page_referrer',
  'campaign_name',
  'campaign_source',
  'campaign_medium',
  'campaign_term',
  'campaign_content',
  'revenue',
  'value',
  'ip',
] as const satisfies readonly (keyof HistoryRow)[];
// every field of HistoryRow is inserted: this fails to compile when one is left out above
type Unlisted = Exclude<keyof HistoryRow, (typeof HISTORY_COLUMNS)[number]>;
export const HISTORY_COLUMNS_COMPLETE: [Unlisted] extends [never] ? true : never = true;

const str = (v: unknown): string =>
  typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
const num = (v: unknown): number | null => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
  return Number.isFinite(n) ? n : null;
};
const obj = (v: unknown): Record<string, unknown> =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const ms = (iso: string | undefined): number | null => {
  const t = iso ? Date.parse(iso) : Number.NaN;
  return Number.isNaN(t) ? null : t;
};

export function toHistoryRow(e: NormalizedEvent): HistoryRow {
  const page = obj(e.context.page);
  const campaign = obj(e.context.campaign);
  const props = e.properties;
  return {
    workspace_id: e.workspaceId,
    message_id: e.messageId,
    type: e.type,
    event: e.event ?? (e.type === 'track' ? '' : e.type),
    name: e.name ?? '',
    user_id: e.userId ?? '',
    anonymous_id: e.anonymousId ?? '',
    group_id: e.groupId ?? '',
    previous_id: e.previousId ?? '',
    timestamp: Date.parse(e.timestamp),
    received_at: Date.parse(e.receivedAt),
    sent_at: ms(e.sentAt),
    original_timestamp: ms(e.originalTimestamp),
    properties: JSON.stringify(props),
    traits: JSON.stringify(e.traits),
    context: JSON.stringify(e.context),
    integrations: JSON.stringify(e.integrations),
    page_url: str(props.url ?? page.url),
    page_path: str(props.path ?? page.path),
    page_referrer: str(props.referrer ?? page.referrer),
    campaign_name: str(campaign.name),
    campaign_source: str(campaign.source),
    campaign_medium: str(campaign.medium),
    campaign_term: str(campaign.term),
    campaign_content: str(campaign.content),
    revenue: num(props.revenue),
    value: num(props.value),
    ip: str(e.context.ip),
  };
}

// DateTime64(3) holds 1900-01-01 to 2299-12-31; a row outside would fail the whole insert.
const MIN_TIME = Date.UTC(1900, 0, 1);
const MAX_TIME = Date.UTC(2299, 11, 31);
const badTime = (t: number | null) => t !== null && !(t >= MIN_TIME && t <= MAX_TIME);

/** Why ClickHouse would refuse this row (so it goes to the dead-letter topic), or undefined. */
export function checkHistoryRow(r: HistoryRow): string | undefined {
  if (badTime(r.timestamp) || Number.isNaN(r.timestamp)) return 'timestamp outside 1900-2299';
  if (badTime(r.received_at) || Number.isNaN(r.received_at)) return 'receivedAt outside 1900-2299';
  if (badTime(r.sent_at)) return 'sentAt outside 1900-2299';
  if (badTime(r.original_timestamp)) return 'originalTimestamp outside 1900-2299';
  return undefined;
}
