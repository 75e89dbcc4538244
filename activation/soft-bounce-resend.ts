// Soft bounces are tried again. A provider that reports a soft bounce (mailbox full, a
// greylisting or throttling receiver, a DNS failure) has already given up on that message, so
// the campaign's email is sent again later: by default after 1 hour and, if that bounces softly
// too, after 6 more (CDP_EMAIL_SOFT_BOUNCE_RESENDS, seconds). A resend is decided afresh like
// any send (consent, the suppression list a hard bounce may have added since, quiet hours,
// caps), rendered from the profile's traits as they are then, and has a send key of its own
// (`<send key>.r<n>`), so it is claimed once and is its own ledger row and Message-ID.
//
// What is resent: a segment campaign's email whose provider event carried our tags (send key,
// campaign, profile). A journey's send is not (its run may have moved on; the soft bounce is
// in the ledger and the journey's own logic decides), nor an email without our tags.
//
// The bounce webhook (ingest) calls `schedule` once per provider event, and only for tags that
// verified (schemas/email-tags.ts); the resend waits in activation's durable delayed-send set,
// like a send held by quiet hours, and the delayed poller hands it to a worker when it is
// due. The count of resends per original send key lives in Redis for 7 days; past the last
// delay nothing more is scheduled.
//
// Idempotent per provider event: one Lua script keeps, per original send key, which event
// got which resend number (HSETNX-like, 7 days) and only for an event it has not seen counts
// up and queues the resend, atomically. A webhook that crashed after scheduling, or whose
// `done` marker was not written, calls again on the redelivery and gets the same number back
// (`already`), nothing queued twice.
import { isCluster, type Redis } from '../runtime/redis.ts';
import type { ActivationJob } from '../schemas/activation-job.ts';
import { globalKeys, workspaceKeys } from '../schemas/redis-keys.ts';
import type { DelayedSend } from './delayed-sends.ts';

export const DEFAULT_SOFT_BOUNCE_RESEND_DELAYS_S = [3600, 6 * 3600];
const COUNT_TTL_S = 7 * 24 * 3600;

export interface SoftBounce {
  workspaceId: string;
  provider: string;
  address: string;
  /** The send key our message carried (its tags / custom args / metadata). */
  sendKey?: string;
  campaignId?: string;
  profileId?: string;
  /** The provider's event id (`<provider>:<id>`): the same event scheduled again is a no-op. */
  eventId: string;
  at: Date;
  reason: string;
}

export type ResendDecision =
  | { kind: 'scheduled'; sendKey: string; n: number; atMs: number; already?: true }
  | { kind: 'exhausted'; n: number }
  | { kind: 'untracked'; why: string };

const SEND_KEY = /^(msg_[A-Za-z0-9_-]{32})(?:\.r[1-9][0-9]?)?$/;
const ID = /^[!-~]{1,200}$/;

// KEYS: count, events hash, delayed set. ARGV: event id, ttl s, number of delays, then the
// score and member of each possible resend (1..delays). Returns {n, new (1) or seen (0)}.
const SCHEDULE = `
local seen = redis.call('HGET', KEYS[2], ARGV[1])
if seen then return {tonumber(seen), 0} end
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], n)
redis.call('EXPIRE', KEYS[2], ARGV[2])
if n <= tonumber(ARGV[3]) and KEYS[3] then
  redis.call('ZADD', KEYS[3], ARGV[2 + 2 * n], ARGV[3 + 2 * n])
end
return {n, 1}
`;

/** The original send key of a send or of one of its resends. */
export function rootSendKey(key: string): string | undefined {
  return SEND_KEY.exec(key)?.[1];
}

export function softBounceResender(deps: {
  redis: Redis;
  redisPrefix: string;
  /** Delays of the first, second, … resend, in seconds; empty: soft bounces are not resent. */
  delaysS: number[];
}) {
  return {
    async schedule(ev: SoftBounce): Promise<ResendDecision> {
      const root = ev.sendKey ? rootSendKey(ev.sendKey) : undefined;
      if (!root) return { kind: 'untracked', why: 'no send key' };
      if (!ev.campaignId || !ID.test(ev.campaignId) || !ev.profileId || !ID.test(ev.profileId))
        return { kind: 'untracked', why: 'no campaign or profile' };
      if (ev.campaignId.includes('@')) return { kind: 'untracked', why: 'journey send' };
      if (deps.delaysS.length === 0) return { kind: 'untracked', why: 'resends off' };
      if (!ev.eventId || ev.eventId.length > 500) return { kind: 'untracked', why: 'no event id' };
      const claim = workspaceKeys(deps.redisPrefix, ev.workspaceId).sendClaim(root);
      const resend = (n: number) => {
        const atMs = ev.at.getTime() + deps.delaysS[n - 1]! * 1000;
        const job: ActivationJob = {
          campaignId: ev.campaignId!,
          change: {
            workspaceId: ev.workspaceId,
            profileId: ev.profileId!,
            // the campaign's own segment is filled in by the worker (send-one.ts)
            segmentId: '',
            segmentVersion: 0,
            type: 'entered',
            epoch: 1,
            messageId: null,
            occurredAt: ev.at.toISOString(),
            userId: null,
            // the traits as they are when the resend goes
            traits: {},
            traitsTruncated: true,
          },
          resend: { of: root, n },
        };
        const d: DelayedSend = { job, attempt: 0, firstSeen: ev.at.getTime(), reason: 'soft_bounce_resend' };
        return { atMs, member: JSON.stringify(d) };
      };
      const planned = deps.delaysS.map((_, i) => resend(i + 1));
      // On a Redis Cluster the delayed set (global tag) is not on the claim's slot: the script
      // counts, and the resend is queued after it, also when the event was seen (a crash
      // between the two); a resend queued twice is sent once, its send key is claimed once.
      const apart = isCluster(deps.redis);
      const delayed = globalKeys(deps.redisPrefix).activationDelayed;
      const [n, fresh] = (await deps.redis.eval(
        SCHEDULE,
        apart ? 2 : 3,
        `${claim}:soft`,
        `${claim}:softev`,
        ...(apart ? [] : [delayed]),
        ev.eventId,
        COUNT_TTL_S,
        deps.delaysS.length,
        ...planned.flatMap((p) => [p.atMs, p.member]),
      )) as [number, number];
      if (n > deps.delaysS.length) return { kind: 'exhausted', n: n - 1 };
      if (apart) await deps.redis.zadd(delayed, planned[n - 1]!.atMs, planned[n - 1]!.member);
      const atMs = planned[n - 1]!.atMs;
      if (!fresh) return { kind: 'scheduled', sendKey: `${root}.r${n}`, n, atMs, already: true };
      return { kind: 'scheduled', sendKey: `${root}.r${n}`, n, atMs };
    },
  };
}
