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
import { eraseProfileState } from '../profiles/erase.ts';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { DefinitionStore } from '../runtime/definitions.ts';
import type { Redis } from '../runtime/redis.ts';
import type { ErasureStep } from '../schemas/erasure.ts';
import { parseTimerMember, personTimersPattern } from '../schemas/journey-timer.ts';
import { globalKeys, workspaceKeys } from '../schemas/redis-keys.ts';

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
      return {
        delayedSends: await dropScheduled(deps, input.workspaceId, state.profileIds),
        exportMembers: await forgetExportMembers(deps, input.workspaceId, state.profileIds),
      };
    case 'events': {
      const events = await deleteRows(deps.clickhouse, step, input.workspaceId, state);
      // the events a tracking plan quarantined are the person's events too
      return {
        events,
        quarantined_events: await deleteRows(deps.clickhouse, 'quarantined_events', input.workspaceId, state),
      };
    }
    case 'identity_links':
    case 'segment_membership_history':
    case 'activation_ledger':
      return { [step]: await deleteRows(deps.clickhouse, step, input.workspaceId, state) };
    case 'consent_log': {
      // the audit trail of consent decisions stays, no longer saying whose (below)
      const audit_consent = await anonymiseConsentAudit(deps.clickhouse, input.workspaceId, state.profileIds);
      if (!(await hasPersonTable(deps.clickhouse, 'consent_log'))) return { audit_consent };
      return {
        consent_log: await deleteRows(deps.clickhouse, step, input.workspaceId, state),
        audit_consent,
      };
    }
    case 'journeys': {
      const { runs, timers } = await forgetJourneys(deps, input.workspaceId, state.profileIds);
      const rows = (await hasPersonTable(deps.clickhouse, 'journey_steps'))
        ? await deleteRows(deps.clickhouse, 'journey_steps', input.workspaceId, state)
        : 0;
      return { journeyRuns: runs, journeyTimers: timers, journey_steps: rows };
    }
    case 'sweep': {
      // a journey step under way while the steps above ran (a wait that fired just before
      // its run ended) may have left a run, a timer or ledger rows behind: gone again
      await forgetJourneys(deps, input.workspaceId, state.profileIds);
      let swept = await forgetExportMembers(deps, input.workspaceId, state.profileIds);
      for (const table of TABLES) swept += await deleteRows(deps.clickhouse, table, input.workspaceId, state);
      if (await hasPersonTable(deps.clickhouse, 'journey_steps'))
        swept += await deleteRows(deps.clickhouse, 'journey_steps', input.workspaceId, state);
      swept += await deleteRows(deps.clickhouse, 'quarantined_events', input.workspaceId, state);
      // a consent decision audited while the erasure began (its request under way)
      swept += await anonymiseConsentAudit(deps.clickhouse, input.workspaceId, state.profileIds);
      return { swept };
    }
    default: {
      const never: never = step;
      throw new Error(`unknown erasure step ${String(never)}`);
    }
  }
}

async function eraseRedis(deps: EraseDeps, input: StepInput): Promise<void> {
  const campaigns = (await deps.defs.list('campaigns', input.workspaceId)).map((c) => c.id);
  // readers of the tombstones look only at workspaces listed here: listed first, so no
  // tombstone exists that they would not look for (another slot than the workspace's)
  await deps.redis.zadd(globalKeys(deps.redisPrefix).erasedWorkspaces, input.nowMs, input.workspaceId);
  await eraseProfileState(deps.redis, {
    prefix: deps.redisPrefix,
    workspaceId: input.workspaceId,
    profileId: input.profileId,
    jobId: input.jobId,
    nowMs: input.nowMs,
    campaignIds: campaigns,
  });
}

// The runs of an erased profile id in every journey, in one call: an active one leaves its
// node (counted as exited, ended `erased`, so the node counts stay exact), then each run is
// deleted. KEYS: (run hash, stats hash) per journey. Returns the runs deleted.
const END_RUNS = `
local n = 0
for i = 1, #KEYS, 2 do
  if redis.call('HGET', KEYS[i], 'state') == 'active' then
    local node = redis.call('HGET', KEYS[i], 'node')
    redis.call('HINCRBY', KEYS[i + 1], 'now:' .. node, -1)
    redis.call('HINCRBY', KEYS[i + 1], 'exited:' .. node, 1)
    redis.call('HINCRBY', KEYS[i + 1], 'ended:erased', 1)
  end
  n = n + redis.call('DEL', KEYS[i])
end
return n`;
/** Journeys per END_RUNS call (two keys each). */
const RUNS_PER_CALL = 200;

/**
 * Everything the journey runner keeps of the erased profile ids: their runs (ended) and
 * their timers (waits, parked waits, date entries) in the due, claimed and parked sets,
 * whose members name the profile id. A timer cannot come back once the tombstones exist
 * (activation/journeys/journey-timers.ts checks them when it sets one), and the redis step
 * wrote them before this one; one that fires meanwhile finds no run and does nothing.
 */
export async function forgetJourneys(
  deps: EraseDeps,
  ws: string,
  pids: string[],
): Promise<{ runs: number; timers: number }> {
  const journeys = (await deps.defs.list('journeys', ws)).map((j) => j.id);
  if (journeys.length === 0 || pids.length === 0) return { runs: 0, timers: 0 };
  const k = workspaceKeys(deps.redisPrefix, ws);
  let runs = 0;
  for (const pid of pids)
    for (let i = 0; i < journeys.length; i += RUNS_PER_CALL) {
      const keys = journeys
        .slice(i, i + RUNS_PER_CALL)
        .flatMap((j) => [k.journeyRun(j, pid), k.journeyStats(j)]);
      runs += Number(await deps.redis.eval(END_RUNS, keys.length, ...keys));
    }
  return { runs, timers: await dropJourneyTimers(deps, ws, pids, journeys) };
}

