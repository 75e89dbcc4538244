// The contact-policy script against a real Redis: concurrent decisions cannot exceed a
// cap, a retried send is not counted twice, a released send frees its slot.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { CampaignDefinition } from '../../schemas/campaign.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';
import { uniqueId } from '../../test/harness.ts';
import { sendClaims } from '../claim-send.ts';
import { contactPolicy } from './check-contact-policy.ts';

let redis: Redis;
const prefix = uniqueId('pol');
const ws = 'ws1';
const nowMs = Date.parse('2026-05-05T12:00:00Z');

const campaign = (id: string): CampaignDefinition => ({
  id,
  workspaceId: ws,
  name: id,
  segmentId: 's1',
  on: 'enter',
  channel: 'sms',
  sms: { body: 'x' },
  status: 'active',
  version: 1,
  createdAt: '',
  updatedAt: '',
});
const change = (pid: string, epoch = 1): SegmentChange => ({
  workspaceId: ws,
  profileId: pid,
  segmentId: 's1',
  segmentVersion: 1,
  type: 'entered',
  epoch,
  messageId: null,
  occurredAt: '',
  userId: null,
  traits: {},
});

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis.disconnect());

describe('contact policy script', () => {
  const lease = (key: string) => ({
    key: `${prefix}:claim:${key}`,
    owner: 'w1',
    leaseMs: 60_000,
    doneTtlSeconds: 60,
  });
  const policy = () =>
    contactPolicy({
      redis,
      redisPrefix: prefix,
      policy: { capPerChannelPerDay: 3, capPerDay: 0, defaultTimezone: 'UTC' },
    });

  it('lets exactly the cap through when 40 sends race', async () => {
    const p = policy();
    const decisions = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        p.decide({
          campaign: campaign(`c${i}`),
          change: change('race'),
          sendKey: `k${i}`,
          nowMs,
          claim: lease(`race${i}`),
        }),
      ),
    );
    expect(decisions.filter((d) => d.kind === 'allow')).toHaveLength(3);
    expect(decisions.filter((d) => d.kind === 'suppress' && d.rule === 'cap_channel')).toHaveLength(37);
  });

  it('does not count a retried send twice, and a released send frees its slot', async () => {
    const p = policy();
    const c = campaign('c-retry');
    const claimer = sendClaims(redis, 'w1', 60_000);
    for (let i = 0; i < 5; i++) {
      // each attempt claims, fails and releases the claim, as a retried send does
      expect(
        await p.decide({
          campaign: c,
          change: change('retry'),
          sendKey: 'same',
          nowMs,
          claim: lease('same'),
        }),
      ).toEqual({ kind: 'allow' });
      await claimer.release(lease('same').key);
    }
    await p.decide({
      campaign: campaign('c2'),
      change: change('retry'),
      sendKey: 'o1',
      nowMs,
      claim: lease('o1'),
    });
    await p.decide({
      campaign: campaign('c3'),
      change: change('retry'),
      sendKey: 'o2',
      nowMs,
      claim: lease('o2'),
    });
    expect(
      await p.decide({
        campaign: campaign('c4'),
        change: change('retry'),
        sendKey: 'k4',
        nowMs,
        claim: lease('k4'),
      }),
    ).toEqual({ kind: 'suppress', rule: 'cap_channel' });
    // a suppression is final for that send
    expect(
      await p.decide({
        campaign: campaign('c4'),
        change: change('retry'),
        sendKey: 'k4',
        nowMs,
        claim: lease('k4'),
      }),
    ).toEqual({ kind: 'done', state: 'suppressed' });
    await p.release(c, change('retry'), 'same');
    expect(
      await p.decide({
        campaign: campaign('c5'),
        change: change('retry'),
        sendKey: 'k5',
        nowMs,
        claim: lease('k5'),
      }),
    ).toEqual({ kind: 'allow' });
  });

  it('a held claim makes the send wait; a sent one is a duplicate', async () => {
    const p = policy();
    const c = campaign('c-claim');
    const input = { campaign: c, change: change('claim'), sendKey: 'x', nowMs, claim: lease('x') };
    expect(await p.decide(input)).toEqual({ kind: 'allow' });
    const busy = await p.decide(input);
    expect(busy.kind).toBe('busy');
    await sendClaims(redis, 'w1', 60_000).finish(lease('x').key, 'sent');
    expect(await p.decide(input)).toEqual({ kind: 'done', state: 'sent' });
  });
});

describe('send claims', () => {
  it('claimed → done; a second claimer waits for the lease; an expired lease can be taken over', async () => {
    const a = sendClaims(redis, 'worker-a', 300);
    const b = sendClaims(redis, 'worker-b', 300);
    const key = `${prefix}:claim1`;
    expect(await a.claim(key)).toEqual({ kind: 'claimed' });
    const busy = await b.claim(key);
    expect(busy.kind).toBe('busy');
    // b cannot release a's claim
    await b.release(key);
    expect((await b.claim(key)).kind).toBe('busy');
    // a dies: the lease runs out and b takes over
    await new Promise((r) => setTimeout(r, 400));
    expect(await b.claim(key)).toEqual({ kind: 'claimed' });
    await b.finish(key, 'sent');
    expect(await a.claim(key)).toEqual({ kind: 'done', state: 'sent' });
  });
});
