// The steps of a GDPR erasure (schemas/erasure.ts: ERASURE_STEPS), each idempotent: run again
// after a crash or a ClickHouse outage, a step does nothing more than finish its work. The
// job (erasure-job.ts) runs them in order and records each once done.
//
// What happens to events that arrive later for an erased identifier: an event received
// before the erasure (still on its way through Kafka) is dropped by the history sink, and
// a send for an erased profile id is suppressed (tombstones, schemas/erasure.ts). An event
// received after the erasure starts a new, empty profile, exactly like a first-time
// visitor: to stop data for a person for good, stop sending it; suppression lists belong to
// the sender.
import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { DefinitionStore } from '../runtime/definitions.ts';
import type { Redis } from '../runtime/redis.ts';
import { type ErasureStep, TOMBSTONE_RETENTION_MS } from '../schemas/erasure.ts';
import { globalKeys, workspaceKeys } from '../schemas/redis-keys.ts';

const SCRIPT = readFileSync(new URL('./erase-profile.lua', import.meta.url), 'utf8');
/** Cap logs are kept per channel and across channels (`all`). */
const CAP_CHANNELS = ['webhook', 'email', 'sms', 'push', 'all'];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cdpEraseProfile(
      tag: string,
      pid: string,
      jobId: string,
      nowMs: number,
      keepMs: number,
      campaigns: string,
      channels: string,
    ): Result<string, Context>;
  }
}

export interface EraseDeps {
  redis: Redis;
  clickhouse: ClickHouseClient;
  defs: DefinitionStore;
  redisPrefix: string;
}

/** What the Redis step found, kept on the job until it is done. */
export interface ErasedState {
  identities: string[];
  profileIds: string[];
}

export interface StepInput {
  workspaceId: string;
  profileId: string;
  jobId: string;
  nowMs: number;
  /** The Redis step's result (absent only before that step ran). */
  state?: ErasedState;
}

/** Runs one step; answers the counts it adds to the job. */
export async function runStep(
  deps: EraseDeps,
  step: Exclude<ErasureStep, 'audit'>,
  input: StepInput,
): Promise<Record<string, number>> {
  if (step === 'redis') {
    await eraseRedis(deps, input);
    return {};
  }
  const state = input.state;
  if (!state) throw new Error(`erasure step ${step} before the redis step`);
  switch (step) {
    case 'scheduled':
      return { delayedSends: await dropScheduled(deps, input.workspaceId, state.profileIds) };
    case 'events':
    case 'identity_links':
    case 'segment_membership_history':
    case 'activation_ledger':
      return { [step]: await deleteRows(deps.clickhouse, step, input.workspaceId, state) };
    case 'consent_log':
      if (!(await hasPersonTable(deps.clickhouse, 'consent_log'))) return {};
      return { consent_log: await deleteRows(deps.clickhouse, step, input.workspaceId, state) };
    case 'journeys': {
      const ended = await endJourneyRuns(deps, input.workspaceId, state.profileIds);
      const rows = (await hasPersonTable(deps.clickhouse, 'journey_steps'))
        ? await deleteRows(deps.clickhouse, 'journey_steps', input.workspaceId, state)
        : 0;
      return { journeyRuns: ended, journey_steps: rows };
    }
    case 'sweep': {
      let swept = 0;
      for (const table of TABLES) swept += await deleteRows(deps.clickhouse, table, input.workspaceId, state);
      return { swept };
    }
    default: {
      const never: never = step;
      throw new Error(`unknown erasure step ${String(never)}`);
    }
  }
}

async function eraseRedis(deps: EraseDeps, input: StepInput): Promise<void> {
  if (typeof (deps.redis as { cdpEraseProfile?: unknown }).cdpEraseProfile !== 'function')
    deps.redis.defineCommand('cdpEraseProfile', { numberOfKeys: 1, lua: SCRIPT });
  const campaigns = (await deps.defs.list('campaigns', input.workspaceId)).map((c) => c.id);
  // readers of the tombstones look only at workspaces listed here: listed first, so no
  // tombstone exists that they would not look for (another slot than the workspace's)
  await deps.redis.zadd(globalKeys(deps.redisPrefix).erasedWorkspaces, input.nowMs, input.workspaceId);
  await deps.redis.cdpEraseProfile(
    workspaceKeys(deps.redisPrefix, input.workspaceId).tag,
    input.profileId,
    input.jobId,
    input.nowMs,
    TOMBSTONE_RETENTION_MS,
    JSON.stringify(campaigns),
    JSON.stringify(CAP_CHANNELS),
  );
}

// A run in a journey of an erased person: an active one leaves its node (counted as
// exited, ended `erased`, so the node counts stay exact), then the run is deleted. A timer
// still set for it finds no run and is ignored. KEYS: run hash, stats hash.
const END_RUN = `
if redis.call('HGET', KEYS[1], 'state') == 'active' then
  local node = redis.call('HGET', KEYS[1], 'node')
  redis.call('HINCRBY', KEYS[2], 'now:' .. node, -1)
  redis.call('HINCRBY', KEYS[2], 'exited:' .. node, 1)
  redis.call('HINCRBY', KEYS[2], 'ended:erased', 1)
end
return redis.call('DEL', KEYS[1])`;

