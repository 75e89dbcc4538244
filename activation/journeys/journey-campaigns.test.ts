import { describe, expect, it } from 'vitest';
import { journeyCampaignId, journeyOfCampaign } from './journey-campaigns.ts';

describe('journeyOfCampaign', () => {
  it('names the journey of a send step, not of a webhook step or a campaign', () => {
    const id = journeyCampaignId('jrn_abc', 2, 'welcome');
    expect(journeyOfCampaign({ id, segmentId: 'jrn_abc' })).toBe('jrn_abc');
    // a webhook step is a call to a system: made whatever the run became meanwhile
    expect(
      journeyOfCampaign({
        id,
        segmentId: 'jrn_abc',
        journeyWebhook: { journeyId: 'jrn_abc', version: 2, nodeId: 'welcome' },
      }),
    ).toBeUndefined();
    expect(journeyOfCampaign({ id: 'cmp_1', segmentId: 'seg_1' })).toBeUndefined();
    // a campaign whose id merely looks like a journey step's, on a segment
    expect(journeyOfCampaign({ id: 'seg_1@1.x', segmentId: 'seg_1' })).toBeUndefined();
  });
});
