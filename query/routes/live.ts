// GET /v1/live/pipeline: events per second, stage latency percentiles and consumer lag
// (query/pipeline-stats.ts), for the console's live view, which polls it.
// GET /v1/live/segments: every segment's member count, backfill status and latest entries.
// JSON by default; with `Accept: text/event-stream` a server-sent event stream that sends
// a `segments` event at once and again whenever something changed (checked every second),
// so the console's list fills while events arrive. The console reads the stream with
// fetch (EventSource cannot send the admin key header).
// A stream re-checks its credential every 5th round (every 5 s by default), as the auth
// middleware (query/app.ts) resolves it: a revoked token, a person removed from the workspace
// or left without a role that may read it, or an archived workspace ends the stream with a
// `closed` event naming why. Each credential keeps at most MAX_STREAMS_PER_CREDENTIAL streams
// open in one query process; one more is a 429.
import { createHash } from 'node:crypto';
import { type Context, Hono } from 'hono';
import { type SSEStreamingApi, streamSSE } from 'hono/streaming';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import type { DefinitionStore } from '../../runtime/definitions.ts';
import type { Admin } from '../../runtime/kafka/types.ts';
import type { Logger } from '../../runtime/log.ts';
import type { Redis } from '../../runtime/redis.ts';
import { WorkspaceStore } from '../../runtime/workspaces.ts';
import type { AdminKeyResolver, QueryEnv } from '../context.ts';
import { pipelineStats } from '../pipeline-stats.ts';
import { QueryError } from '../query-error.ts';
import { permissionFor, roleAllows } from '../roles.ts';
import { type SegmentSummary, segmentSummaries } from '../segment-summary.ts';

const KEEPALIVE_MS = 15_000;
/** Streams one credential (admin key or person token) may hold open in one query process. */
export const MAX_STREAMS_PER_CREDENTIAL = 5;
/** Every how many rounds a stream re-checks its credential (5: every 5 s at the default poll). */
const RECHECK_ROUNDS = 5;

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
  /** How often a stream re-reads the summaries (default 1000 ms); credentials every 5th time. */
  pollMs?: number;
  /** What the auth middleware resolves credentials with (query/app.ts). */
  resolveAdminKey: AdminKeyResolver;
  workspaces?: WorkspaceStore;
}) {
  const app = new Hono<QueryEnv>();
  const pollMs = deps.pollMs ?? 1000;
  // tokens resolve the same without the built-in workspace (only getWorkspace reads it)
  const workspaces = deps.workspaces ?? new WorkspaceStore(deps.redis, deps.redisPrefix, '');
  // open streams per credential (by a hash of it), in this process
  const open = new Map<string, number>();

  /**
   * Why the request's credential no longer allows what it asked, resolved as the auth
   * middleware does (query/app.ts); undefined while it still does.
   */
  const revoked = async (c: Context<QueryEnv>): Promise<string | undefined> => {
    const key = c.get('apiKey');
    const principal = c.get('principal');
    // the deployment's admin key acts in any workspace, archived ones too
    if (principal.kind === 'root')
      return deps.resolveAdminKey(key) ? undefined : 'the admin key is no longer valid';
    const who = await workspaces.resolveToken(key);
    if (!who) return 'the token was revoked or its person removed';
    const ws = c.get('workspaceId');
    const role = who.roles.get(ws);
    if (!role) return `no access to workspace ${ws}`;
    const perm = permissionFor(c.req.method, c.req.path);
    if (!perm || perm === 'root' || !roleAllows(role, perm))
      return `the ${role} role may not ${c.req.method} ${c.req.path}`;
    return undefined;
  };

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
    const credential = createHash('sha256').update(c.get('apiKey')).digest('hex');
    const mine = open.get(credential) ?? 0;
    if (mine >= MAX_STREAMS_PER_CREDENTIAL)
      throw new QueryError(
        429,
        `at most ${MAX_STREAMS_PER_CREDENTIAL} live streams may be open at once with one key: close one first`,
      );
    open.set(credential, mine + 1);
    const release = () => {
      const left = (open.get(credential) ?? 1) - 1;
      if (left > 0) open.set(credential, left);
      else open.delete(credential);
    };
    return streamSSE(c, async (stream) => {
      try {
        await segmentStream(c, stream, ws);
      } finally {
        release();
      }
    });
  });

  const segmentStream = async (c: Context<QueryEnv>, stream: SSEStreamingApi, ws: string) => {
    let round = 0;
    let exits = new Map<string, SegmentSummary['recentExits']>();
    let last = '';
    let wrote = Date.now();
    let failing = false;
    while (!stream.aborted && !stream.closed) {
      if (round > 0 && round % RECHECK_ROUNDS === 0) {
        let why: string | undefined;
        try {
          why = await revoked(c);
        } catch (err) {
          // Redis away: the round below says so; checked again next time
          deps.log.warn({ err: (err as Error).message }, 'live_auth_recheck_failed');
        }
        if (why) {
          await stream.writeSSE({ event: 'closed', data: JSON.stringify({ error: why }) });
          return;
        }
      }
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
  };
  return app;
}
