// Two batches of one person settle at once (as two partitions' batches do after a merge),
// against real Redis and Kafka. The processor publishes a transition before it records it,
// so the other batch can be made to run entirely inside that window: it then decides on
// the profile as it was before the first batch's record. Whoever records on a profile that
// changed since its read must evaluate it again; whoever records on an untouched profile
// must not need to (one read fewer per transition, the common case).
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SegmentRegistry } from '../../processor/segment-registry.ts';
import type { Config } from '../../runtime/config.ts';
import type { Producer } from '../../runtime/kafka/index.ts';
import { createLogger } from '../../runtime/log.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import type { SegmentDefinition } from '../../schemas/segment.ts';
import { topics } from '../../schemas/topics.ts';
import { BATCH_CTX, eventBatch, segmentDef, streamEvent } from '../fixtures.ts';
import { processorOutputs, testConfig, testProcessor, uniqueId } from '../harness.ts';

const log = createLogger({ level: 'silent', name: 'test' });
const T0 = Date.parse('2026-06-01T00:00:00Z');
let cfg: Config;
let redis: Redis;
let kafkaProducer: Producer;

const seg = (id: string, rule: unknown, ws: string): SegmentDefinition =>
  segmentDef(id, rule, { workspaceId: ws });
const segments = (ws: string) => [
  seg('pro', { '==': [{ var: 'traits.plan' }, 'pro'] }, ws),
  seg('buyers', { '>=': [{ event_count: ['Order', '30d'] }, 1] }, ws),
  seg('pro_buyers', { and: [{ in_segment: ['pro'] }, { in_segment: ['buyers'] }] }, ws),
];

/**
 * A processor whose publishes go to Kafka, after `beforePublish` (if set) has run: the
 * moment between a batch's decision and its record.
 */
function processorFor(ws: string, hooks: { beforePublish?: () => Promise<void> }) {
  const registry = new SegmentRegistry(log);
  registry.replace(segments(ws));
  const producer: Producer = {
    connect: () => kafkaProducer.connect(),
    disconnect: async () => {},
    async send(topic, messages) {
      const hook = hooks.beforePublish;
      if (hook && topic === topics(cfg.kafka.topicPrefix).segmentChanges) {
        hooks.beforePublish = undefined;
        await hook();
      }
      await kafkaProducer.send(topic, messages);
    },
  };
  return testProcessor(cfg, { redis, producer, registry, log, now: () => new Date(T0) });
}

let offset = 0;
const batchOf = (ws: string, e: Partial<NormalizedEvent>) =>
  eventBatch([streamEvent({ workspaceId: ws, ...e }, T0)], offset++);

async function membershipsOf(ws: string): Promise<string[]> {
  const k = workspaceKeys(cfg.redis.prefix, ws);
  const pid = await redis.get(`${k.tag}:id:user:u1`);
  if (!pid) return [];
  const seg = await redis.hgetall(k.profileSegments(pid));
  return Object.entries(seg)
    .filter(([, e]) => Number(e) % 2 === 1)
    .map(([s]) => s)
    .sort();
}

/**
 * Counts the Redis commands naming `ws` in their arguments while `fn` runs, by name.
 *
 * Reads MONITOR over a bare socket: ioredis's monitor mode can take a monitor line that
 * arrives with the MONITOR command's own OK for a reply, and then fails with "Command queue
 * state error".
 */
