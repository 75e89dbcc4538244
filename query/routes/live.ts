// GET /v1/live/pipeline: events per second, stage latency percentiles and consumer lag
// (query/pipeline-stats.ts), for the console's live view, which polls it.
// GET /v1/live/segments: every segment's member count, backfill status and latest entries.
// JSON by default; with `Accept: text/event-stream` a server-sent event stream that sends
// a `segments` event at once and again whenever something changed (checked every second),
// so the console's list fills while events arrive. The console reads the stream with
// fetch (EventSource cannot send the admin key header).
import { type Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { DefinitionStore } from '../../runtime/definitions.ts';
import type { Admin } from '../../runtime/kafka/types.ts';
import type { Logger } from '../../runtime/log.ts';
import type { Redis } from '../../runtime/redis.ts';
import type { QueryEnv } from '../context.ts';
import { pipelineStats } from '../pipeline-stats.ts';
import { type SegmentSummary, segmentSummaries } from '../segment-summary.ts';

const KEEPALIVE_MS = 15_000;

export function liveRoutes(deps: {
  redis: Redis;
  clickhouse: ClickHouseClient;
  defs: DefinitionStore;
  redisPrefix: string;
  log: Logger;
  /** For consumer lag; without it the live view says lag is unavailable. */
  kafkaAdmin?: Admin;
  topicPrefix?: string;
  now: () => Date;
  /** How often a stream re-reads the summaries (default 1000 ms). */
  pollMs?: number;
}) {
  const app = new Hono<QueryEnv>();
  const pollMs = deps.pollMs ?? 1000;

  app.get('/pipeline', async (c) =>
    c.json(
      await pipelineStats({
        clickhouse: deps.clickhouse,
        admin: deps.kafkaAdmin,
        topicPrefix: deps.topicPrefix ?? '',
        workspaceId: c.get('workspaceId'),
        nowMs: deps.now().getTime(),
      }),
    ),
  );

  app.get('/segments', async (c: Context<QueryEnv>) => {
    const ws = c.get('workspaceId');
    if (!(c.req.header('accept') ?? '').includes('text/event-stream'))
      return c.json({ segments: await segmentSummaries(deps, ws) });
    return streamSSE(c, async (stream) => {
      let round = 0;
      let exits = new Map<string, SegmentSummary['recentExits']>();
      let last = '';
      let wrote = Date.now();
      let failing = false;
      while (!stream.aborted && !stream.closed) {
        try {
          // exits come from ClickHouse: read them every 5th round, counts every round
          const withExits = round++ % 5 === 0;
          const segments = await segmentSummaries(withExits ? deps : { ...deps, clickhouse: undefined }, ws);
          if (withExits) exits = new Map(segments.map((x) => [x.id, x.recentExits]));
          else for (const x of segments) x.recentExits = exits.get(x.id) ?? [];
          const data = JSON.stringify({ segments });
          if (data !== last) {
            await stream.writeSSE({ event: 'segments', data });
            last = data;
            wrote = Date.now();
          }
          failing = false;
        } catch (err) {
          // Redis away: say so once, keep the stream, and carry on when it is back
          if (!failing) {
            deps.log.warn({ err: (err as Error).message }, 'live_segments_failed');
            await stream.writeSSE({
              event: 'error',
              data: JSON.stringify({ error: 'segments unavailable' }),
            });
            failing = true;
          }
        }
        if (Date.now() - wrote >= KEEPALIVE_MS) {
          await stream.write(': keep-alive\n\n');
          wrote = Date.now();
        }
        await stream.sleep(pollMs);
      }
    });
  });
  return app;
}
