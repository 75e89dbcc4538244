// What a journey step reads of a person: traits (branch rules, templates), segments
// (in_segment), identifiers (a trait update goes through the pipeline as an identify of
// one of them). One pipelined round trip; a merged-away profile is followed to its survivor.

import { decodeEpochs, isoOfMs } from '../../profiles/read.ts';
import { ruleContext } from '../../profiles/rule-context.ts';
import type { Redis } from '../../runtime/redis.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import type { RuleContext } from '../../schemas/rules.ts';

export interface ProfileContext {
  profileId: string;
  traits: Record<string, unknown>;
  segments: string[];
  userId: string | null;
  anonymousId: string | null;
  rule: RuleContext;
}

export async function readProfileContext(
  redis: Redis,
  prefix: string,
  workspaceId: string,
  profileId: string,
): Promise<ProfileContext> {
  const k = workspaceKeys(prefix, workspaceId);
  let pid = profileId;
  let read: [Record<string, string>, Record<string, string>, string[], Array<string | null>] | undefined;
  // the reads and the merged-into pointer together; a merged-away profile (rare) is read
  // again at its survivor
  for (let hops = 0; hops < 64 && !read; hops++) {
    const res = await redis
      .pipeline()
      .hgetall(k.profileTraits(pid))
      .hgetall(k.profileSegments(pid))
      .smembers(k.profileIdentities(pid))
      .hmget(k.profile(pid), 'firstSeenAt', 'lastSeenAt', 'mergedInto')
      .exec();
    for (const [err] of res ?? []) if (err) throw err;
    const got = (res ?? []).map(([, v]) => v) as NonNullable<typeof read>;
    const next = got[3][2];
    if (next && hops < 63) pid = next;
    else read = got;
  }
  const [rawTraits, epochs, ids, seen] = read!;
  const traits: Record<string, unknown> = {};
  for (const [name, json] of Object.entries(rawTraits)) {
    try {
      traits[name] = JSON.parse(json);
    } catch {
      // a value the processor wrote is JSON; anything else is left out
    }
  }
  const first = (kind: string) => ids.find((i) => i.startsWith(`${kind}:`))?.slice(kind.length + 1) ?? null;
  const rule = ruleContext(
    pid,
    { traits, epochs: decodeEpochs(epochs), firstSeenAt: isoOfMs(seen[0]), lastSeenAt: isoOfMs(seen[1]) },
    null,
    {},
  );
  return {
    profileId: pid,
    traits,
    segments: rule.segments,
    userId: first('user'),
    anonymousId: first('anon'),
    rule,
  };
}
