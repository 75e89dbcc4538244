// Campaigns indexed by (workspace, segment) for matching, and by id for retries and
// delayed sends (which must see a pause or a deletion). Rebuilt when definitions change.
import type { CampaignDefinition } from '../schemas/campaign.ts';

export class CampaignRegistry {
  private bySegment = new Map<string, CampaignDefinition[]>();
  private byId = new Map<string, CampaignDefinition>();

  /** `byIdOnly`: campaigns no segment change matches (journey send steps, triggered by journey runs). */
  replace(defs: CampaignDefinition[], byIdOnly: CampaignDefinition[] = []): void {
    const next = new Map<string, CampaignDefinition[]>();
    const ids = new Map<string, CampaignDefinition>();
    for (const c of byIdOnly) ids.set(`${c.workspaceId}/${c.id}`, c);
    for (const c of defs) {
      ids.set(`${c.workspaceId}/${c.id}`, c);
      if (c.status !== 'active') continue;
      const k = `${c.workspaceId}/${c.segmentId}`;
      next.set(k, [...(next.get(k) ?? []), c]);
    }
    this.bySegment = next;
    this.byId = ids;
  }

  /** Active campaigns triggered by a transition of this kind. */
  match(workspaceId: string, segmentId: string, type: 'entered' | 'exited'): CampaignDefinition[] {
    const on = type === 'entered' ? 'enter' : 'exit';
    return (this.bySegment.get(`${workspaceId}/${segmentId}`) ?? []).filter((c) => c.on === on);
  }

  /** The current definition of a campaign, paused or not; undefined once deleted. */
  get(workspaceId: string, campaignId: string): CampaignDefinition | undefined {
    return this.byId.get(`${workspaceId}/${campaignId}`);
  }
}
