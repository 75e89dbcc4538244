// Contact policy at send time: quiet hours (delay, in the profile's time zone), then in one
// Lua step consent per channel and purpose, the suppression list, re-entry rules, the
// frequency caps (counted per local day, per channel and across channels) and, last, the
// campaign's send rate (a delay to the send's slot, shared by all workers).
import { readFileSync } from 'node:fs';
import { withSurvivor } from '../../profiles/survivor.ts';
import type { ContactPolicyConfig } from '../../runtime/config.ts';
import { errorMessage } from '../../runtime/errors.ts';
import type { Logger } from '../../runtime/log.ts';
import type { Redis } from '../../runtime/redis.ts';
import type { RateHold } from '../../schemas/activation-job.ts';
import { type CampaignDefinition, DEFAULT_PURPOSE, sendIntervalMs } from '../../schemas/campaign.ts';
import { suppressionMember } from '../../schemas/contact.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';
import { bringForward } from '../delayed-sends.ts';
import { localDayBounds, profileTimezone, quietHoursRelease } from './local-time.ts';
import { redisScript } from './script.ts';

const lua = (name: string) => withSurvivor(readFileSync(new URL(`./${name}`, import.meta.url), 'utf8'));
const CHECK = lua('contact-policy.lua');
const RELEASE = lua('release-policy.lua');
const DAY_MS = 24 * 3600 * 1000;
/** Cap logs keep two days: enough for any local day in any zone. */
const CAP_RETENTION_MS = 2 * DAY_MS + 3600 * 1000;
/** A send paced by its campaign's rate waits up to this with its claim; a longer wait is a delay. */
export const RATE_MAX_WAIT_MS = 1000;

export type PolicyDecision =
  /** Claimed for this worker: send now, or after `waitMs` (the campaign's send rate paces it). */
  | { kind: 'allow'; waitMs?: number }
  /** Refused by a rule; the send is marked done (suppressed). */
  | { kind: 'suppress'; rule: string }
  /** Quiet hours: try again at `until` (nothing claimed or counted). */
  | { kind: 'delay'; until: number; rule: 'quiet_hours' }
  /** The campaign's send rate: try again at `until`, the slot `hold` reserves (nothing claimed or counted). */
  | { kind: 'delay'; until: number; rule: 'rate_limit'; hold: RateHold }
  /** Already decided earlier (sent or suppressed). */
  | { kind: 'done'; state: string }
  /** Another worker holds the claim (or died holding it): try again after its lease. */
  | { kind: 'busy'; retryInMs: number };

export interface PolicyInput {
  campaign: CampaignDefinition;
  change: SegmentChange;
  sendKey: string;
  nowMs: number;
  /** The rate slot the send holds from an earlier decision (the job's `rate`). */
  hold?: RateHold;
  /** The claim to take when the send may go (claim-send.ts). */
  claim: { key: string; owner: string; leaseMs: number; doneTtlSeconds: number };
  /** A soft-bounced email sent again: the person already entered, re-entry rules do not apply. */
  resend?: boolean;
  /** Push to the profile's devices (not to its trait token, which is then not checked). */
  toDevices?: boolean;
}

