// Segment preview: how many profiles would a rule hold now, and who, without saving it.
// A sample of the workspace's profiles (all of them when there are fewer than the sample
// size) is read from Redis and the rule evaluated on each, exactly as the processor does.
// Counted events come from the ClickHouse history of the sampled persons (all their
// identifiers), because a rule not yet saved has no counts in Redis.

import { readStoredProfiles, type StoredProfile } from '../profiles/read.ts';
import { ruleContext, ruleHolds } from '../profiles/rule-context.ts';
import { scanProfileIds } from '../profiles/scan.ts';
import { type ComputedValues, readComputedMany } from '../profiles/values.ts';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { DefinitionStore } from '../runtime/definitions.ts';
import type { Redis } from '../runtime/redis.ts';
import { splitIdentifier } from '../schemas/identity-change.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import type { CompiledRule } from '../schemas/rules.ts';

export interface Preview {
  /** Profiles the rule was evaluated on. */
  sampled: number;
  matched: number;
  /** Profiles in the workspace (null when unknown). */
  totalProfiles: number | null;
  /** matched / sampled × total, rounded; exact when every profile was sampled. */
  estimatedSize: number | null;
  exact: boolean;
  /** A few matching profiles. */
  sample: Array<{ id: string; userId: string | null; traits: Record<string, unknown> }>;
}

export async function previewSegment(opts: {
  redis: Redis;
  clickhouse: ClickHouseClient;
  prefix: string;
  workspaceId: string;
  rule: CompiledRule;
  nowMs: number;
  sampleSize: number;
  showMatches?: number;
  /** For rules reading computed traits or scores (their values as kept in Redis now). */
  defs?: DefinitionStore;
}): Promise<Preview> {
  const keys = workspaceKeys(opts.prefix, opts.workspaceId);
  const { ids, complete } = await sampleProfileIds(opts.redis, keys.tag, opts.sampleSize);
  const profiles = await readStoredProfiles(opts.redis, keys, ids);
  const counts = await countFromHistory(opts, profiles);
  let values: ComputedValues[] = [];
  if (opts.defs && (opts.rule.computed.size > 0 || opts.rule.scores.size > 0)) {
    const [traitDefs, scoreDefs] = await Promise.all([
      opts.defs.list('computedTraits', opts.workspaceId),
      opts.defs.list('scores', opts.workspaceId),
    ]);
    values = await readComputedMany({ ...opts, traitDefs, scoreDefs, profiles });
  }

  const matches: StoredProfile[] = [];
  for (const [i, p] of profiles.entries()) {
    const ctx = ruleContext(p.id, p, null, counts.get(p.id) ?? zeroCounts(opts.rule), values[i]);
    if (ruleHolds(opts.rule, ctx)) matches.push(p);
  }
  const stored = Number(await opts.redis.hget(keys.stats, 'profiles'));
  const total = complete ? profiles.length : Number.isFinite(stored) && stored > 0 ? stored : null;
  return {
    sampled: profiles.length,
    matched: matches.length,
    totalProfiles: total,
    estimatedSize:
      total === null
        ? null
        : profiles.length === 0
          ? 0
          : Math.round((matches.length / profiles.length) * total),
    exact: complete,
    sample: matches.slice(0, opts.showMatches ?? 10).map((p) => {
      const user = p.identities.find((i) => i.startsWith('user:'));
      return { id: p.id, userId: user ? user.slice(5) : null, traits: p.traits };
    }),
  };
}

async function sampleProfileIds(
  redis: Redis,
  tag: string,
  limit: number,
): Promise<{ ids: string[]; complete: boolean }> {
  const ids: string[] = [];
  let cursor = '0';
  do {
    const page = await scanProfileIds(redis, tag, cursor, 1000);
    cursor = page.cursor;
    ids.push(...page.ids);
  } while (cursor !== '0' && ids.length < limit);
  return { ids: ids.slice(0, limit), complete: cursor === '0' && ids.length <= limit };
}

function zeroCounts(rule: CompiledRule): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of rule.counts) out[c.key] = 0;
  return out;
}

/** Windowed counts of the rule for each sampled profile, from the events of its identifiers. */
async function countFromHistory(
  opts: { clickhouse: ClickHouseClient; workspaceId: string; rule: CompiledRule; nowMs: number },
  profiles: StoredProfile[],
): Promise<Map<string, Record<string, number>>> {
  const out = new Map<string, Record<string, number>>();
  if (opts.rule.counts.length === 0 || profiles.length === 0) return out;
  const byUser = new Map<string, string>();
  const byAnon = new Map<string, string>();
  for (const p of profiles)
    for (const id of p.identities) {
      const { kind, value } = splitIdentifier(id);
      if (kind === 'user') byUser.set(value, p.id);
      else if (kind === 'anon') byAnon.set(value, p.id);
    }
  const longest = Math.max(...opts.rule.counts.map((c) => c.windowMs));
  const events = [...new Set(opts.rule.counts.map((c) => c.condition.event))];
  const rs = await opts.clickhouse.query({
    query: `SELECT user_id, anonymous_id, event, properties,
                   toString(toUnixTimestamp64Milli(timestamp)) AS ts
            FROM events
            WHERE workspace_id = {ws:String} AND type = 'track' AND event IN {events:Array(String)}
              AND timestamp > fromUnixTimestamp64Milli({since:Int64})
              AND (user_id IN {users:Array(String)} OR anonymous_id IN {anons:Array(String)})
            LIMIT 1 BY message_id`,
    query_params: {
      ws: opts.workspaceId,
      events,
      since: opts.nowMs - longest,
      users: [...byUser.keys()],
      anons: [...byAnon.keys()],
    },
    format: 'JSONEachRow',
    clickhouse_settings: { max_execution_time: 20 },
  });
  for await (const rows of rs.stream<{
    user_id: string;
    anonymous_id: string;
    event: string;
    properties: string;
    ts: string;
  }>()) {
    for (const r of rows) {
      const e = r.json();
      const pid = (e.user_id && byUser.get(e.user_id)) || (e.anonymous_id && byAnon.get(e.anonymous_id));
      if (!pid) continue;
      let props: Record<string, unknown> = {};
      try {
        const v = JSON.parse(e.properties) as unknown;
        if (v && typeof v === 'object' && !Array.isArray(v)) props = v as Record<string, unknown>;
      } catch {
        // counted with no properties
      }
      const ts = Number(e.ts);
      let counts = out.get(pid);
      if (!counts) {
        counts = zeroCounts(opts.rule);
        out.set(pid, counts);
      }
      for (const c of opts.rule.counts)
        if (c.condition.event === e.event && ts > opts.nowMs - c.windowMs && c.condition.matches(props))
          counts[c.key] = (counts[c.key] ?? 0) + 1;
    }
  }
  return out;
}
