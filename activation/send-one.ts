// One send, decided: campaign still active → recipient → quiet hours → claim + contact
// policy (one Lua step) → channel. Returns what happened; the runner (pipeline.ts) records it and does
// the follow-up (retry topic, delayed set, dead letter). Order matters:
//   claim with the policy, atomically: a redelivered change never counts against a cap twice;
//   policy before rendering: a suppressed send costs no template work;
//   release the claim on every outcome that is not final, so a retry can claim again.

import { realSleep, type Sleep } from '../runtime/errors.ts';
import type { ActivationJob, RateHold } from '../schemas/activation-job.ts';
import type { CampaignDefinition } from '../schemas/campaign.ts';
import { DEFAULT_PURPOSE } from '../schemas/campaign.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { childTraceparent } from '../schemas/trace.ts';
import { signUnsubscribeToken } from '../schemas/unsubscribe-token.ts';
import type { CampaignRegistry } from './campaign-registry.ts';
import type { Channel, SendRequest, SendResult } from './channels/channel.ts';
import type { Channels } from './channels/index.ts';
import type { SendClaims } from './claim-send.ts';
import { type JourneyRunEnd, journeyOfCampaign } from './journeys/journey-campaigns.ts';
import type { ContactPolicy } from './policy/check-contact-policy.ts';
import type { ProfileTraitsReader } from './profile-traits.ts';
import type { PushDeviceStore } from './push-devices.ts';
import { sendKey } from './send-key.ts';

export type Outcome =
  | { outcome: 'sent'; status: number; providerMs: number; providerId?: string }
  | { outcome: 'suppressed'; reason: string }
  | { outcome: 'skipped_duplicate'; reason: string }
  /** `hold`: the send-rate slot the delayed send keeps (pipeline.ts puts it on the parked job). */
  | { outcome: 'delayed'; reason: string; notBefore: number; hold?: RateHold }
  | { outcome: 'retried'; reason: string; status: number; providerMs: number; notBefore: number }
  /** `replayable: false`: nothing a replay could change (the recipient is gone); no dead letter. */
  | { outcome: 'failed'; reason: string; status: number; providerMs: number; replayable?: false };

export interface SendOneDeps {
  redisPrefix: string;
  campaigns: CampaignRegistry;
  claims: SendClaims;
  policy: ContactPolicy;
  channels: Channels;
  unsubscribe: { secret: string; ttlDays: number; publicUrl: string };
  retries: { maxAttempts: number; baseMs: number; maxMs: number };
  now: () => number;
  random?: () => number;
  sleep?: Sleep;
  /** The profile's traits from Redis, for a change that carries only part of them. */
  profileTraits?: ProfileTraitsReader;
  /** For a journey's send: whether its run ended so that it must not go (goal, exit rule). */
  journeyRunEnd?: JourneyRunEnd;
  /** The profiles' push devices (the SDKs' tokens); without it, push goes to the trait token only. */
  pushDevices?: PushDeviceStore;
}

