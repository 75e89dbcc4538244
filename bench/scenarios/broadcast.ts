// Broadcast at a policy rate: N seeded people enter a journey `send → wait P1D` at once
// (segment changes produced to Kafka, as the mass entry of bench/scenarios/journeys.ts),
// the send node's contact policy capped at RATE sends/s (policy.rate). The journey runner
// and an activation worker run in the bench process; a webhook receiver in its own process
// (bench/webhook-sink.ts) stamps each delivery; a reader of the activation ledger topic
// sees when each person's send was first decided (queued at its slot, or sent at once).
//   time to queue     produce start → every person's send decided once
//   achieved rate     (deliveries − 1) ÷ (last − first delivery), side by side with the
//                     policy's rate (ratio), and the busiest second of deliveries, overall
//                     and once every send is queued (while the worker also takes in the
//                     broadcast it falls behind, and overdue sends go as it catches up)
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startJourneys } from '../../activation/journeys/start-journeys.ts';
import { startActivation } from '../../activation/main.ts';
import { createClients } from '../../runtime/clients.ts';
import { loadConfig } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { JourneyDefinition } from '../../schemas/journey.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';
import { topics } from '../../schemas/topics.ts';
import { buildRows, type Figure, type Target } from '../report.ts';
import { ensureTopicsWithRetry, type ScenarioContext, type ScenarioResult } from '../scenario.ts';

