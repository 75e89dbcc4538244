// A journey's send steps are sent by the activation worker as campaigns are: each send node
// of each journey version is a campaign definition (id `${journeyId}@${version}.${nodeId}`)
// that only journey runs trigger (never a segment change), so claims, contact policy,
// channels, retries, dead letters and the ledger apply to journey sends unchanged. The
// journey's status is the campaign's: a paused journey's pending sends are suppressed as
// `campaign_paused`, as a paused campaign's are. A send whose run has ended by the goal or
// the exit rule before it went (delayed by quiet hours, or retried) is suppressed too: the
// person converted or left, so the message is no longer theirs.
import type { Redis } from '../../runtime/redis.ts';
import type { CampaignDefinition } from '../../schemas/campaign.ts';
import type { JourneyDefinition } from '../../schemas/journey.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';

/** The consent purpose of a journey's webhook steps (revoking everything still stops them). */
export const JOURNEY_WEBHOOK_PURPOSE = 'operational';

export const journeyCampaignId = (journeyId: string, version: number, nodeId: string) =>
  `${journeyId}@${version}.${nodeId}`;

/**
 * The journey of a journey send step's campaign (`<journeyId>@<version>.<nodeId>`), else
 * undefined; also undefined for a webhook step (a call to a system, made whatever the run
 * became meanwhile, not a message to the person).
 */
export function journeyOfCampaign(
  c: Pick<CampaignDefinition, 'id' | 'segmentId' | 'journeyWebhook'>,
): string | undefined {
  if (c.journeyWebhook) return undefined;
  return c.segmentId.startsWith('jrn_') && c.id.startsWith(`${c.segmentId}@`) ? c.segmentId : undefined;
}

/** Run ends after which a send of the run still pending is not sent. */
const ENDS_WITHOUT_PENDING_SENDS = new Set(['converted', 'segment_exit']);

/**
 * Why run `run` of a person in a journey ended, when it ended so that its pending sends
 * must not go (the goal, the exit rule); undefined otherwise (still running, ended at an
 * exit node or the last step, or a later run started). One HMGET.
 */
export type JourneyRunEnd = (
  workspaceId: string,
  journeyId: string,
  profileId: string,
  run: number,
) => Promise<string | undefined>;

export function journeyRunEndReader(redis: Redis, prefix: string): JourneyRunEnd {
  return async (workspaceId, journeyId, profileId, run) => {
    const [r, state, end] = await redis.hmget(
      workspaceKeys(prefix, workspaceId).journeyRun(journeyId, profileId),
      'run',
      'state',
      'end',
    );
    return Number(r) === run && state === 'ended' && end && ENDS_WITHOUT_PENDING_SENDS.has(end)
      ? end
      : undefined;
  };
}

/** The send and webhook nodes of every version, as campaigns with the journey's current status. */
export function journeySendCampaigns(
  latest: JourneyDefinition[],
  versions: JourneyDefinition[],
): CampaignDefinition[] {
  const status = new Map(latest.map((j) => [`${j.workspaceId}/${j.id}`, j.status]));
  const out: CampaignDefinition[] = [];
  for (const v of versions) {
    const s = status.get(`${v.workspaceId}/${v.id}`);
    if (!s) continue;
    for (const n of v.nodes) {
      if (n.type === 'webhook') {
        // a call to a system, not a message to the person: no quiet hours, no caps
        out.push({
          id: journeyCampaignId(v.id, v.version, n.id),
          workspaceId: v.workspaceId,
          name: `${v.name} / ${n.id}`,
          segmentId: v.id,
          on: 'enter',
          channel: 'webhook',
          webhook: n.webhook as { url: string; secret: string },
          purpose: JOURNEY_WEBHOOK_PURPOSE,
          policy: { ignoreCaps: true, ignoreQuietHours: true },
          journeyWebhook: {
            journeyId: v.id,
            version: v.version,
            nodeId: n.id,
            ...(n.data ? { data: n.data } : {}),
          },
          status: s === 'active' ? 'active' : 'paused',
          version: v.version,
          createdAt: v.createdAt,
          updatedAt: v.updatedAt,
        });
        continue;
      }
      if (n.type !== 'send') continue;
      out.push({
        id: journeyCampaignId(v.id, v.version, n.id),
        workspaceId: v.workspaceId,
        name: `${v.name} / ${n.id}`,
        segmentId: v.id,
        on: 'enter',
        channel: n.channel,
        ...(n.webhook ? { webhook: n.webhook } : {}),
        ...(n.email ? { email: n.email } : {}),
        ...(n.sms ? { sms: n.sms } : {}),
        ...(n.push ? { push: n.push } : {}),
        ...(n.purpose ? { purpose: n.purpose } : {}),
        ...(n.policy ? { policy: n.policy } : {}),
        status: s === 'active' ? 'active' : 'paused',
        version: v.version,
        createdAt: v.createdAt,
        updatedAt: v.updatedAt,
      } as CampaignDefinition);
    }
  }
  return out;
}