/**
 * The erased profile ids' members of the journey timer sets, found by ZSCAN (a pattern per
 * profile id) and removed from every set at once, so a member that moved between sets while
 * the sets were read (claimed, given back) is not left in another. The parked sets first,
 * the claimed set last: a timer claimed while the due set is read is in it then (or done).
 */
async function dropJourneyTimers(deps: EraseDeps, ws: string, pids: string[], journeys: string[]) {
  const g = globalKeys(deps.redisPrefix);
  const erased = new Set(pids);
  const found = new Set<string>();
  for (const set of [...journeys.map((j) => g.journeysParked(ws, j)), g.journeysDue, g.journeysLease])
    for (const pid of pids) {
      let cursor = '0';
      do {
        const [next, page] = await deps.redis.zscan(
          set,
          cursor,
          'MATCH',
          personTimersPattern(ws, pid),
          'COUNT',
          1000,
        );
        cursor = next;
        for (let i = 0; i < page.length; i += 2) {
          const t = parseTimerMember(page[i]!);
          if (t && t.ref.workspaceId === ws && erased.has(t.ref.profileId)) found.add(page[i]!);
        }
      } while (cursor !== '0');
    }
  if (found.size === 0) return 0;
  const members = [...found];
  const m = deps.redis.multi();
  for (let i = 0; i < members.length; i += 500) {
    const chunk = members.slice(i, i + 500);
    m.zrem(g.journeysDue, ...chunk).zrem(g.journeysLease, ...chunk);
    for (const j of new Set(chunk.map((c) => parseTimerMember(c)!.ref.journeyId)))
      m.zrem(g.journeysParked(ws, j), ...chunk);
  }
  await m.exec();
  return members.length;
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

/**
 * The member snapshots of the workspace's segment exports (query/exports.ts: a sorted set of
 * profile ids per job, kept while it runs) lose the erased profile ids. An export requested
 * before the erasure fails at its next slice (or, finished, has its file deleted) anyway; this
 * is so nothing in Redis names the erased ids meanwhile. Answers the members removed.
 */
export async function forgetExportMembers(deps: EraseDeps, ws: string, pids: string[]): Promise<number> {
  if (pids.length === 0) return 0;
  const k = workspaceKeys(deps.redisPrefix, ws);
  const jobs = await deps.redis.zrange(k.exports, 0, -1);
  let removed = 0;
  // the job index and the snapshots share the workspace's slot: one pipeline per 200 jobs
  for (let i = 0; i < jobs.length; i += 200) {
    const p = deps.redis.pipeline();
    for (const id of jobs.slice(i, i + 200)) p.zrem(k.exportMembers(id), ...pids);
    for (const [err, n] of (await p.exec()) ?? []) {
      if (err) throw err;
      removed += Number(n);
    }
  }
  return removed;
}

const TABLES = ['events', 'identity_links', 'segment_membership_history', 'activation_ledger'] as const;
type Table = (typeof TABLES)[number] | 'consent_log' | 'journey_steps' | 'quarantined_events';

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
  // held as the event's JSON (migration 012)
  quarantined_events: `JSONExtractString(event_json, 'userId') IN {uids:Array(String)}
    OR JSONExtractString(event_json, 'anonymousId') IN {aids:Array(String)}`,
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

/** What an erased profile id becomes in the audit trail of consent decisions. */
export const ERASED_AUDIT_ENTITY = 'erased';

/**
 * The audit_log rows of the erased profile ids' consent decisions (entity_type `consent`,
 * entity_id the profile id; before/after: channel, purpose, status, time, source) stay as
 * evidence that consent was asked and answered, but no longer say whose: entity_id becomes
 * ERASED_AUDIT_ENTITY. entity_id is in the table's sorting key (no UPDATE), so the rows are
 * copied and the originals deleted (synchronously). Idempotent: a row already copied (the
 * step retried after a crash between the two) is not copied again. Answers the rows rewritten.
 */
export async function anonymiseConsentAudit(
  ch: ClickHouseClient,
  ws: string,
  pids: string[],
): Promise<number> {
  if (pids.length === 0) return 0;
  const params = { ws, pids, anon: ERASED_AUDIT_ENTITY };
  const where = `workspace_id = {ws:String} AND entity_type = 'consent' AND entity_id IN {pids:Array(String)}`;
  const rs = await ch.query({
    query: `SELECT count() AS n FROM audit_log WHERE ${where}`,
    query_params: params,
    format: 'JSONEachRow',
  });
  const n = Number((await rs.json<{ n: string }>())[0]?.n ?? 0);
  if (n === 0) return 0;
  await ch.command({
    query: `INSERT INTO audit_log (workspace_id, at, actor, action, entity_type, entity_id, before, after)
      SELECT workspace_id, at, actor, action, entity_type, {anon:String}, before, after FROM audit_log
      WHERE ${where} AND (at, actor, action, before, after) NOT IN (
        SELECT at, actor, action, before, after FROM audit_log
        WHERE workspace_id = {ws:String} AND entity_type = 'consent' AND entity_id = {anon:String})`,
    query_params: params,
  });
  await ch.command({
    query: `ALTER TABLE audit_log DELETE WHERE ${where}`,
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