const SIZE = { quick: 10_000, full: 100_000 };
/** Sends per second the policy allows: the send phase takes SIZE ÷ RATE = 40 s (full), 10 s (quick). */
const RATE = { quick: 1_000, full: 2_500 };
/** Deliveries never go faster than the policy: the achieved rate ÷ the policy's at most this. */
export const TARGETS = { rateRatio: { kind: 'ratioAtMost', value: 1.02 } as Target };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function broadcastScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const mode = ctx.settings.mode;
  const n = Number(process.env.CDP_BENCH_BROADCAST_PEOPLE ?? SIZE[mode]);
  const rate = Number(process.env.CDP_BENCH_BROADCAST_RATE ?? RATE[mode]);
  const prefix = `bench${ctx.nonce}bc`;
  const ws = 'bench';
  const cfg = loadConfig({
    NODE_ENV: 'development',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    KAFKA_BROKERS: ctx.kafkaBrokers,
    REDIS_URL: ctx.redisUrl,
    CDP_TOPIC_PREFIX: prefix,
    CDP_TOPIC_PARTITIONS: '4',
    CDP_REDIS_PREFIX: prefix,
    CDP_DATA_DIR: ctx.dataDir,
    CDP_DEFAULT_WORKSPACE: ws,
  });
  const clients = createClients(cfg, ctx.log);
  const redis = clients.redis();
  const t = topics(prefix);
  const k = workspaceKeys(prefix, ws);
  const admin = clients.kafka().admin();
  await ensureTopicsWithRetry(admin, [
    { topic: t.segmentChanges, partitions: 4 },
    { topic: t.journeySignals, partitions: 4 },
    { topic: t.identity, partitions: 4 },
    { topic: t.journeyLedger, partitions: 4 },
    { topic: t.activationRetry, partitions: 4 },
    { topic: t.activationLedger, partitions: 4 },
    { topic: t.events, partitions: 4 },
    { topic: t.deadLetter, partitions: 1 },
  ]);
  await admin.disconnect();

  // the receiver in its own process: its CPU is not the worker's
  const sink = fork(fileURLToPath(new URL('../webhook-sink.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const ask = <T>(msg: object, key: string) =>
    new Promise<T>((resolve) => {
      const on = (m: Record<string, unknown>) => {
        if (key in m) {
          sink.off('message', on);
          resolve(m as T);
        }
      };
      sink.on('message', on);
      sink.send(msg);
    });
  const { port } = await new Promise<{ port: number }>((resolve) =>
    sink.once('message', (m) => resolve(m as { port: number })),
  );
  const delivered = async () => (await ask<{ count: number }>({ count: true }, 'count')).count;
  const take = () => ask<{ received: number[]; stamped: number[] }>({ take: true }, 'latencies');

  ctx.progress(`broadcast: seeding ${n.toLocaleString('en-US')} profiles`);
  const pid = (i: number) => `p${i}`;
  for (let i = 0; i < n + 1; i += 2000) {
    const p = redis.pipeline();
    for (let j = i; j < Math.min(n + 1, i + 2000); j++) {
      p.sadd(k.profileIdentities(pid(j)), `user:u${j}`);
      p.hset(k.profileTraits(pid(j)), 'plan', '"pro"');
    }
    await p.exec();
  }
  const at = new Date().toISOString();
  const journey: JourneyDefinition = {
    id: 'jrn_broadcast',
    workspaceId: ws,
    name: 'broadcast',
    entry: { segment: 'seg_broadcast', on: 'enter' },
    nodes: [
      {
        id: 's',
        type: 'send',
        channel: 'webhook',
        webhook: { url: `http://127.0.0.1:${port}/hook`, secret: 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
        policy: { rate: { perSecond: rate } },
        next: 'w',
      },
      { id: 'w', type: 'wait', for: 'P1D' },
    ],
    status: 'active',
    version: 1,
    createdAt: at,
    updatedAt: at,
  };
  await new DefinitionStore(redis, prefix).putMany([
    { kind: 'journeys', def: journey },
    { kind: 'journeyVersions', def: journey, field: `${journey.id}@${journey.version}` },
  ]);

  const runner = await startJourneys(cfg, clients, ctx.log.child({ service: 'journeys' }));
  const activation = await startActivation(cfg, clients, ctx.log.child({ service: 'activation' }));
  // each person's first decision (queued at a slot, or sent at once) from the ledger topic
  const decided = new Map<string, number>();
  let rateDelayed = 0;
  const ledgerReader = clients.kafka().consumer({
    groupId: `${prefix}.bench-ledger`,
    topics: [t.activationLedger],
    fromBeginning: true,
    maxBatchSize: 2000,
    concurrency: 4,
  });
  await ledgerReader.run(async (batch) => {
    for (const m of batch.messages) {
      const row = JSON.parse(m.value?.toString() ?? '{}') as {
        profile_id: string;
        at: number;
        outcome: string;
        reason: string;
      };
      if (row.outcome === 'delayed' && row.reason === 'rate_limit') rateDelayed++;
      if (!decided.has(row.profile_id)) decided.set(row.profile_id, row.at);
    }
  });
  const producer = clients.kafka().producer({ lingerMs: 5 });
  await producer.connect();
  let seq = 0;
  const produce = (from: number, count: number) =>
    producer.send(
      t.segmentChanges,
      Array.from({ length: count }, (_, x) => {
        const i = from + x;
        const c: SegmentChange = {
          workspaceId: ws,
          profileId: pid(i),
          segmentId: 'seg_broadcast',
          segmentVersion: 1,
          type: 'entered',
          epoch: 1,
          messageId: `m${ctx.nonce}${seq++}`,
          occurredAt: new Date().toISOString(),
          userId: `u${i}`,
          traits: { plan: 'pro' },
        };
        return { key: `${ws}:${c.profileId}`, value: JSON.stringify(c) };
      }),
    );
  const until = async (what: () => Promise<boolean> | boolean, timeoutMs: number, label: string) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await what())) {
      if (Date.now() > deadline)
        throw new Error(`broadcast bench: ${label} not done in ${timeoutMs / 1000} s`);
      await sleep(50);
    }
  };

  const figures: Figure[] = [];
  const details: Record<string, number> = {};
  let lost = 0;
  try {
    // warm-up: both consumer groups join, one person (n) goes all the way to the receiver
    ctx.progress('broadcast: warming up');
    await produce(n, 1);
    await until(async () => (await delivered()) >= 1 && decided.has(pid(n)), 90_000, 'warm-up');
    await take();
    // the warm-up's slot is long past: the broadcast starts on a fresh reservation
    await sleep(1000);

    ctx.progress(
      `broadcast: ${n.toLocaleString('en-US')} people enter at once; the send's policy allows ${rate.toLocaleString('en-US')}/s`,
    );
    const start = Date.now();
    for (let i = 0; i < n; i += 5000) await produce(i, Math.min(5000, n - i));
    const produced = Date.now();
    await until(() => decided.size >= n + 1, 900_000, 'queueing');
    const queueS = (Math.max(...[...decided.values()].filter((v) => v >= start)) - start) / 1000;
    ctx.progress(
      `  every send queued ${queueS.toFixed(1)} s after the first entry (produced in ${((produced - start) / 1000).toFixed(1)} s); ${rateDelayed.toLocaleString('en-US')} delayed to their slot`,
    );
    const sendBudgetMs = ((n / rate) * 3 + 120) * 1000;
    await until(async () => (await delivered()) >= n, sendBudgetMs, 'sending');
    await sleep(1000);
    const took = await take();
    const received = took.received.sort((a, b) => a - b);
    // by the sender's clock (its webhook-timestamp, whole seconds): the most sends stamped with one second
    const perStamp = new Map<number, number>();
    for (const s of took.stamped) perStamp.set(s, (perStamp.get(s) ?? 0) + 1);
    const busiestStamped = Math.max(...perStamp.values());
    lost = Math.max(0, n - received.length);
    const first = received[0]!;
    const last = received.at(-1)!;
    const achieved = (received.length - 1) / ((last - first) / 1000);
    // the busiest second: most deliveries in any 1 s window
    let busiest = 0;
    for (let i = 0, j = 0; i < received.length; i++) {
      while (received[i]! - received[j]! >= 1000) j++;
      busiest = Math.max(busiest, i - j + 1);
    }
    // the same once every send is queued (the worker no longer also takes new entries)
    const queuedAt = start + queueS * 1000;
    const afterQueue = received.filter((x) => x > queuedAt);
    let busiestAfter = 0;
    for (let i = 0, j = 0; i < afterQueue.length; i++) {
      while (afterQueue[i]! - afterQueue[j]! >= 1000) j++;
      busiestAfter = Math.max(busiestAfter, i - j + 1);
    }
    const sendS = (last - start) / 1000;
    ctx.progress(
      `  ${received.length.toLocaleString('en-US')} delivered (${received.length - n} more than people) in ${((last - first) / 1000).toFixed(1)} s: ` +
        `${Math.round(achieved).toLocaleString('en-US')}/s = ${(achieved / rate).toFixed(3)} × the policy's rate; ` +
        `busiest second ${busiest.toLocaleString('en-US')} (${(busiest / rate).toFixed(2)} ×), ` +
        `by the sender's second stamp ${busiestStamped.toLocaleString('en-US')}; once all are queued ${busiestAfter.toLocaleString('en-US')}`,
    );
    details.people = n;
    details.policyRate = rate;
    details.queueSec = queueS;
    details.rateDelayed = rateDelayed;
    details.delivered = received.length;
    details.lastDeliverySec = sendS;
    figures.push(
      { scenario: 'journeys/broadcast', figure: 'time to queue all sends', unit: 's', runs: [queueS] },
      { scenario: 'journeys/broadcast', figure: 'sends queued', unit: 'sends/s', runs: [n / queueS] },
      { scenario: 'journeys/broadcast', figure: "policy's rate", unit: 'sends/s', runs: [rate] },
      {
        scenario: 'journeys/broadcast',
        figure: 'achieved send rate',
        unit: 'sends/s',
        runs: [achieved],
        compareTo: { scenario: 'journeys/broadcast', figure: "policy's rate" },
        target: TARGETS.rateRatio,
      },
      {
        scenario: 'journeys/broadcast',
        figure: 'busiest second',
        unit: 'sends',
        runs: [busiest],
        compareTo: { scenario: 'journeys/broadcast', figure: "policy's rate" },
      },
      {
        scenario: 'journeys/broadcast',
        figure: 'busiest second once all queued',
        unit: 'sends',
        runs: [busiestAfter],
        compareTo: { scenario: 'journeys/broadcast', figure: "policy's rate" },
      },
      { scenario: 'journeys/broadcast', figure: 'time to the last delivery', unit: 's', runs: [sendS] },
    );
  } finally {
    await producer.disconnect().catch(() => {});
    await ledgerReader.disconnect().catch(() => {});
    await activation.stop();
    await runner.stop();
    await clients.close();
    sink.disconnect();
  }
  const rows = buildRows(figures);
  const achievedRow = rows.find((r) => r.figure === 'achieved send rate');
  return {
    rows,
    measurements: [
      {
        scenario: 'journeys/broadcast',
        load: `${n} people entering at once, policy rate ${rate}/s`,
        run: 1,
        opsPerSec: achievedRow?.value ?? 0,
        eventsPerSec: achievedRow?.value ?? 0,
        p50Ms: Number.NaN,
        p99Ms: Number.NaN,
        maxMs: Number.NaN,
        errors: lost,
        errorSamples: lost > 0 ? [`${lost} people not delivered`] : [],
        abandoned: 0,
        serverCpuPct: null,
        generatorCpuPct: 0,
        cpuUsPerEvent: null,
        machineBusyPct: null,
        jitterPct: null,
        details,
      },
    ],
    notes: [
      `journeys/broadcast: ${n.toLocaleString('en-US')} seeded people produced at once as segment changes into a journey ` +
        `\`send → wait P1D\` whose send's policy.rate is ${rate.toLocaleString('en-US')}/s; the journey runner and one ` +
        'activation worker in the bench process, the webhook receiver in a child process; time to queue = produce ' +
        'start → the last person whose send was first decided (the activation ledger topic: delayed to its slot, or ' +
        'sent at once); achieved rate = (deliveries − 1) ÷ (last − first receipt), its ratio to the policy rate; ' +
        'busiest second = most receipts in any 1 s window (overall, and after the last send was queued). One run.',
    ],
  };
}
