// What the console's live view shows: events per second (one workspace, from the history in
// ClickHouse), latency percentiles of the stages whose times are stored (ingest → history
// row; segment change → send; the provider call) and consumer-group lag from Kafka (the
// whole deployment, not one workspace).
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import { withTimeout } from '../runtime/http.ts';
import type { Admin } from '../runtime/kafka/types.ts';
import { CONSUMER_GROUPS, type ConsumerGroupName, consumerGroup } from '../schemas/topics.ts';

export const RATE_WINDOW_S = 60;
export const LATENCY_WINDOW_MIN = 5;

export interface StageLatency {
  stage: string;
  description: string;
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface GroupLag {
  group: string;
  topic: string;
  partitions: number;
  /** null when Kafka did not answer for this group (lagError says why). */
  lag: number | null;
}

export interface PipelineStats {
  at: string;
  events: { perSecond: Array<{ t: string; count: number }>; total: number };
  stages: StageLatency[];
  lag: GroupLag[] | null;
  lagError?: string;
}

/** The consumer groups of the pipeline and what they read (schemas/topics.ts, as the services subscribe). */
export function consumerGroups(prefix: string): Array<{ group: string; topics: string[] }> {
  return (Object.keys(CONSUMER_GROUPS) as ConsumerGroupName[]).map((name) => {
    const { groupId, topics } = consumerGroup(prefix, name);
    return { group: groupId, topics };
  });
}

export async function pipelineStats(deps: {
  clickhouse: ClickHouseClient;
  admin?: Admin;
  topicPrefix: string;
  workspaceId: string;
  nowMs: number;
}): Promise<PipelineStats> {
  const [events, stages, lag] = await Promise.all([
    eventsPerSecond(deps.clickhouse, deps.workspaceId, deps.nowMs),
    stageLatencies(deps.clickhouse, deps.workspaceId, deps.nowMs),
    consumerLag(deps.admin, deps.topicPrefix),
  ]);
  return { at: new Date(deps.nowMs).toISOString(), events, stages, ...lag };
}

async function eventsPerSecond(ch: ClickHouseClient, ws: string, nowMs: number) {
  const end = Math.floor(nowMs / 1000);
  const start = end - RATE_WINDOW_S + 1;
  const rs = await ch.query({
    query: `SELECT toString(toUnixTimestamp(toStartOfSecond(received_at))) AS s, count() AS n
            FROM (SELECT received_at FROM events
                  WHERE workspace_id = {ws:String} AND received_at >= fromUnixTimestamp64Milli({since:Int64})
                  LIMIT 1 BY message_id)
            GROUP BY s`,
    query_params: { ws, since: start * 1000 },
    format: 'JSONEachRow',
  });
  const counts = new Map(
    (await rs.json<{ s: string; n: string | number }>()).map((r) => [Number(r.s), Number(r.n)]),
  );
  const perSecond = [];
  let total = 0;
  for (let s = start; s <= end; s++) {
    const count = counts.get(s) ?? 0;
    total += count;
    perSecond.push({ t: new Date(s * 1000).toISOString(), count });
  }
  return { perSecond, total };
}

async function stageLatencies(ch: ClickHouseClient, ws: string, nowMs: number): Promise<StageLatency[]> {
  const since = nowMs - LATENCY_WINDOW_MIN * 60_000;
  const quantiles = async (query: string): Promise<Omit<StageLatency, 'stage' | 'description'>> => {
    const rs = await ch.query({ query, query_params: { ws, since }, format: 'JSONEachRow' });
    const [r] = await rs.json<{ n: string | number; q: number[] }>();
    const n = Number(r?.n ?? 0);
    const q = r?.q ?? [];
    const at = (i: number) => (n > 0 && q[i] !== undefined ? Math.round(Number(q[i])) : null);
    return { count: n, p50: at(0), p95: at(1), p99: at(2) };
  };
  const [history, activation, provider] = await Promise.all([
    // a row replayed after a sink crash counts once
    quantiles(`SELECT count() AS n, quantilesExact(0.5, 0.95, 0.99)(ms) AS q FROM (
                 SELECT min(toUnixTimestamp64Milli(inserted_at)) - min(toUnixTimestamp64Milli(received_at)) AS ms
                 FROM events
                 WHERE workspace_id = {ws:String} AND received_at >= fromUnixTimestamp64Milli({since:Int64})
                 GROUP BY message_id)`),
    // destinations' deliveries (channel destination) share the ledger but are no campaign sends
    quantiles(`SELECT count() AS n, quantilesExact(0.5, 0.95, 0.99)(latency_ms) AS q FROM activation_ledger
               WHERE workspace_id = {ws:String} AND at >= fromUnixTimestamp64Milli({since:Int64}) AND outcome = 'sent'
                 AND channel != 'destination'`),
    quantiles(`SELECT count() AS n, quantilesExact(0.5, 0.95, 0.99)(provider_ms) AS q FROM activation_ledger
               WHERE workspace_id = {ws:String} AND at >= fromUnixTimestamp64Milli({since:Int64}) AND outcome = 'sent'
                 AND channel != 'destination'`),
  ]);
  return [
    { stage: 'history', description: 'event received by ingest → row in ClickHouse', ...history },
    { stage: 'activation', description: 'segment change reaching activation → message sent', ...activation },
    { stage: 'provider', description: 'the channel provider’s call (webhook, SMTP, SMS, push)', ...provider },
  ];
}

async function consumerLag(
  admin: Admin | undefined,
  prefix: string,
): Promise<Pick<PipelineStats, 'lag' | 'lagError'>> {
  if (!admin?.groupLag) return { lag: null, lagError: 'consumer lag needs the kafkajs driver' };
  // one group failing (e.g. its coordinator still loading) leaves the others' figures
  const out: GroupLag[] = [];
  let error: string | undefined;
  for (const { group, topics } of consumerGroups(prefix)) {
    try {
      const parts = await withTimeout(admin.groupLag(group, topics), 3000, 'reading consumer offsets');
      for (const topic of topics) {
        const mine = parts.filter((p) => p.topic === topic);
        out.push({ group, topic, partitions: mine.length, lag: mine.reduce((a, p) => a + p.lag, 0) });
      }
    } catch (err) {
      error ??= `Kafka: ${(err as Error).message}`;
      for (const topic of topics) out.push({ group, topic, partitions: 0, lag: null });
    }
  }
  return error ? { lag: out, lagError: error } : { lag: out };
}
