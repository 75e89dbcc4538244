// Rebuilds profile state in Redis from the ClickHouse history, for when Redis is lost
// (or a profile store must be re-created elsewhere). Every stored event, deduplicated by
// messageId, goes through the same processor pipeline as live traffic, oldest received
// first: identities and merges, traits (last write wins by event time, so the order only
// matters for ties), counted events of the segments defined now, memberships. Segment
// changes are recorded but not published, so campaigns do not fire again; identity
// changes are published (the history's identity links follow the new profile ids).
// Run it with the processor stopped; segment definitions must be in Redis.
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { IncomingMessage } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import type { Processor } from './pipeline.ts';
import type { HistoryRow } from './to-history-row.ts';

/** A row of `events` as read back: the columns the sink wrote, times as text (ms). */
type StoredRow = Pick<
  HistoryRow,
  | 'workspace_id'
  | 'message_id'
  | 'type'
  | 'event'
  | 'name'
  | 'user_id'
  | 'anonymous_id'
  | 'group_id'
  | 'previous_id'
  | 'properties'
  | 'traits'
  | 'context'
  | 'integrations'
> & {
  timestamp: string;
  received_at: string;
  sent_at: string | null;
  original_timestamp: string | null;
  /** The write key's kind (migration 008); '' for events stored before kinds. */
  key_kind?: string;
};

const parseObject = (s: string): Record<string, unknown> => {
  try {
    const v = JSON.parse(s) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
};
const iso = (ms: string | null) => (ms === null ? undefined : new Date(Number(ms)).toISOString());

/** A stored row back into the envelope the processor consumes. */
export function fromHistoryRow(r: StoredRow): NormalizedEvent {
  const e: NormalizedEvent = {
    workspaceId: r.workspace_id,
    messageId: r.message_id,
    type: r.type as NormalizedEvent['type'],
    userId: r.user_id || null,
    anonymousId: r.anonymous_id || null,
    properties: parseObject(r.properties),
    traits: parseObject(r.traits),
    context: parseObject(r.context),
    integrations: parseObject(r.integrations),
    timestamp: iso(r.timestamp)!,
    receivedAt: iso(r.received_at)!,
  };
  if (r.type === 'track' && r.event) e.event = r.event;
  if ((r.type === 'page' || r.type === 'screen') && r.name) e.name = r.name;
  if (r.group_id) e.groupId = r.group_id;
  if (r.previous_id) e.previousId = r.previous_id;
  const sent = iso(r.sent_at);
  if (sent) e.sentAt = sent;
  const original = iso(r.original_timestamp);
  if (original) e.originalTimestamp = original;
  // a client key's event is replayed with the limits it had live (apply-event.lua)
  if (r.key_kind === 'client' || r.key_kind === 'server') e.keyKind = r.key_kind;
  return e;
}

export async function rebuildFromHistory(opts: {
  clickhouse: ClickHouseClient;
  processor: Processor;
  /** One workspace, or every workspace when absent. */
  workspaceId?: string;
  batchSize?: number;
  log: Logger;
  progress?: (events: number) => void;
}): Promise<{ events: number }> {
  const batchSize = opts.batchSize ?? 500;
  const rs = await opts.clickhouse.query({
    query: `SELECT workspace_id, message_id, type, event, name, user_id, anonymous_id, group_id, previous_id,
                   toString(toUnixTimestamp64Milli(timestamp)) AS timestamp,
                   toString(toUnixTimestamp64Milli(received_at)) AS received_at,
                   if(isNull(sent_at), NULL, toString(toUnixTimestamp64Milli(assumeNotNull(sent_at)))) AS sent_at,
                   if(isNull(original_timestamp), NULL,
                      toString(toUnixTimestamp64Milli(assumeNotNull(original_timestamp)))) AS original_timestamp,
                   properties, traits, context, integrations, key_kind
            FROM events
            WHERE {all:UInt8} = 1 OR workspace_id = {ws:String}
            ORDER BY received_at, message_id
            LIMIT 1 BY workspace_id, message_id`,
    query_params: { all: opts.workspaceId ? 0 : 1, ws: opts.workspaceId ?? '' },
    format: 'JSONEachRow',
  });
  let batch: IncomingMessage[] = [];
  let events = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    await opts.processor.handleBatch(
      { topic: 'rebuild', partition: 0, messages: batch },
      { heartbeat: async () => {}, isActive: () => true },
    );
    events += batch.length;
    opts.progress?.(events);
    batch = [];
  };
  for await (const rows of rs.stream<StoredRow>()) {
    for (const row of rows) {
      const e = fromHistoryRow(row.json());
      batch.push({
        topic: 'rebuild',
        partition: 0,
        offset: String(events + batch.length),
        key: null,
        value: Buffer.from(JSON.stringify(e)),
        headers: {},
        timestamp: Date.parse(e.receivedAt),
      });
      if (batch.length >= batchSize) await flush();
    }
  }
  await flush();
  opts.log.info({ workspaceId: opts.workspaceId ?? '*', events }, 'profiles_rebuilt');
  return { events };
}
