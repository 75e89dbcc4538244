// Reading a profile as the processor keeps it in Redis (apply-event.lua; key layout in
// schemas/redis-keys.ts): the value decoders every reader shares (traits, membership
// epochs, seen times), following merges to the survivor, and the reads of the query
// service (one profile as the API answers it; many for a segment preview).
import type { Redis } from '../runtime/redis.ts';
import { type WorkspaceKeys, workspaceKeys } from '../schemas/redis-keys.ts';

/** A stored trait value (JSON, as apply-event.lua writes it); a value that is not JSON is kept as the string. */
export function decodeTrait(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return json;
  }
}

/** A traits hash as read (HGETALL): name → value, `__proto__` left out. */
export function decodeTraits(raw: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) if (k !== '__proto__') out[k] = decodeTrait(v);
  return out;
}

/** The membership hash as read (segment id → epoch): odd epochs are memberships. */
export function decodeEpochs(raw: Record<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(raw)) out[k] = Number(v);
  return out;
}

/** An odd epoch is a membership (record-membership.lua moves it by one per transition). */
export const isMemberEpoch = (epoch: number | undefined): boolean => (epoch ?? 0) % 2 === 1;

/** The segments a profile is in, from its epochs. */
export function memberSegments(epochs: Record<string, number>): string[] {
  return Object.keys(epochs).filter((s) => isMemberEpoch(epochs[s]));
}

/** A seen time as stored (epoch ms; '' or absent when unknown) in ISO 8601, or null. */
export function isoOfMs(ms: string | number | null | undefined): string | null {
  return ms ? new Date(Number(ms)).toISOString() : null;
}

/** Merges are followed (at most 64 hops) to the surviving profile's id. */
export async function survivorOf(
  redis: Pick<Redis, 'hget'>,
  keys: WorkspaceKeys,
  profileId: string,
): Promise<string> {
  let pid = profileId;
  for (let hops = 0; hops < 64; hops++) {
    const next = await redis.hget(keys.profile(pid), 'mergedInto');
    if (!next) break;
    pid = next;
  }
  return pid;
}

/** A profile as the query API answers it. */
export interface Profile {
  id: string;
  userIds: string[];
  anonymousIds: string[];
  emails: string[];
  /** Accounts the person joined with group calls, with the accounts' traits. */
  accounts: Array<{ id: string; traits: Record<string, unknown> }>;
  /** Configured external ids (context.externalIds) linked to the person. */
  externalIds: Array<{ type: string; id: string }>;
  traits: Record<string, unknown>;
  segments: string[];
  firstSeenAt: string | null;
  lastSeenAt: string | null;
}

/** One profile (a merged-away id answers its survivor); undefined when there is none. */
export async function readProfile(
  redis: Redis,
  prefix: string,
  ws: string,
  id: string,
): Promise<Profile | undefined> {
  const k = workspaceKeys(prefix, ws);
  const pid = await survivorOf(redis, k, id);
  const [[, head], [, traits], [, ids], [, segs]] = (await redis
    .multi()
    .hgetall(k.profile(pid))
    .hgetall(k.profileTraits(pid))
    .smembers(k.profileIdentities(pid))
    .hgetall(k.profileSegments(pid))
    .exec()) as [unknown, unknown][] as [
    [null, Record<string, string>],
    [null, Record<string, string>],
    [null, string[]],
    [null, Record<string, string>],
  ];
  if (!head.id) return undefined;
  const groups = (await redis.smembers(k.profileGroups(pid))).sort().slice(0, 100);
  const accounts: Profile['accounts'] = [];
  if (groups.length > 0) {
    const pipe = redis.pipeline();
    for (const g of groups) pipe.hgetall(k.accountTraits(g));
    const res = (await pipe.exec()) ?? [];
    groups.forEach((g, i) => {
      accounts.push({ id: g, traits: decodeTraits((res[i]?.[1] ?? {}) as Record<string, string>) });
    });
  }
  const of = (kind: string) =>
    ids
      .filter((i) => i.startsWith(`${kind}:`))
      .map((i) => i.slice(kind.length + 1))
      .sort();
  return {
    id: pid,
    userIds: of('user'),
    anonymousIds: of('anon'),
    emails: of('email'),
    accounts,
    externalIds: ids
      .filter((i) => i.startsWith('ext.'))
      .map((i) => {
        const sep = i.indexOf(':');
        return { type: i.slice(4, sep), id: i.slice(sep + 1) };
      })
      .sort((a, b) => a.type.localeCompare(b.type) || a.id.localeCompare(b.id)),
    traits: decodeTraits(traits),
    segments: memberSegments(decodeEpochs(segs)).sort(),
    firstSeenAt: isoOfMs(head.firstSeenAt),
    lastSeenAt: isoOfMs(head.lastSeenAt),
  };
}

