// The activation pipeline, per batch of segment changes:
//   parse → match active campaigns → claim the send key (Redis SET NX) → deliver → ledger.
// Claiming before delivering makes a send happen at most once per (campaign, profile,
// segment entry), also when a change is redelivered or published twice.
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import { realSleep, type Sleep } from '../runtime/errors.ts';
import type { BatchHandler, OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import type { CampaignDefinition, SegmentWebhookBody } from '../schemas/campaign.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { type SegmentChange, segmentChangeCheck } from '../schemas/segment-change.ts';
import { DLQ_HEADERS } from '../schemas/topics.ts';
import type { CampaignRegistry } from './campaign-registry.ts';
import { sendKey } from './send-key.ts';
import { sendWebhook, type WebhookResult } from './webhook/send-webhook.ts';

export interface ActivationDeps {
  redis: Redis;
  clickhouse: ClickHouseClient;
  producer: Producer;
  deadLetterTopic: string;
  campaigns: CampaignRegistry;
  redisPrefix: string;
  policy: { allowLoopback: boolean; allowPrivate: boolean; timeoutMs: number };
  log: Logger;
  now?: () => Date;
  sleep?: Sleep;
  attempts?: number;
}

interface LedgerRow {
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
  outcome: 'sent' | 'failed' | 'skipped_duplicate';
  reason: string;
  attempt: number;
  status_code: number;
  latency_ms: number;
}

const CLAIM_TTL_SECONDS = 90 * 24 * 3600;

export function createActivationPipeline(deps: ActivationDeps): BatchHandler {
  const now = deps.now ?? (() => new Date());
  const sleep = deps.sleep ?? realSleep;
  const attempts = deps.attempts ?? 3;

  const deliver = async (
    c: CampaignDefinition,
    change: SegmentChange,
    key: string,
  ): Promise<[WebhookResult, number]> => {
    const body: SegmentWebhookBody = {
      type: change.type === 'entered' ? 'segment.entered' : 'segment.exited',
      campaignId: c.id,
      segmentId: change.segmentId,
      profileId: change.profileId,
      userId: change.userId,
      traits: change.traits,
      occurredAt: change.occurredAt,
    };
    const payload = JSON.stringify(body);
    let result: WebhookResult = { ok: false, status: 0, retriable: true, latencyMs: 0 };
    let attempt = 0;
    while (attempt < attempts) {
      attempt++;
      result = await sendWebhook(
        {
          url: c.webhook.url,
          secret: c.webhook.secret,
          id: key,
          body: payload,
          timestampSeconds: Math.floor(now().getTime() / 1000),
        },
        deps.policy,
      );
      if (result.ok || !result.retriable) break;
      if (attempt < attempts) await sleep(200 * 2 ** attempt + Math.floor(Math.random() * 100));
    }
    return [result, attempt];
  };

  return async (batch) => {
    const ledger: LedgerRow[] = [];
    const dead: OutgoingMessage[] = [];
    for (const m of batch.messages) {
      let change: SegmentChange;
      try {
        const v: unknown = JSON.parse(m.value?.toString('utf8') ?? '');
        if (!segmentChangeCheck.Check(v)) throw new Error('not a segment change');
        change = v;
      } catch (err) {
        dead.push({
          key: m.key ?? '',
          value: m.value ?? Buffer.alloc(0),
          headers: {
            [DLQ_HEADERS.reason]: (err as Error).message,
            [DLQ_HEADERS.source]: m.topic,
            [DLQ_HEADERS.stage]: 'activation.parse',
          },
        });
        continue;
      }
      const keys = workspaceKeys(deps.redisPrefix, change.workspaceId);
      for (const c of deps.campaigns.match(change.workspaceId, change.segmentId, change.type)) {
        const key = sendKey(c.id, change);
        const row = {
          workspace_id: change.workspaceId,
          send_key: key,
          campaign_id: c.id,
          campaign_version: c.version,
          segment_id: change.segmentId,
          segment_version: change.segmentVersion,
          profile_id: change.profileId,
          epoch: change.epoch,
          channel: c.channel,
        };
        const claimed = await deps.redis.set(keys.sendClaim(key), 'claimed', 'EX', CLAIM_TTL_SECONDS, 'NX');
        if (claimed !== 'OK') {
          deps.log.debug({ campaignId: c.id, sendKey: key }, 'send_already_claimed');
          continue;
        }
        const [result, attempt] = await deliver(c, change, key);
        await deps.redis.set(keys.sendClaim(key), result.ok ? 'sent' : 'failed', 'EX', CLAIM_TTL_SECONDS);
        const entry: LedgerRow = {
          ...row,
          at: now().getTime(),
          outcome: result.ok ? 'sent' : 'failed',
          reason: result.error ?? '',
          attempt,
          status_code: result.status,
          latency_ms: result.latencyMs,
        };
        ledger.push(entry);
        deps.log.info(
          {
            campaignId: c.id,
            profileId: change.profileId,
            outcome: entry.outcome,
            status: result.status,
            attempt,
            reason: entry.reason,
          },
          'activation_decided',
        );
        if (!result.ok)
          dead.push({
            key: `${change.workspaceId}:${change.profileId}`,
            value: m.value ?? Buffer.alloc(0),
            headers: {
              [DLQ_HEADERS.reason]: `campaign ${c.id}: ${result.error ?? 'failed'}`,
              [DLQ_HEADERS.source]: m.topic,
              [DLQ_HEADERS.stage]: 'activation.send',
            },
          });
      }
    }
    if (ledger.length > 0)
      await deps.clickhouse.insert({ table: 'activation_ledger', values: ledger, format: 'JSONEachRow' });
    if (dead.length > 0) await deps.producer.send(deps.deadLetterTopic, dead);
  };
}
