// Active campaigns indexed by (workspace, segment), rebuilt when definitions change.
import type { CampaignDefinition } from '../schemas/campaign.ts';

export class CampaignRegistry {
  private bySegment = new Map<string, CampaignDefinition[]>();

  replace(defs: CampaignDefinition[]): void {
    const next = new Map<string, CampaignDefinition[]>();
    for (const c of defs) {
      if (c.status !== 'active') continue;
      const k = `${c.workspaceId}/${c.segmentId}`;
      next.set(k, [...(next.get(k) ?? []), c]);
    }
    this.bySegment = next;
  }

  /** Active campaigns triggered by a transition of this kind. */
  match(workspaceId: string, segmentId: string, type: 'entered' | 'exited'): CampaignDefinition[] {
    const on = type === 'entered' ? 'enter' : 'exit';
    return (this.bySegment.get(`${workspaceId}/${segmentId}`) ?? []).filter((c) => c.on === on);
  }
}
