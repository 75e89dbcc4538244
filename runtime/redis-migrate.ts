// Moves the global keys of a deployment made before they carried the hash tag `{~g}`
// (schemas/redis-keys.ts globalKeys, globalTag; also the workspaces and people, channel
// credentials and warehouse exports, which use several such keys at once) to their tagged
// names, so a single-node deployment keeps its definitions, write keys, workspaces, timers
// and queued work when it upgrades. Run by `cdp migrate`
// and at every service start, before any worker; it is idempotent and safe when two
// processes start together: each key moves in one Lua step (RENAME when only the old name
// exists; when both do, because a process of the old version wrote after a new one started,
// the old content is merged in and the old key dropped), and a key already moved is a no-op.
// Locks and leases (backfill, journey entry and migration leases, the tracking-plan replay
// lock, act:delayed:lock) live for seconds and are not moved: at worst one run waits for its
// lease to expire. On a Redis Cluster nothing is moved (a cross-slot RENAME is impossible,
// and a deployment on a cluster never had the old names working): migrate on the single
// node first.
import { globalKeys, globalTag, legacyGlobalKeys } from '../schemas/redis-keys.ts';
import type { Logger } from './log.ts';
import { isCluster, type Redis } from './redis.ts';

// KEYS: 1 old name, 2 new name. Returns 0 nothing to move, 1 renamed, 2 merged, -1 types differ.
const MOVE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  return 1
end
local t = redis.call('TYPE', KEYS[1]).ok
if t ~= redis.call('TYPE', KEYS[2]).ok then return -1 end
if t == 'zset' then
  redis.call('ZUNIONSTORE', KEYS[2], 2, KEYS[2], KEYS[1], 'AGGREGATE', 'MIN')
elseif t == 'set' then
  redis.call('SUNIONSTORE', KEYS[2], KEYS[2], KEYS[1])
elseif t == 'hash' then
  local kv = redis.call('HGETALL', KEYS[1])
  for i = 1, #kv, 2 do redis.call('HSETNX', KEYS[2], kv[i], kv[i + 1]) end
elseif t == 'string' then
  -- a revision counter: it only has to move so readers reload
  if tonumber(redis.call('GET', KEYS[2])) then redis.call('INCR', KEYS[2]) end
else
  return -1
end
redis.call('DEL', KEYS[1])
return 2
`;

/** Fixed keys of other modules, after the prefix (their tagged name puts globalTag in front instead). */
const MODULE_KEYS = [
  'workspaces',
  'workspaces:names',
  'workspaces:archived',
  'people',
  'people:emails',
  'people:tokens',
  'chcred',
  'chcred:rev',
  'warehouse:defs',
  'warehouse:rev',
];

/** The [old, new] name pairs to move: every fixed global key, each destination's retry set, each journey's parked timers. */
function pairs(prefix: string): Array<[string, string]> {
  const oldK = legacyGlobalKeys(prefix);
  const newK = globalKeys(prefix);
  const out: Array<[string, string]> = [];
  for (const [name, v] of Object.entries(oldK)) {
    const nv = (newK as Record<string, unknown>)[name];
    if (typeof v === 'string' && typeof nv === 'string') out.push([v, nv]);
  }
  return out;
}

/** Fields `${workspaceId}/${id}` of a definitions hash, under whichever name holds it now. */
async function defFields(redis: Redis, names: string[]): Promise<string[]> {
  const seen = new Set<string>();
  for (const n of names) for (const f of await redis.hkeys(n)) seen.add(f);
  return [...seen];
}

export interface RedisKeyMigration {
  renamed: number;
  merged: number;
  /** Old keys left where they are because the new name holds another type. */
  conflicts: string[];
}

export async function migrateRedisKeys(
  redis: Redis,
  prefix: string,
  log?: Logger,
): Promise<RedisKeyMigration> {
  const result: RedisKeyMigration = { renamed: 0, merged: 0, conflicts: [] };
  if (isCluster(redis)) return result;
  const oldK = legacyGlobalKeys(prefix);
  const newK = globalKeys(prefix);
  const move = async (from: string, to: string) => {
    const r = Number(await redis.eval(MOVE, 2, from, to));
    if (r === 1) result.renamed++;
    else if (r === 2) result.merged++;
    else if (r === -1) result.conflicts.push(from);
  };
  for (const [from, to] of pairs(prefix)) await move(from, to);
  // per-definition keys, found from the (moved) definitions
  for (const field of await defFields(redis, [oldK.destinations, newK.destinations])) {
    const id = field.slice(field.indexOf('/') + 1);
    await move(oldK.destinationRetries(id), newK.destinationRetries(id));
  }
  for (const field of await defFields(redis, [oldK.journeys, newK.journeys])) {
    const i = field.indexOf('/');
    if (i <= 0) continue;
    const [ws, jid] = [field.slice(0, i), field.slice(i + 1)];
    await move(oldK.journeysParked(ws, jid), newK.journeysParked(ws, jid));
  }
  // the keys of runtime/workspaces.ts, runtime/channel-credentials.ts and schemas/warehouse.ts:
  // each moved from `${prefix}:<rest>` to `${globalTag}:<rest>`
  const tagged = (rest: string) => move(`${prefix}:${rest}`, `${globalTag(prefix)}:${rest}`);
  for (const rest of MODULE_KEYS) await tagged(rest);
  const fields = (rest: string) => defFields(redis, [`${prefix}:${rest}`, `${globalTag(prefix)}:${rest}`]);
  const workspaces = new Set(await fields('workspaces'));
  for (const person of await fields('people')) {
    await tagged(`person:${person}:roles`);
    for (const ws of await fields(`person:${person}:roles`)) workspaces.add(ws);
  }
  for (const ws of workspaces) await tagged(`ws:${ws}:people`);
  for (const field of await fields('warehouse:defs')) {
    const id = field.slice(field.indexOf('/') + 1);
    await tagged(`warehouse:progress:${id}`);
    await tagged(`warehouse:stats:${id}`);
  }
  if (result.renamed || result.merged || result.conflicts.length)
    log?.info({ component: 'redis', ...result }, 'redis_keys_migrated');
  if (result.conflicts.length)
    log?.warn({ component: 'redis', keys: result.conflicts }, 'redis_keys_not_migrated_type_differs');
  return result;
}
