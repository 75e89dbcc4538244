// The activation pipeline, per batch (from the segment-change topic or the retry topic):
//   parse → jobs (one per matching campaign, or the retried job) → sendOne each
//   (claim, policy, channel; bounded concurrency) → act on the outcomes: delayed set,
//   retry topic, dead letters → ledger rows for every decision (to the ledger topic).
// The follow-ups are the batch's effects (runtime/kafka/ordered-commits.ts): the offset is
// committed only after every send of the batch is decided and its follow-ups are durable.

import { backoffDelayMs, errorMessage, realSleep, type Sleep } from '../runtime/errors.ts';
import { deadLetter, deadLetterOf } from '../runtime/kafka/dead-letter.ts';
import type {
  Batch,
  BatchContext,
  BatchHandler,
  IncomingMessage,
  OutgoingMessage,
  Producer,
} from '../runtime/kafka/index.ts';
import { sendOrDeadLetter } from '../runtime/kafka/send-bounded.ts';
import type { Logger } from '../runtime/log.ts';
import { metrics } from '../runtime/metrics.ts';
import { ACTIVATION_HEADERS, type ActivationJob, activationJobCheck } from '../schemas/activation-job.ts';
import { type SegmentChange, segmentChangeCheck } from '../schemas/segment-change.ts';
import { REPLAY_HEADER } from '../schemas/topics.ts';
import { TRACE_HEADER, validTraceparent } from '../schemas/trace.ts';
import type { CampaignRegistry } from './campaign-registry.ts';
import type { DelayedSend, delayedSends } from './delayed-sends.ts';
import type { NoCampaignCounter } from './no-campaign.ts';
import { type Outcome, type SendOneDeps, sendOne } from './send-one.ts';

export interface ActivationDeps extends Omit<SendOneDeps, 'now'> {
  producer: Producer;
  topics: { retry: string; deadLetter: string; ledger: string };
  campaigns: CampaignRegistry;
  delayed: ReturnType<typeof delayedSends>;
  /** Counts segment changes that matched no active campaign (visible on the segment). */
  noCampaign: NoCampaignCounter;
  concurrency: number;
  log: Logger;
  now?: () => number;
  sleep?: Sleep;
  /** Retries due within this wait in the batch; later ones go to the delayed set. */
  maxInlineWaitMs?: number;
}

export interface LedgerRow {
  workspace_id: string;
  at: number;
  send_key: string;
  campaign_id: string;
  campaign_version: number;
  segment_id: string;
  segment_version: number;
  profile_id: string;
  epoch: number;
  channel: string;
  outcome: Outcome['outcome'];
  reason: string;
  attempt: number;
  status_code: number;
  latency_ms: number;
  provider_ms: number;
  not_before: number | null;
  provider_id: string;
}

interface Work extends DelayedSend {
  source: IncomingMessage;
  /** A send holding a rate slot: held until then on its own (the others wait as a batch). */
  slotAt?: number;
}

const header = (m: IncomingMessage, name: string) => m.headers[name];

/**
 * The job as it goes on: a send delayed by its campaign's rate keeps the slot it reserved
 * (decided again at the slot, it goes then), a busy claim keeps what it held (another worker
 * has the same send); anything else (quiet hours, a retry, a dead letter) takes a new slot
 * when it is next decided, so a retried or quiet-hours send is paced too.
 */
function jobOnward(job: ActivationJob, r?: { reason: string; hold?: ActivationJob['rate'] }): ActivationJob {
  if (r?.hold) return { ...job, rate: r.hold };
  if (!job.rate || r?.reason === 'claim_busy') return job;
  const { rate: _held, ...rest } = job;
  return rest;
}

/** Runs at most `limit` of the functions given to it at once, the others in order after. */
function limiter(limit: number): <R>(fn: () => Promise<R>) => Promise<R> {
  let running = 0;
  const queue: Array<() => void> = [];
  return async (fn) => {
    if (running >= limit) await new Promise<void>((resolve) => queue.push(resolve));
    else running++;
    try {
      return await fn();
    } finally {
      const next = queue.shift();
      if (next) next();
      else running--;
    }
  };
}

