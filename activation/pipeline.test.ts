// How the pipeline schedules work, with in-memory stand-ins for the claims, the policy, the
// channel and the producer (their Redis and Kafka behaviour is tested in test/activation):
// the handler answers before the sends finish and the batch's effects cover them and the
// follow-ups; sends of all batches share one concurrency limit; an infrastructure failure
// is worked on again inside the effects; a follow-up that fails is tried again alone (its
// rows written once); the number of batches under way is bounded.
import { describe, expect, it } from 'vitest';
import type { Batch, BatchContext, OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import type { CampaignDefinition } from '../schemas/campaign.ts';
import type { SegmentChange } from '../schemas/segment-change.ts';
import { CampaignRegistry } from './campaign-registry.ts';
import type { Channel, SendRequest, SendResult } from './channels/channel.ts';
import type { Channels } from './channels/index.ts';
import type { SendClaims } from './claim-send.ts';
import type { delayedSends } from './delayed-sends.ts';
import { createActivationPipeline } from './pipeline.ts';
import type { ContactPolicy } from './policy/check-contact-policy.ts';

const ws = 'ws-pipe';
const at = '2026-11-01T00:00:00.000Z';
const campaign: CampaignDefinition = {
  id: 'cmp_1',
  workspaceId: ws,
  name: 'c',
  segmentId: 'seg_1',
  on: 'enter',
  channel: 'webhook',
  webhook: { url: 'http://hooks.example/x', secret: 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
  status: 'active',
  version: 1,
  createdAt: at,
  updatedAt: at,
};
const topics = { retry: 'act.retry', deadLetter: 'dlq', ledger: 'ledger' };

function change(n: number): SegmentChange {
  return {
    workspaceId: ws,
    profileId: `p${n}`,
    segmentId: 'seg_1',
    segmentVersion: 1,
    type: 'entered',
    epoch: 1,
    messageId: `m${n}`,
    occurredAt: at,
    userId: `u${n}`,
    traits: {},
  };
}

function batchOf(from: number, count: number, partition = 0): Batch {
  return {
    topic: 'seg.changes',
    partition,
    messages: Array.from({ length: count }, (_, i) => ({
      topic: 'seg.changes',
      partition,
      offset: String(from + i),
      key: null,
      value: Buffer.from(JSON.stringify(change(from + i))),
      headers: {},
      timestamp: 0,
    })),
  };
}

const ctx: BatchContext = { heartbeat: async () => {}, isActive: () => true };

/** A channel whose sends wait until released, counting how many run at once. */
function gatedChannel() {
  const gates: Array<() => void> = [];
  const state = { running: 0, maxRunning: 0, sent: [] as string[], failNext: 0, throwFor: '' };
  const channel: Channel = {
    name: 'webhook',
    recipient: () => 'http://hooks.example/x',
    async send(req: SendRequest): Promise<SendResult> {
      if (req.change.profileId === state.throwFor) throw new Error('boom: a channel bug');
      state.running++;
      state.maxRunning = Math.max(state.maxRunning, state.running);
      await new Promise<void>((resolve) => gates.push(resolve));
      state.running--;
      state.sent.push(req.change.profileId);
      return { ok: true, status: 200, retriable: false, latencyMs: 1 };
    },
  };
  const releaseAll = () => {
    for (const g of gates.splice(0)) g();
  };
  return { channel, state, gates, releaseAll };
}

function setup(opts: { concurrency: number; decide?: ContactPolicy['decide']; failProduces?: number }) {
  const ch = gatedChannel();
  const produced: Array<{ topic: string; messages: OutgoingMessage[] }> = [];
  let failProduces = opts.failProduces ?? 0;
  const producer: Producer = {
    connect: async () => {},
    disconnect: async () => {},
    send: async (topic, messages) => {
      if (failProduces-- > 0) throw new Error('kafka: request timed out');
      produced.push({ topic, messages });
    },
  };
  const campaigns = new CampaignRegistry();
  campaigns.replace([campaign]);
  const claims = {
    lease: (key: string) => ({ key, owner: 'me', leaseMs: 1000, doneTtlSeconds: 60 }),
    claim: async () => ({ kind: 'claimed' }),
    finish: async () => {},
    release: async () => {},
  } as unknown as SendClaims;
  const policy = {
    decide: opts.decide ?? (async () => ({ kind: 'allow' })),
    release: async () => {},
  } as unknown as ContactPolicy;
  const delayed = { add: async () => {} } as unknown as ReturnType<typeof delayedSends>;
  const unmatched: string[] = [];
  const handler = createActivationPipeline({
    redisPrefix: 'x',
    campaigns,
    claims,
    policy,
    channels: { webhook: ch.channel } as unknown as Channels,
    unsubscribe: { secret: 's', ttlDays: 0, publicUrl: 'http://x' },
    retries: { maxAttempts: 3, baseMs: 10, maxMs: 100 },
    producer,
    topics,
    delayed,
    noCampaign: {
      add: async (changes) => {
        for (const c of changes) unmatched.push(`${c.segmentId}:${c.type}:${c.profileId}`);
      },
    },
    concurrency: opts.concurrency,
    log: createLogger({ level: 'silent', name: 'pipeline-test' }),
  });
  const ledgerRows = () =>
    produced
      .filter((p) => p.topic === topics.ledger)
      .flatMap((p) => p.messages.map((m) => JSON.parse(String(m.value))));
  return { handler, ch, ledgerRows, unmatched };
}

const tick = () => new Promise((r) => setTimeout(r, 5));
async function until(cond: () => boolean, ms = 2000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await tick();
  }
}

describe('activation pipeline scheduling', () => {
  it('answers before the sends finish; the effects cover the sends and the ledger rows', async () => {
    const { handler, ch, ledgerRows } = setup({ concurrency: 8 });
    const outcome = await handler(batchOf(0, 3), ctx);
    expect(outcome && 'effects' in outcome).toBe(true);
    if (!outcome) throw new Error('no effects');
    let done = false;
    void outcome.effects.then(() => {
      done = true;
    });
    await until(() => ch.gates.length === 3);
    await tick();
    expect(done).toBe(false);
    expect(ledgerRows()).toEqual([]);
    ch.releaseAll();
    await outcome.effects;
    expect(ch.state.sent.sort()).toEqual(['p0', 'p1', 'p2']);
    expect(ledgerRows().map((r) => [r.profile_id, r.outcome])).toEqual([
      ['p0', 'sent'],
      ['p1', 'sent'],
      ['p2', 'sent'],
    ]);
  });

  it('counts the changes no active campaign matched, and only those', async () => {
    const { handler, ch, unmatched } = setup({ concurrency: 8 });
    const batch = batchOf(0, 2);
    const other = { ...change(7), segmentId: 'seg_other' };
    const exit = { ...change(8), type: 'exited' as const, epoch: 2 };
    for (const [i, v] of [other, exit].entries())
      batch.messages.push({
        ...batch.messages[0]!,
        offset: String(10 + i),
        value: Buffer.from(JSON.stringify(v)),
      });
    const outcome = await handler(batch, ctx);
    if (!outcome) throw new Error('no effects');
    await until(() => ch.gates.length === 2);
    ch.releaseAll();
    await outcome.effects;
    expect(ch.state.sent.sort()).toEqual(['p0', 'p1']);
    expect(unmatched.sort()).toEqual(['seg_1:exited:p8', 'seg_other:entered:p7']);
  });

  it('shares one concurrency limit across the batches under way', async () => {
    const { handler, ch } = setup({ concurrency: 2 });
    const outcomes = [];
    for (let b = 0; b < 3; b++) outcomes.push(await handler(batchOf(b * 2, 2, b), ctx));
    await until(() => ch.gates.length === 2);
    await tick();
    expect(ch.state.running).toBe(2);
    while (ch.state.sent.length < 6) {
      ch.releaseAll();
      await tick();
    }
    await Promise.all(outcomes.map((o) => (o ? o.effects : undefined)));
    expect(ch.state.maxRunning).toBe(2);
    expect(ch.state.sent).toHaveLength(6);
  });

  it('works on a batch again when something under the sends fails, inside its effects', async () => {
    let failures = 1;
    const { handler, ch, ledgerRows } = setup({
      concurrency: 4,
      decide: async () => {
        if (failures-- > 0) throw new Error('redis: connection refused');
        return { kind: 'allow' };
      },
    });
    const outcome = await handler(batchOf(10, 1), ctx);
    await until(() => ch.gates.length === 1);
    ch.releaseAll();
    await outcome?.effects;
    expect(ch.state.sent).toEqual(['p10']);
    expect(ledgerRows().map((r) => r.outcome)).toEqual(['sent']);
  });

  it('a channel that throws fails that send, retriable, and the batch completes (no redelivery loop)', async () => {
    const { handler, ch, ledgerRows } = setup({ concurrency: 4 });
    ch.state.throwFor = 'p31';
    const outcome = await handler(batchOf(30, 3), ctx);
    await until(() => ch.gates.length === 2);
    ch.releaseAll();
    await outcome?.effects;
    expect(ch.state.sent.sort()).toEqual(['p30', 'p32']);
    const rows = ledgerRows().map((r) => [r.profile_id, r.outcome, r.reason ?? '']);
    expect(rows.sort()).toEqual([
      ['p30', 'sent', ''],
      ['p31', 'retried', 'channel error: boom: a channel bug'],
      ['p32', 'sent', ''],
    ]);
  });

  it('writes the ledger rows once when producing them fails for a while', async () => {
    const { handler, ch, ledgerRows } = setup({ concurrency: 4, failProduces: 2 });
    const outcome = await handler(batchOf(20, 2), ctx);
    await until(() => ch.gates.length === 2);
    ch.releaseAll();
    await outcome?.effects;
    // sent once each, the rows produced once (after two failed attempts)
    expect(ch.state.sent.sort()).toEqual(['p20', 'p21']);
    expect(ledgerRows().map((r) => r.profile_id)).toEqual(['p20', 'p21']);
  });

  it('holds the handler back while too many batches are under way', async () => {
    const { handler, ch } = setup({ concurrency: 100 });
    const answered: number[] = [];
    const calls = Array.from({ length: 18 }, (_, i) =>
      handler(batchOf(i * 100, 1, i), ctx).then((o) => {
        answered.push(i);
        return o;
      }),
    );
    await until(() => ch.gates.length === 18);
    await tick();
    // 16 under way answered at once; the 17th waits for a batch to finish (and so the 18th)
    expect(answered.sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    ch.releaseAll();
    const outcomes = await Promise.all(calls);
    await Promise.all(outcomes.map((o) => (o ? o.effects : undefined)));
    expect(answered).toHaveLength(18);
  });
});
