// A journey message handled again after its first handling failed part-way (a produce the
// broker refused, Redis gone for a moment, or the runner killed): the consumer delivers it
// again, and the run must go on from where the failure left it, not stay where it is with
// no timer and no step taken. Real Redis (run-state.lua, the timer sets) and Kafka; the
// engine driven directly, with one produce made to fail at a chosen step: after an entry
// was recorded, after a wait-until's `met` move, after a merge moved a run to the survivor.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { journeyEngine } from '../../activation/journeys/journey-engine.ts';
import { JourneyRegistry } from '../../activation/journeys/journey-registry.ts';
import { journeyTimers } from '../../activation/journeys/journey-timers.ts';
import { runStore } from '../../activation/journeys/run-state.ts';
import { journeyTopicSpecs } from '../../activation/journeys/start-journeys.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import type { OutgoingMessage, Producer } from '../../runtime/kafka/index.ts';
import type { JourneyDefinition, JourneyNode } from '../../schemas/journey.ts';
import type { JourneySignal } from '../../schemas/journey-signal.ts';
import { globalKeys } from '../../schemas/redis-keys.ts';
import { topics } from '../../schemas/topics.ts';
import { testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let clients: Clients;
let real: Producer;
let engine: ReturnType<typeof journeyEngine>;
let runs: ReturnType<typeof runStore>;
/** The next produce whose messages match fails (once), as a broker that is away would. */
let failWhen: ((messages: OutgoingMessage[]) => boolean) | undefined;
const registry = new JourneyRegistry();

const step = (name: string, node: string) => (messages: OutgoingMessage[]) =>
  messages.some((m) => {
    const v = JSON.parse(String(m.value)) as { step?: string; node_id?: string };
    return v.step === name && v.node_id === node;
  });

function def(id: string, event: string, nodes: JourneyNode[]): JourneyDefinition {
  const at = new Date().toISOString();
  return {
    id,
    workspaceId: cfg.keys.workspace,
    name: id,
    entry: { event },
    nodes,
    status: 'active',
    version: 1,
    createdAt: at,
    updatedAt: at,
  };
}
const signal = (event: string, profileId: string): JourneySignal => ({
  workspaceId: cfg.keys.workspace,
  profileId,
  messageId: uniqueId('m'),
  event,
  properties: {},
  timestamp: new Date().toISOString(),
  userId: null,
});
/** Whether a timer is set for the person's run at `node`. */
async function timerAt(profileId: string, node: string): Promise<boolean> {
  const members = await clients.redis().zrange(globalKeys(cfg.redis.prefix).journeysDue, 0, -1);
  return members.some((m) => m.split('\u001f').includes(profileId) && m.endsWith(`\u001f${node}`));
}

beforeAll(async () => {
  cfg = testConfig();
  const log = testLogger(cfg);
  clients = createClients(cfg, log);
  const admin = clients.kafka().admin();
  await admin.ensureTopics(journeyTopicSpecs(cfg));
  await admin.disconnect();
  real = clients.kafka().producer();
  await real.connect();
  const producer: Producer = {
    connect: async () => {},
    disconnect: async () => {},
    async send(topic, messages) {
      if (failWhen?.(messages)) {
        failWhen = undefined;
        throw new Error('broker unavailable');
      }
      await real.send(topic, messages);
    },
  };
  const redis = clients.redis();
  runs = runStore(redis, cfg.redis.prefix);
  const journeys = [
    def('jrn_entry', 'Start Entry', [
      {
        id: 's',
        type: 'send',
        channel: 'webhook',
        webhook: { url: 'http://127.0.0.1:9/never', secret: 'whsec_AAAA' },
        next: 'w',
      },
      { id: 'w', type: 'wait', for: 'PT1H' },
    ]),
    def('jrn_meet', 'Start Meet', [
      {
        id: 'u',
        type: 'wait',
        for: { until: { event: 'Go' }, timeout: 'PT1H' },
        branches: { met: 'w2', timeout: 'x' },
      },
      { id: 'w2', type: 'wait', for: 'PT1H' },
      { id: 'x', type: 'exit' },
    ]),
    def('jrn_merge', 'Start Merge', [{ id: 'w', type: 'wait', for: 'PT1H' }]),
  ];
  registry.replace(journeys, journeys);
  engine = journeyEngine({
    redis,
    redisPrefix: cfg.redis.prefix,
    runs,
    registry,
    timers: journeyTimers({ redis, prefix: cfg.redis.prefix, log, now: Date.now }),
    producer,
    topics: topics(cfg.kafka.topicPrefix),
    now: Date.now,
    log,
  });
});

afterAll(async () => {
  await real?.disconnect();
  await clients?.close();
});

const ref = (journeyId: string, profileId: string) => ({
  workspaceId: cfg.keys.workspace,
  journeyId,
  profileId,
});

describe('a journey message handled again after a failure part-way', () => {
  it('an entry: the run recorded, its first step not taken; delivered again, the step is taken', async () => {
    const s = signal('Start Entry', 'p-entry');
    failWhen = step('entered', 's');
    await expect(engine.onSignal(s)).rejects.toThrow('broker unavailable');
    expect(await runs.peek(ref('jrn_entry', 'p-entry'))).toMatchObject({ active: true, node: 's' });
    await engine.onSignal(s); // the consumer delivers it again
    expect(await runs.peek(ref('jrn_entry', 'p-entry'))).toMatchObject({ active: true, run: 1, node: 'w' });
    expect(await timerAt('p-entry', 'w')).toBe(true);
  });

  it('a wait-until met: the run moved to the next wait, its timer not set; delivered again, it is', async () => {
    await engine.onSignal(signal('Start Meet', 'p-meet'));
    expect(await runs.peek(ref('jrn_meet', 'p-meet'))).toMatchObject({ active: true, node: 'u' });
    const go = signal('Go', 'p-meet');
    failWhen = step('waiting', 'w2');
    await expect(engine.onSignal(go)).rejects.toThrow('broker unavailable');
    await engine.onSignal(go);
    expect(await runs.peek(ref('jrn_meet', 'p-meet'))).toMatchObject({ active: true, node: 'w2' });
    expect(await timerAt('p-meet', 'w2')).toBe(true);
  });

  it('a merge: the run moved to the survivor, its timer not set again; delivered again, it is', async () => {
    await engine.onSignal(signal('Start Merge', 'p-away'));
    expect(await timerAt('p-away', 'w')).toBe(true);
    const change = {
      workspaceId: cfg.keys.workspace,
      profileId: 'p-survivor',
      identifiers: ['user:u-merge'],
      mergedProfileIds: ['p-away'],
      version: 2,
      messageId: uniqueId('m'),
      occurredAt: new Date().toISOString(),
    };
    failWhen = (messages) =>
      messages.some((m) => (JSON.parse(String(m.value)) as { step?: string }).step === 'merged');
    await expect(engine.onIdentityChange(change)).rejects.toThrow('broker unavailable');
    await engine.onIdentityChange(change);
    expect(await runs.peek(ref('jrn_merge', 'p-survivor'))).toMatchObject({ active: true, node: 'w' });
    expect(await timerAt('p-survivor', 'w')).toBe(true);
  });
});