/** What a segment rule reads of a stored profile (besides counts and values). */
export interface StoredProfile {
  id: string;
  /** `kind:value` */
  identities: string[];
  traits: Record<string, unknown>;
  /** segment id → membership epoch (odd = member) */
  epochs: Record<string, number>;
  firstSeenAt: string | null;
  lastSeenAt: string | null;
}

type ProfileReads = [Array<string | null>, Record<string, string>, Record<string, string>, string[]];

/** Queues the four reads of one profile (head with its merged-into pointer, traits, epochs, ids). */
function queueProfileReads(pipe: ReturnType<Redis['pipeline']>, keys: WorkspaceKeys, id: string): void {
  pipe.hmget(keys.profile(id), 'firstSeenAt', 'lastSeenAt', 'mergedInto');
  pipe.hgetall(keys.profileTraits(id));
  pipe.hgetall(keys.profileSegments(id));
  pipe.smembers(keys.profileIdentities(id));
}

/** The answers of queueProfileReads (errors thrown); `mergedInto` is the head's third field. */
function profileReads(res: Array<[Error | null, unknown]>): ProfileReads {
  return res.map(([err, v]) => {
    if (err) throw err;
    return v;
  }) as ProfileReads;
}

function storedProfile(id: string, [head, traitsRaw, segRaw, idsRaw]: ProfileReads): StoredProfile {
  return {
    id,
    identities: idsRaw,
    traits: decodeTraits(traitsRaw),
    epochs: decodeEpochs(segRaw),
    firstSeenAt: isoOfMs(head[0]),
    lastSeenAt: isoOfMs(head[1]),
  };
}

/** Many profiles in one pipelined round trip; merged-away ones are left out. */
export async function readStoredProfiles(
  redis: Redis,
  keys: WorkspaceKeys,
  ids: readonly string[],
): Promise<StoredProfile[]> {
  if (ids.length === 0) return [];
  const pipe = redis.pipeline();
  for (const id of ids) queueProfileReads(pipe, keys, id);
  const res = (await pipe.exec()) ?? [];
  const out: StoredProfile[] = [];
  for (let i = 0; i < ids.length; i++) {
    const reads = profileReads(res.slice(i * 4, i * 4 + 4));
    if (reads[0][2]) continue; // merged away: the survivor is read instead
    out.push(storedProfile(ids[i]!, reads));
  }
  return out;
}

/**
 * One profile as a rule reads it, followed to its merge survivor (at most 64 hops): the
 * reads and the merged-into pointer go in one pipelined round trip, so a live profile (the
 * usual case) costs one; a merged-away one is read again at its survivor. A profile that
 * does not exist reads as empty under the id asked.
 */
export async function readStoredProfile(
  redis: Redis,
  keys: WorkspaceKeys,
  profileId: string,
): Promise<StoredProfile> {
  let pid = profileId;
  for (let hops = 0; ; hops++) {
    const pipe = redis.pipeline();
    queueProfileReads(pipe, keys, pid);
    const reads = profileReads((await pipe.exec()) ?? []);
    const next = reads[0][2];
    if (next && hops < 63) {
      pid = next;
      continue;
    }
    return storedProfile(pid, reads);
  }
}
