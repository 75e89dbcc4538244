// What a journey step reads of a person: traits (branch rules, templates), segments
// (in_segment), identifiers (a trait update goes through the pipeline as an identify of
// one of them). Read as profiles/read.ts reads a profile for segment rules (one pipelined
// round trip; a merged-away profile is followed to its survivor), so a branch rule sees
// the person as a segment rule does: a stored trait that is not JSON is its string.

import { readStoredProfile } from '../../profiles/read.ts';
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
  const p = await readStoredProfile(redis, workspaceKeys(prefix, workspaceId), profileId);
  const first = (kind: string) =>
    p.identities.find((i) => i.startsWith(`${kind}:`))?.slice(kind.length + 1) ?? null;
  const rule = ruleContext(p.id, p, null, {});
  return {
    profileId: p.id,
    traits: p.traits,
    segments: rule.segments,
    userId: first('user'),
    anonymousId: first('anon'),
    rule,
  };
}