async function endJourneyRuns(deps: EraseDeps, ws: string, pids: string[]): Promise<number> {
  const journeys = await deps.defs.list('journeys', ws);
  if (journeys.length === 0 || pids.length === 0) return 0;
  const k = workspaceKeys(deps.redisPrefix, ws);
  let ended = 0;
  for (const j of journeys)
    for (const pid of pids)
      ended += Number(await deps.redis.eval(END_RUN, 2, k.journeyRun(j.id, pid), k.journeyStats(j.id)));
  return ended;
}

/**
 * Delayed sends (the activation delayed set) of the erased profile ids, and their timers of
 * windowed rules. Sends already on the retry topic are suppressed by activation (tombstones).
 */
async function dropScheduled(deps: EraseDeps, ws: string, pids: string[]): Promise<number> {
  const g = globalKeys(deps.redisPrefix);
  const members = pids.map((p) => `${ws}/${p}`);
  if (members.length > 0) {
    await deps.redis.zrem(g.timers, ...members);
    await deps.redis.zrem(g.timerLeases, ...members);
  }
  const erased = new Set(pids);
  let dropped = 0;
  let cursor = '0';
  do {
    const [next, page] = await deps.redis.zscan(g.activationDelayed, cursor, 'COUNT', 500);
    cursor = next;
    const drop: string[] = [];
    for (let i = 0; i < page.length; i += 2) {
      const member = page[i]!;
      try {
        const d = JSON.parse(member) as { job?: { change?: { workspaceId?: string; profileId?: string } } };
        const c = d.job?.change;
        if (c?.workspaceId === ws && typeof c.profileId === 'string' && erased.has(c.profileId))
          drop.push(member);
      } catch {
        // not ours to judge: the poller dead-letters what it cannot read
      }
    }
    if (drop.length > 0) dropped += await deps.redis.zrem(g.activationDelayed, ...drop);
  } while (cursor !== '0');
  return dropped;
}

const TABLES = ['events', 'identity_links', 'segment_membership_history', 'activation_ledger'] as const;
type Table = (typeof TABLES)[number] | 'consent_log' | 'journey_steps';

/** Each table's rows of the erased person, as a WHERE clause over bound parameters. */
const WHERE: Record<Table, string> = {
  events: 'user_id IN {uids:Array(String)} OR anonymous_id IN {aids:Array(String)}',
  // every row that resolves to one of the profiles, and every row of one of its identifiers
  identity_links: `profile_id IN {pids:Array(String)}
    OR (id_type = 'profile' AND id_value IN {pids:Array(String)})
    OR (id_type = 'user' AND id_value IN {uids:Array(String)})
    OR (id_type = 'anon' AND id_value IN {aids:Array(String)})
    OR (id_type = 'email' AND id_value IN {emails:Array(String)})`,
  segment_membership_history: 'profile_id IN {pids:Array(String)}',
  activation_ledger: 'profile_id IN {pids:Array(String)}',
  // a decision names the person by profile id and by the identifiers held when it was made
  consent_log: 'profile_id IN {pids:Array(String)} OR hasAny(identifiers, {ids:Array(String)})',
  journey_steps: 'profile_id IN {pids:Array(String)}',
};

/** Counts, then deletes (only when there is something to delete: a mutation is not free). */
async function deleteRows(
  ch: ClickHouseClient,
  table: Table,
  ws: string,
  state: ErasedState,
): Promise<number> {
  const of = (kind: string) =>
    state.identities.filter((i) => i.startsWith(`${kind}:`)).map((i) => i.slice(kind.length + 1));
  const params = {
    ws,
    pids: state.profileIds,
    ids: state.identities,
    uids: of('user'),
    aids: of('anon'),
    emails: of('email'),
  };
  const where = `workspace_id = {ws:String} AND (${WHERE[table]})`;
  const rs = await ch.query({
    query: `SELECT count() AS n FROM ${table} WHERE ${where}`,
    query_params: params,
    format: 'JSONEachRow',
  });
  const n = Number((await rs.json<{ n: string }>())[0]?.n ?? 0);
  if (n === 0) return 0;
  // synchronous (mutations_sync): once the step is recorded as done, the rows are gone
  await ch.command({
    query: `ALTER TABLE ${table} DELETE WHERE ${where}`,
    query_params: params,
    clickhouse_settings: { mutations_sync: '2' },
  });
  return n;
}

/** Whether a table (e.g. one a later migration adds) has a person's rows: workspace_id and profile_id. */
export async function hasPersonTable(ch: ClickHouseClient, table: string): Promise<boolean> {
  const rs = await ch.query({
    query: `SELECT count() AS n FROM system.columns
            WHERE database = currentDatabase() AND table = {t:String}
              AND name IN ('workspace_id', 'profile_id')`,
    query_params: { t: table },
    format: 'JSONEachRow',
  });
  return Number((await rs.json<{ n: string }>())[0]?.n ?? 0) === 2;
}