export function createActivationPipeline(deps: ActivationDeps): BatchHandler {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? realSleep;
  const maxInlineWait = deps.maxInlineWaitMs ?? 2000;
  const one: SendOneDeps = { ...deps, now };
  const underWay = new Set<Promise<void>>();
  const slot = limiter(deps.concurrency);

  /**
   * The consumer hands a batch over and fetches on at once: the batch is worked on as its
   * `effects` (parse, sends, follow-ups), so a message is sent as soon as it is fetched
   * rather than after the batch before it, and the offset is committed once its effects
   * are done (runtime/kafka/ordered-commits.ts). Sends of all batches under way share
   * `concurrency`; at most MAX_BATCHES_UNDER_WAY batches are, or the handler waits.
   */
  const handler: BatchHandler = async (batch, ctx) => {
    const effects = untilDone(batch, ctx);
    const settled = effects.then(
      () => {},
      () => {},
    );
    underWay.add(settled);
    void settled.then(() => underWay.delete(settled));
    while (underWay.size > MAX_BATCHES_UNDER_WAY) await Promise.race(underWay);
    return { effects };
  };
  return handler;

  /**
   * Works on the batch until it is done, as the consumer would retry a failed handler: a
   * failure before the follow-ups (Redis down) goes again with backoff, claimed sends
   * answering as duplicates; the consumer stopping ends it (the batch is then not committed
   * and comes back).
   */
  function untilDone(batch: Batch, ctx: BatchContext): Promise<void> {
    return persist(
      ctx,
      'activation_batch_failed_retrying',
      { topic: batch.topic, partition: batch.partition },
      () => handle(batch, ctx),
    );
  }

  /** Runs `fn` until it succeeds, with backoff; once the consumer stops, a failure ends it. */
  async function persist(
    ctx: { isActive(): boolean },
    event: string,
    fields: object,
    fn: () => Promise<void>,
  ): Promise<void> {
    for (let failures = 1; ; failures++) {
      try {
        return await fn();
      } catch (err) {
        if (!ctx.isActive()) throw err;
        deps.log.warn({ ...fields, failures, err: errorMessage(err) }, event);
        await realSleep(backoffDelayMs(failures));
      }
    }
  }

  function publish(topic: string, messages: OutgoingMessage[]) {
    return sendOrDeadLetter(deps.producer, topic, messages, {
      deadLetterTopic: deps.topics.deadLetter,
      stage: 'activation.follow-up',
      log: deps.log,
    });
  }

  async function handle(batch: Batch, ctx: BatchContext): Promise<void> {
    const dead: OutgoingMessage[] = [];
    const work: Work[] = [];
    const park: Array<DelayedSend & { notBefore: number }> = [];
    const unmatched: SegmentChange[] = [];
    let waitUntil = 0;
    for (const m of batch.messages) {
      // a history dead letter replayed for the sink: this change was handled when first read
      if (header(m, REPLAY_HEADER) === 'history') continue;
      try {
        const v: unknown = JSON.parse(m.value?.toString('utf8') ?? '');
        if (m.topic === deps.topics.retry) {
          if (!activationJobCheck.Check(v)) throw new Error('not an activation job');
          const d: DelayedSend = {
            job: v,
            attempt: Number(header(m, ACTIVATION_HEADERS.attempt) ?? 0),
            firstSeen: Number(header(m, ACTIVATION_HEADERS.firstSeen) ?? m.timestamp),
            reason: header(m, ACTIVATION_HEADERS.reason) ?? '',
          };
          const notBefore = Number(header(m, ACTIVATION_HEADERS.notBefore) ?? 0);
          if (notBefore - now() > maxInlineWait) park.push({ ...d, notBefore });
          else if (v.rate) work.push({ ...d, source: m, slotAt: notBefore });
          else {
            waitUntil = Math.max(waitUntil, notBefore);
            work.push({ ...d, source: m });
          }
          continue;
        }
        if (!segmentChangeCheck.Check(v)) throw new Error('not a segment change');
        const matched = deps.campaigns.match(v.workspaceId, v.segmentId, v.type);
        if (matched.length === 0) unmatched.push(v);
        const trace = validTraceparent(header(m, TRACE_HEADER));
        for (const c of matched)
          work.push({
            job: { campaignId: c.id, change: v, ...(trace ? { trace } : {}) },
            attempt: 0,
            firstSeen: m.timestamp,
            reason: '',
            source: m,
          });
      } catch (err) {
        dead.push(deadLetterOf(m, (err as Error).message, 'activation.parse'));
      }
    }
    // retries due within the inline wait: wait here (heartbeating) rather than round-trip through Redis
    // bounded in real time too, so an injected clock that stands still cannot stall the batch
    const realDeadline = Date.now() + Math.min(maxInlineWait, Math.max(0, waitUntil - now()));
    while (waitUntil > now() && Date.now() < realDeadline && ctx.isActive()) {
      await sleep(Math.min(500, waitUntil - now(), realDeadline - Date.now()));
      await ctx.heartbeat();
    }
    if (!ctx.isActive()) throw new Error('consumer stopping; batch will be redelivered');

    const decide = async (w: (typeof work)[number]) => {
      // a paced send goes at its slot, not with the batch's latest (outside the concurrency
      // limit: waiting holds no send slot); bounded in real time like the batch's wait
      const early = (w.slotAt ?? 0) - now();
      if (early > 0) {
        await sleep(Math.min(early, maxInlineWait));
        if (!ctx.isActive()) throw new Error('consumer stopping; batch will be redelivered');
      }
      return slot(async () => ({ w, ...(await sendOne(one, w.job, w.attempt)) }));
    };
    // people side by side; one person's sends one after another, in the order they came
    // (a journey's welcome before its tip when quiet hours release both together)
    const byPerson = new Map<string, Array<(typeof work)[number]>>();
    for (const w of work) {
      const k = `${w.job.change.workspaceId}\u0000${w.job.change.profileId}`;
      const list = byPerson.get(k);
      if (list) list.push(w);
      else byPerson.set(k, [w]);
    }
    const decided = (
      await Promise.all(
        [...byPerson.values()].map(async (list) => {
          const out = [];
          for (const w of list) out.push(await decide(w));
          return out;
        }),
      )
    ).flat();

    const retry: OutgoingMessage[] = [];
    const ledger: LedgerRow[] = [];
    const at = now();
    for (const { w, campaign, key, result: r } of decided) {
      const change = w.job.change;
      const msgKey = `${change.workspaceId}:${change.profileId}`;
      const jobHeaders = (attempt: number) => ({
        [ACTIVATION_HEADERS.attempt]: String(attempt),
        [ACTIVATION_HEADERS.firstSeen]: String(w.firstSeen),
      });
      switch (r.outcome) {
        case 'delayed':
          park.push({
            job: jobOnward(w.job, r),
            attempt: w.attempt,
            firstSeen: w.firstSeen,
            reason: r.reason,
            notBefore: r.notBefore,
          });
          break;
        case 'retried':
          retry.push({
            key: msgKey,
            value: JSON.stringify(jobOnward(w.job)),
            headers: {
              ...jobHeaders(w.attempt + 1),
              [ACTIVATION_HEADERS.notBefore]: String(r.notBefore),
              [ACTIVATION_HEADERS.reason]: r.reason.slice(0, 500),
            },
          });
          break;
        case 'failed':
          if (r.replayable === false) break;
          dead.push(
            deadLetter({
              key: msgKey,
              value: JSON.stringify(jobOnward(w.job)),
              reason: `campaign ${w.job.campaignId}: ${r.reason}`,
              stage: 'activation.send',
              from: w.source,
              headers: { ...jobHeaders(w.attempt + 1), [ACTIVATION_HEADERS.job]: '1' },
            }),
          );
          break;
        case 'sent':
        case 'suppressed':
        case 'skipped_duplicate':
          break;
        default: {
          const never: never = r;
          throw new Error(`unknown outcome ${JSON.stringify(never)}`);
        }
      }
      ledger.push({
        workspace_id: change.workspaceId,
        at,
        send_key: key,
        campaign_id: w.job.campaignId,
        campaign_version: campaign?.version ?? 0,
        // a resend's job names no segment: its campaign's
        segment_id: change.segmentId || (campaign?.segmentId ?? ''),
        segment_version: change.segmentVersion,
        profile_id: change.profileId,
        epoch: change.epoch,
        channel: campaign?.channel ?? '',
        outcome: r.outcome,
        reason: 'reason' in r ? r.reason.slice(0, 1000) : '',
        attempt: w.attempt + 1,
        status_code: 'status' in r ? r.status : 0,
        latency_ms: Math.max(0, at - w.firstSeen),
        provider_ms: 'providerMs' in r ? r.providerMs : 0,
        not_before: 'notBefore' in r ? r.notBefore : null,
        provider_id: r.outcome === 'sent' ? (r.providerId ?? '') : '',
      });
      const channel = campaign?.channel ?? 'unknown';
      metrics.sends.labels(channel, r.outcome).inc();
      if ('providerMs' in r && r.providerMs > 0)
        metrics.providerSeconds.labels(channel).observe(r.providerMs / 1000);
      if (r.outcome === 'sent')
        metrics.deliverySeconds.labels(channel).observe(Math.max(0, at - w.firstSeen) / 1000);
      if (r.outcome !== 'sent' && r.outcome !== 'skipped_duplicate')
        deps.log.info(
          {
            campaignId: w.job.campaignId,
            profileId: change.profileId,
            outcome: r.outcome,
            reason: ledger.at(-1)?.reason,
          },
          'activation_decided',
        );
    }
    if (unmatched.length > 0)
      deps.log.debug(
        { topic: batch.topic, partition: batch.partition, count: unmatched.length },
        'activation_no_campaign',
      );
    // each follow-up once, however often another fails
    await followUps(ctx, [
      () => deps.noCampaign.add(unmatched),
      () => deps.delayed.add(park),
      // a message the broker refuses as too large goes to the dead-letter topic (with the
      // reason) rather than failing this step forever (runtime/kafka/send-bounded.ts)
      async () => {
        if (retry.length > 0) await publish(deps.topics.retry, retry);
      },
      async () => {
        if (dead.length > 0) await publish(deps.topics.deadLetter, dead);
      },
      // ledger rows go through Kafka (durable now, inserted in large batches by ledger-sink.ts)
      async () => {
        if (ledger.length > 0)
          await publish(
            deps.topics.ledger,
            ledger.map((row) => ({
              key: `${row.workspace_id}:${row.campaign_id}`,
              value: JSON.stringify(row),
            })),
          );
      },
    ]);
  }

  /**
   * Runs the steps in order, each once: a step that fails is tried again with backoff until it
   * succeeds or the consumer stops (then the batch is not committed and comes back).
   */
  async function followUps(ctx: { isActive(): boolean }, steps: Array<() => Promise<void>>) {
    for (const step of steps) await persist(ctx, 'activation_follow_up_failed', {}, step);
  }
}

/** Batches worked on at once (per worker); the handler waits while more are. */
const MAX_BATCHES_UNDER_WAY = 16;
