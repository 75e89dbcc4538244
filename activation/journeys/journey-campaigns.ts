// A journey's send steps are sent by the activation worker as campaigns are: each send node
// of each journey version is a campaign definition (id `${journeyId}@${version}.${nodeId}`)
// that only journey runs trigger (never a segment change), so claims, contact policy,
// channels, retries, dead letters and the ledger apply to journey sends unchanged. The
// journey's status is the campaign's: a paused journey's pending sends are suppressed as
// `campaign_paused`, as a paused campaign's are.
import type { CampaignDefinition } from '../../schemas/campaign.ts';
import type { JourneyDefinition } from '../../schemas/journey.ts';

export const journeyCampaignId = (journeyId: string, version: number, nodeId: string) =>
  `${journeyId}@${version}.${nodeId}`;

/** The send nodes of every version, as campaigns with the journey's current status. */
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