export function contactPolicy(deps: {
  redis: Redis;
  redisPrefix: string;
  policy: ContactPolicyConfig;
  log?: Logger;
}) {
  const check = redisScript(deps.redis, 'cdpContactPolicy', 4, CHECK);
  const release = redisScript(deps.redis, 'cdpReleasePolicy', 1, RELEASE);
  // the scripts derive the survivor's consent, cap and re-entry keys from the profile hash
  const profileKey = (change: SegmentChange) =>
    workspaceKeys(deps.redisPrefix, change.workspaceId).profile(change.profileId);

  return {
    async decide({
      campaign: c,
      change,
      sendKey,
      nowMs,
      claim,
      hold,
      resend,
      toDevices,
    }: PolicyInput): Promise<PolicyDecision> {
      const tz = () => profileTimezone(change.traits, deps.policy.defaultTimezone);
      const quiet = deps.policy.quietHours;
      if (quiet && !c.policy?.ignoreQuietHours) {
        const until = quietHoursRelease(nowMs, tz(), quiet);
        if (until > nowMs) return { kind: 'delay', until, rule: 'quiet_hours' };
      }
      const countCaps =
        !c.policy?.ignoreCaps && (deps.policy.capPerChannelPerDay > 0 || deps.policy.capPerDay > 0);
      // the local day matters only for counting (Intl formatting is not free)
      const [dayStart, dayEnd] = countCaps ? localDayBounds(nowMs, tz()) : [0, 0];
      const reentry = resend ? 'every' : (c.policy?.reentry ?? 'every');
      const [mode, windowMs] =
        reentry === 'every' || reentry === 'once' ? [reentry, 0] : ['window', reentry.everyDays * DAY_MS];
      const members = [suppressionMember('profileId', change.profileId)];
      if (typeof change.traits.email === 'string')
        members.push(suppressionMember('email', change.traits.email));
      if (typeof change.traits.phone === 'string')
        members.push(suppressionMember('phone', change.traits.phone));
      if (c.channel === 'push' && !toDevices) {
        const token = change.traits[c.push?.tokenTrait ?? 'pushToken'];
        if (typeof token === 'string' && token.trim()) members.push(suppressionMember('device', token));
      }
      const keys = workspaceKeys(deps.redisPrefix, change.workspaceId);
      const [verdict, detail, gen, slotKind, regen] = (await check(
        profileKey(change),
        keys.suppressions,
        claim.key,
        keys.sendRate(c.id),
        c.channel,
        c.purpose ?? DEFAULT_PURPOSE,
        sendKey,
        nowMs,
        dayStart,
        dayEnd,
        deps.policy.capPerChannelPerDay,
        deps.policy.capPerDay,
        mode,
        windowMs,
        countCaps ? '1' : '0',
        CAP_RETENTION_MS,
        claim.owner,
        claim.leaseMs,
        claim.doneTtlSeconds,
        c.id,
        change.profileId,
        c.policy?.rate ? String(sendIntervalMs(c.policy.rate)) : '0',
        c.version,
        hold ? hold.gen : '',
        hold ? hold.at : 0,
        hold?.kind ?? 'q',
        RATE_MAX_WAIT_MS,
        ...members,
      )) as [string, string, string?, string?, string?];
      // this send started the campaign's new rate: the sends delayed at the old one come
      // back now and take a slot at it (once, by the worker that saw the change first)
      if (regen === '1')
        void bringForward(deps, change.workspaceId, c.id, nowMs).then(
          (moved) =>
            deps.log?.info({ campaignId: c.id, moved }, 'rate_changed_delayed_sends_brought_forward'),
          (err) =>
            deps.log?.warn({ campaignId: c.id, err: errorMessage(err) }, 'rate_change_bring_forward_failed'),
        );
      switch (verdict) {
        case 'ok':
          return Number(detail) > 0 ? { kind: 'allow', waitMs: Number(detail) } : { kind: 'allow' };
        case 'done':
          return { kind: 'done', state: detail };
        case 'busy':
          return { kind: 'busy', retryInMs: Math.max(0, Number(detail)) };
        case 'rate': {
          const at = Number(detail);
          const hold: RateHold = {
            at,
            gen: Number(gen),
            ...(slotKind === 's' ? { kind: 's' as const } : {}),
          };
          return { kind: 'delay', until: Math.ceil(at), rule: 'rate_limit', hold };
        }
        default:
          return { kind: 'suppress', rule: detail };
      }
    },

    /**
     * A recipient the provider says is gone for good (an unregistered push token, an email
     * address the provider has marked inactive) goes on the workspace's suppression list:
     * later sends to it are suppressed, not tried.
     */
    async suppressRecipient(
      change: SegmentChange,
      kind: 'device' | 'email' | 'phone',
      value: string,
    ): Promise<void> {
      await deps.redis.sadd(
        workspaceKeys(deps.redisPrefix, change.workspaceId).suppressions,
        suppressionMember(kind, value),
      );
    },

    /** Un-count a send that finally failed (caps, re-entry). */
    async release(c: CampaignDefinition, change: SegmentChange, sendKey: string): Promise<void> {
      await release(profileKey(change), sendKey, c.channel, c.id, change.profileId);
    },
  };
}
export type ContactPolicy = ReturnType<typeof contactPolicy>;