async function commandsDuring(ws: string, fn: () => Promise<void>): Promise<Map<string, number>> {
  const url = new URL(cfg.redis.url);
  const socket = connect(Number(url.port || 6379), url.hostname);
  const seen = new Map<string, number>();
  const marker = `${ws}-done`;
  let started: () => void = () => {};
  let markerSeen: () => void = () => {};
  let failed: (e: Error) => void = () => {};
  const ok = new Promise<void>((resolve, reject) => {
    started = resolve;
    failed = reject;
  });
  const done = ok.then(
    () =>
      new Promise<void>((resolve, reject) => {
        markerSeen = resolve;
        failed = reject;
      }),
  );
  done.catch(() => {}); // a failure before the marker surfaces through `ok`
  let pending = '';
  let oks = url.password ? 2 : 1; // AUTH's, then MONITOR's
  socket.setEncoding('utf8');
  socket.on('error', (e) => failed(e));
  socket.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\r\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '+OK') {
        oks -= 1;
        if (oks === 0) started();
      } else if (line.startsWith('-')) failed(new Error(`MONITOR: ${line}`));
      else if (line.includes(marker)) markerSeen();
      else if (line.includes(ws)) {
        // +<time> [<db> <client>] "<command>" "<arg>" ...
        const name = /"([^"]*)"/.exec(line)?.[1]?.toLowerCase() ?? '?';
        seen.set(name, (seen.get(name) ?? 0) + 1);
      }
    }
  });
  try {
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    if (password) socket.write(`AUTH ${user ? `${user} ` : ''}${password}\r\n`);
    socket.write('MONITOR\r\n');
    await ok;
    await fn();
    // the monitor shows commands in the order they ran: once it shows this one, it has
    // shown everything `fn` sent
    await redis.echo(marker);
    await done;
  } finally {
    socket.destroy();
  }
  return seen;
}

beforeAll(async () => {
  cfg = testConfig();
  redis = new Redis(cfg.redis.url);
  kafkaProducer = await processorOutputs(cfg, log);
  await kafkaProducer.connect();
});

afterAll(async () => {
  await kafkaProducer?.disconnect();
  redis?.disconnect();
});

describe('two batches of one profile settling at once', () => {
  /**
   * A's `event` is decided; before A records it, B's `interloper` is applied, decided and
   * recorded. Each decided on the profile without the other's record.
   */
  async function race(event: Partial<NormalizedEvent>, interloper: Partial<NormalizedEvent>) {
    const ws = uniqueId('ws');
    const hooks: { beforePublish?: () => Promise<void> } = {};
    const a = processorFor(ws, hooks);
    const b = processorFor(ws, {});
    await a.handleBatch(batchOf(ws, { type: 'identify', traits: {} }), BATCH_CTX);
    hooks.beforePublish = async () => {
      await b.handleBatch(batchOf(ws, interloper), BATCH_CTX);
    };
    await a.handleBatch(batchOf(ws, event), BATCH_CTX);
    return membershipsOf(ws);
  }

  it('the one that records on a profile changed since its read evaluates it again', async () => {
    // A decides 'pro' (the trait); B's order ('buyers') saw 'pro' unrecorded, so neither
    // decided 'pro_buyers'
    expect(await race({ type: 'identify', traits: { plan: 'pro' } }, { event: 'Order' })).toEqual([
      'buyers',
      'pro',
      'pro_buyers',
    ]);
  });

  it('the same, the other way round: the one recording last sees the first record', async () => {
    expect(await race({ event: 'Order' }, { type: 'identify', traits: { plan: 'pro' } })).toEqual([
      'buyers',
      'pro',
      'pro_buyers',
    ]);
  });

  it('a record on a profile nothing else changed reads nothing again', async () => {
    const ws = uniqueId('ws');
    const p = processorFor(ws, {});
    await p.handleBatch(batchOf(ws, { type: 'identify', traits: {} }), BATCH_CTX);
    const calls = await commandsDuring(ws, async () => {
      await p.handleBatch(batchOf(ws, { type: 'identify', traits: { plan: 'pro' } }), BATCH_CTX);
    });
    expect(await membershipsOf(ws)).toEqual(['pro']);
    // one script call applies the event, one records the transition: no profile read
    // (ioredis sends a script by EVAL until it knows the server has it, then EVALSHA)
    expect((calls.get('evalsha') ?? 0) + (calls.get('eval') ?? 0)).toBe(2);
  });
});