/** Exponential backoff with jitter: base·2^(attempt−1), capped, then scaled by 0.5–1. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const full = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(full * (0.5 + random() / 2));
}

export function unsubscribeUrl(
  cfg: SendOneDeps['unsubscribe'],
  c: CampaignDefinition,
  job: ActivationJob,
  nowMs: number,
): string {
  const token = signUnsubscribeToken(cfg.secret, {
    w: job.change.workspaceId,
    p: job.change.profileId,
    c: c.channel,
    u: c.purpose ?? DEFAULT_PURPOSE,
    k: c.id,
    ...(cfg.ttlDays > 0 ? { e: Math.floor(nowMs / 1000) + cfg.ttlDays * 86400 } : {}),
  });
  return `${cfg.publicUrl.replace(/\/$/, '')}/v1/unsubscribe?token=${token}`;
}

/** `attempt`: attempts already made (0 on the first try). */
export async function sendOne(
  deps: SendOneDeps,
  job: ActivationJob,
  attempt: number,
): Promise<{ campaign?: CampaignDefinition; key: string; result: Outcome }> {
  let { change } = job;
  // a soft-bounced email sent again (soft-bounce-resend.ts) is a send of its own
  const key = job.resend ? `${job.resend.of}.r${job.resend.n}` : sendKey(job.campaignId, change);
  const c = deps.campaigns.get(change.workspaceId, job.campaignId);
  if (!c) return { key, result: { outcome: 'suppressed', reason: 'campaign_deleted' } };
  if (c.status !== 'active')
    return { campaign: c, key, result: { outcome: 'suppressed', reason: 'campaign_paused' } };
  // a journey's send that waited (quiet hours, retries) past a goal or exit rule ending its run
  const journeyId = journeyOfCampaign(c);
  if (journeyId && deps.journeyRunEnd) {
    const end = await deps.journeyRunEnd(change.workspaceId, journeyId, change.profileId, change.epoch);
    if (end) return { campaign: c, key, result: { outcome: 'suppressed', reason: `journey_${end}` } };
  }
  // a huge profile's change carries only part of its traits: the rest from Redis, for the
  // recipient, the policy and the message alike (the job itself stays small)
  if (change.traitsTruncated && deps.profileTraits) {
    const now = await deps.profileTraits(change.workspaceId, change.profileId);
    if (Object.keys(now).length > 0) change = { ...change, traits: { ...change.traits, ...now } };
  }

  const claimKey = workspaceKeys(deps.redisPrefix, change.workspaceId).sendClaim(key);
  const channel = deps.channels[c.channel];
  // push: every device of the profile its provider can reach; the trait token when none
  const all =
    c.channel === 'push' && deps.pushDevices
      ? await deps.pushDevices.list(change.workspaceId, change.profileId)
      : [];
  const devices = channel.devicesFor && all.length > 0 ? channel.devicesFor(all, change.workspaceId) : all;
  const recipient = channel.recipient(c, change) ?? devices[0]?.token;
  if (!recipient) {
    const claim = await deps.claims.claim(claimKey);
    if (claim.kind === 'done')
      return { campaign: c, key, result: { outcome: 'skipped_duplicate', reason: claim.state } };
    if (claim.kind === 'claimed') await deps.claims.finish(claimKey, 'suppressed');
    return { campaign: c, key, result: { outcome: 'suppressed', reason: 'no_address' } };
  }
  const nowMs = deps.now();
  const decision = await deps.policy.decide({
    campaign: c,
    change,
    sendKey: key,
    nowMs,
    claim: deps.claims.lease(claimKey),
    ...(job.rate ? { hold: job.rate } : {}),
    ...(job.resend ? { resend: true } : {}),
    ...(devices.length > 0 ? { toDevices: true } : {}),
  });
  switch (decision.kind) {
    case 'allow':
      // paced by the campaign's send rate: its turn is a moment away (the claim is ours meanwhile)
      if (decision.waitMs) await (deps.sleep ?? realSleep)(decision.waitMs);
      break;
    case 'done':
      return { campaign: c, key, result: { outcome: 'skipped_duplicate', reason: decision.state } };
    case 'busy':
      return {
        campaign: c,
        key,
        result: { outcome: 'delayed', reason: 'claim_busy', notBefore: deps.now() + decision.retryInMs + 50 },
      };
    case 'delay':
      return {
        campaign: c,
        key,
        result: {
          outcome: 'delayed',
          reason: decision.rule,
          notBefore: decision.until,
          ...(decision.rule === 'rate_limit' ? { hold: decision.hold } : {}),
        },
      };
    case 'suppress':
      return { campaign: c, key, result: { outcome: 'suppressed', reason: decision.rule } };
    default: {
      const never: never = decision;
      throw new Error(`unknown policy decision ${JSON.stringify(never)}`);
    }
  }

  // the devices an earlier attempt of this send reached are not sent to again
  const store = deps.pushDevices;
  const done = store && devices.length > 0 ? await store.done(change.workspaceId, key) : undefined;
  const r = await sendSafely(channel, {
    campaign: c,
    change,
    sendKey: key,
    recipient,
    ...(store && done
      ? {
          devices: {
            list: devices,
            done,
            delivered: (keys: string[]) => store.markDone(change.workspaceId, key, keys),
            invalid: async (d) => {
              await store.remove(change.workspaceId, change.profileId, d);
            },
          },
        }
      : {}),
    ...(job.trace ? { traceparent: childTraceparent(job.trace) } : {}),
    // signed only when a channel uses it (email, templates)
    get unsubscribeUrl() {
      return unsubscribeUrl(deps.unsubscribe, c, job, nowMs);
    },
    nowMs,
  });
  // to devices: some have it and no other attempt follows (the rest failed for good, or
  // the attempts are used up): it was sent
  const partial = !r.ok && (r.delivered ?? 0) > 0 && !(r.retriable && attempt + 1 < deps.retries.maxAttempts);
  if (r.ok || partial) {
    await deps.claims.finish(claimKey, 'sent');
    if (store && done && (done.size > 0 || partial)) await store.forget(change.workspaceId, key);
    return {
      campaign: c,
      key,
      result: { outcome: 'sent', status: r.status, providerMs: r.latencyMs, providerId: r.providerId },
    };
  }
  await deps.claims.release(claimKey);
  const made = attempt + 1;
  const reason = r.error ?? `status ${r.status}`;
  if (r.retriable && made < deps.retries.maxAttempts) {
    // the provider's Retry-After (a 429's or 503's) is a floor under our own backoff
    const wait = Math.max(
      backoffMs(made, deps.retries.baseMs, deps.retries.maxMs, deps.random ?? Math.random),
      r.retryAfterMs ?? 0,
    );
    return {
      campaign: c,
      key,
      result: {
        outcome: 'retried',
        reason,
        status: r.status,
        providerMs: r.latencyMs,
        notBefore: deps.now() + wait,
      },
    };
  }
  // finally failed: un-count it so a replayed dead letter is judged afresh
  await deps.policy.release(c, change, key);
  if (r.invalidRecipient && r.removed !== undefined)
    // every device's token was gone: each has left the profile already (nothing to suppress)
    return {
      campaign: c,
      key,
      result: {
        outcome: 'failed',
        reason: `invalid_token: ${reason}`,
        status: r.status,
        providerMs: r.latencyMs,
        replayable: false,
      },
    };
  if (r.invalidRecipient && c.channel !== 'webhook') {
    // a dead push token, an address the email provider calls inactive (Postmark 406), a
    // number Twilio calls invalid or opted out
    const kind = c.channel === 'push' ? 'device' : c.channel === 'sms' ? 'phone' : 'email';
    await deps.policy.suppressRecipient(change, kind, recipient);
    return {
      campaign: c,
      key,
      result: {
        outcome: 'failed',
        reason: `${c.channel === 'push' ? 'invalid_token' : 'invalid_recipient'}: ${reason}`,
        status: r.status,
        providerMs: r.latencyMs,
        replayable: false,
      },
    };
  }
  return {
    campaign: c,
    key,
    result: {
      outcome: 'failed',
      reason: r.retriable ? `gave up after ${made} attempts: ${reason}` : `permanent: ${reason}`,
      status: r.status,
      providerMs: r.latencyMs,
    },
  };
}

/**
 * A channel that throws (a bug, credentials that cannot be used) fails this send, retriable
 * with the error: a throw would fail the whole batch, redelivered forever, stalling every
 * workspace on the partition.
 */
async function sendSafely(channel: Channel, req: SendRequest): Promise<SendResult> {
  try {
    return await channel.send(req);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return {
      ok: false,
      status: 0,
      retriable: true,
      error: `channel error: ${message.slice(0, 300)}`,
      latencyMs: 0,
    };
  }
}
