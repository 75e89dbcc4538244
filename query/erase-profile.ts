// GDPR erasure: a profile's Redis state, identities and ClickHouse history (events,
// identity links, membership history, activation ledger) are deleted, and the erasure is audited.
//
// What happens to events that arrive later for an erased identifier: nothing is kept that
// could recognise them (keeping the identifiers would defeat the erasure), so such an
// event starts a new, empty profile, exactly like a first-time visitor. To stop data for a
// person for good, stop sending it; suppression lists belong to the sender.
import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { Redis } from '../runtime/redis.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';

const SCRIPT = readFileSync(new URL('./erase-profile.lua', import.meta.url), 'utf8');

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cdpEraseProfile(tag: string, pid: string): Result<string[], Context>;
  }
}

export interface ErasureResult {
  profileId: string;
  identities: string[];
}

export async function eraseProfile(
  deps: { redis: Redis; clickhouse: ClickHouseClient; redisPrefix: string },
  workspaceId: string,
  profileId: string,
): Promise<ErasureResult> {
  if (typeof (deps.redis as { cdpEraseProfile?: unknown }).cdpEraseProfile !== 'function')
    deps.redis.defineCommand('cdpEraseProfile', { numberOfKeys: 1, lua: SCRIPT });
  const identities = await deps.redis.cdpEraseProfile(
    workspaceKeys(deps.redisPrefix, workspaceId).tag,
    profileId,
  );
  const of = (kind: string) =>
    identities.filter((i) => i.startsWith(`${kind}:`)).map((i) => i.slice(kind.length + 1));
  const params = {
    ws: workspaceId,
    pid: profileId,
    uids: of('user'),
    aids: of('anon'),
    emails: of('email'),
  };
  // Mutations run synchronously (mutations_sync) so the answer means the rows are gone.
  const settings = { mutations_sync: '2' } as const;
  await deps.clickhouse.command({
    query: `ALTER TABLE events DELETE WHERE workspace_id = {ws:String}
            AND (user_id IN {uids:Array(String)} OR anonymous_id IN {aids:Array(String)})`,
    query_params: params,
    clickhouse_settings: settings,
  });
  // The person's identity links: every row that resolves to the profile, and every older
  // row of one of its identifiers (which may still name a profile merged into it).
  await deps.clickhouse.command({
    query: `ALTER TABLE identity_links DELETE WHERE workspace_id = {ws:String}
            AND (profile_id = {pid:String}
              OR (id_type = 'profile' AND id_value = {pid:String})
              OR (id_type = 'user' AND id_value IN {uids:Array(String)})
              OR (id_type = 'anon' AND id_value IN {aids:Array(String)})
              OR (id_type = 'email' AND id_value IN {emails:Array(String)}))`,
    query_params: params,
    clickhouse_settings: settings,
  });
  for (const table of ['segment_membership_history', 'activation_ledger'])
    await deps.clickhouse.command({
      query: `ALTER TABLE ${table} DELETE WHERE workspace_id = {ws:String} AND profile_id = {pid:String}`,
      query_params: params,
      clickhouse_settings: settings,
    });
  return { profileId, identities };
}
