// The history sink against real Kafka and chDB: events, identity changes and segment
// membership transitions become rows,
// poison messages go to the dead-letter topic with their reason, and a person merged from
// two anonymous ids and a userId counts once in analytics.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replayDeadLetters } from '../cli/dlq-replay.ts';
import { createQueryApp } from '../query/app.ts';
import { type ClickHouseClient, createClickHouse } from '../runtime/clickhouse.ts';
import type { Config } from '../runtime/config.ts';
import { type RunningConsumer, superviseConsumer } from '../runtime/consume.ts';
import { createKafka, type KafkaClient, type Producer } from '../runtime/kafka/index.ts';
import type { IdentityChange } from '../schemas/identity-change.ts';
import { migrate } from '../schemas/migrations.ts';
import { DLQ_HEADERS, REPLAY_HEADER, type Topics, topics } from '../schemas/topics.ts';
import { eventually, testConfig, testLogger } from '../test/harness.ts';
import { createHistorySink, type HistorySink } from './history-sink.ts';
import { topicSpecs } from './main.ts';

let cfg: Config;
let ch: ClickHouseClient;
let kafka: KafkaClient;
let producer: Producer;
let sink: HistorySink;
let consumer: RunningConsumer;
let t: Topics;
let dead: { seen: Array<{ headers: Record<string, string>; value: string }>; stop(): Promise<void> };

beforeAll(async () => {
  cfg = testConfig({ CDP_DATA_DIR: mkdtempSync(join(tmpdir(), 'cdp-sink-')), CDP_HISTORY_FLUSH_MS: '300' });
  const log = testLogger(cfg);
  ch = await createClickHouse(cfg.clickhouse);
  await migrate(ch);
  kafka = createKafka(cfg.kafka, log);
  producer = kafka.producer();
  t = topics(cfg.kafka.topicPrefix);
  const admin = kafka.admin();
  await admin.ensureTopics(topicSpecs(cfg));
  sink = createHistorySink({ clickhouse: ch, producer, topics: t, log, ...cfg.history });
  consumer = superviseConsumer({
    kafka,
    admin,
    topics: topicSpecs(cfg),
    consumer: {
      groupId: `${cfg.kafka.topicPrefix}.cdp-history`,
      topics: [t.events, t.identity, t.segmentChanges],
      concurrency: 4,
    },
    handler: sink.handler,
    log,
  });
  await consumer.started;
  // the dead-letter topic, read with headers
  const seen: Array<{ headers: Record<string, string>; value: string }> = [];
  const dlq = kafka.consumer({ groupId: `${cfg.kafka.topicPrefix}.dlq-reader`, topics: [t.deadLetter] });
  await dlq.run(async (b) => {
    for (const m of b.messages) seen.push({ headers: m.headers, value: m.value?.toString() ?? '' });
  });
  dead = { seen, stop: () => dlq.disconnect() };
});

afterAll(async () => {
  await consumer?.stop();
  await dead?.stop();
  await sink?.flush();
  await producer?.disconnect();
  await ch?.close();
});

const ws = () => cfg.keys.workspace;
const ev = (
  messageId: string,
  ids: { userId?: string; anonymousId?: string },
  event: string,
  at: string,
) => ({
  key: `${ws()}:${ids.userId ?? ids.anonymousId}`,
  value: JSON.stringify({
    workspaceId: ws(),
    type: 'track',
    messageId,
    userId: ids.userId ?? null,
    anonymousId: ids.anonymousId ?? null,
    event,
    properties: {},
    traits: {},
    context: {},
    integrations: {},
    timestamp: at,
    receivedAt: at,
  }),
});
const change = (c: Omit<IdentityChange, 'workspaceId' | 'messageId' | 'occurredAt'>) => ({
  key: `${ws()}:${c.profileId}`,
  value: JSON.stringify({
    workspaceId: ws(),
    messageId: `idc-${c.version}`,
    occurredAt: '2026-05-01T00:00:00Z',
    ...c,
  }),
});

describe('history sink', () => {
  it('writes identity links, and analytics count a merged person once', async () => {
    await producer.send(t.events, [
      ev('s-1', { anonymousId: 'anon-1' }, 'Signed Up', '2026-05-01T10:00:00Z'),
      ev('s-2', { anonymousId: 'anon-2' }, 'Added To Cart', '2026-05-01T11:00:00Z'),
      ev('s-3', { userId: 'ada', anonymousId: 'anon-2' }, 'Order Completed', '2026-05-01T12:00:00Z'),
      ev('s-4', { anonymousId: 'anon-9' }, 'Signed Up', '2026-05-01T10:30:00Z'),
    ]);
    // the merge arrives before the older changes it supersedes: the version decides
    await producer.send(t.identity, [
      change({
        profileId: 'p-1',
        identifiers: ['anon:anon-1', 'anon:anon-2', 'user:ada', 'email:ada@x.io'],
        mergedProfileIds: ['p-2'],
        version: 3,
      }),
    ]);
    await producer.send(t.identity, [
      change({ profileId: 'p-1', identifiers: ['anon:anon-1'], mergedProfileIds: [], version: 1 }),
      change({ profileId: 'p-2', identifiers: ['anon:anon-2'], mergedProfileIds: [], version: 2 }),
    ]);
    const links = await eventually('identity links', async () => {
      const rs = await ch.query({
        query: `SELECT id_type, id_value, argMax(profile_id, version) AS pid FROM identity_links
                WHERE workspace_id = {ws:String} GROUP BY id_type, id_value ORDER BY id_type, id_value`,
        query_params: { ws: ws() },
        format: 'JSONEachRow',
      });
      const rows = await rs.json<{ id_type: string; id_value: string; pid: string }>();
      return rows.length === 6 ? rows : undefined;
    });
    expect(links).toEqual([
      { id_type: 'anon', id_value: 'anon-1', pid: 'p-1' },
      { id_type: 'anon', id_value: 'anon-2', pid: 'p-1' },
      { id_type: 'email', id_value: 'ada@x.io', pid: 'p-1' },
      { id_type: 'profile', id_value: 'p-1', pid: 'p-1' },
      { id_type: 'profile', id_value: 'p-2', pid: 'p-1' },
      { id_type: 'user', id_value: 'ada', pid: 'p-1' },
    ]);
    await eventually('four events', async () => {
      const rs = await ch.query({
        query: 'SELECT count() AS n FROM events WHERE workspace_id = {ws:String}',
        query_params: { ws: ws() },
        format: 'JSONEachRow',
      });
      return Number((await rs.json<{ n: string }>())[0]!.n) === 4;
    });

    const app = createQueryApp({
      redis: {} as never,
      clickhouse: ch,
      defs: {} as never,
      writeKeys: {} as never,
      redisPrefix: cfg.redis.prefix,
      resolveAdminKey: () => ws(),
      unsubscribeSecret: 'unused-in-this-suite',
      log: testLogger(cfg),
    });
    const res = await app.request('/v1/analytics/funnel', {
      method: 'POST',
      headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
      body: JSON.stringify({
        steps: [{ event: 'Signed Up' }, { event: 'Added To Cart' }, { event: 'Order Completed' }],
        window: '1d',
        from: '2026-05-01',
        to: '2026-05-02',
      }),
    });
    expect(res.status).toBe(200);
    // anon-1, anon-2 and ada are one person who did all three steps; anon-9 signed up only
    expect(((await res.json()) as { steps: Array<{ count: number }> }).steps.map((s) => s.count)).toEqual([
      2, 1, 1,
    ]);
  });

  it('dead-letters poison messages with the reason and keeps going', async () => {
    await producer.send(t.events, [
      { key: 'x', value: 'not json' },
      ev('late-1', { anonymousId: 'anon-late' }, 'Too Late', '2400-01-01T00:00:00Z'),
      ev('ok-1', { anonymousId: 'anon-ok' }, 'Fine', '2026-05-02T00:00:00Z'),
      // valid for JSON.parse (the last key wins) but refused by ClickHouse's parser: found by
      // bisecting the refused insert, not by our own checks
      (() => {
        const e = ev('dup-1', { anonymousId: 'anon-dup' }, 'Twice', '2026-05-02T00:00:00Z');
        return { ...e, value: e.value.replace('"messageId"', '"messageId":"dup-0","messageId"') };
      })(),
      ev('ok-2', { anonymousId: 'anon-ok' }, 'Fine', '2026-05-02T00:00:01Z'),
    ]);
    await producer.send(t.identity, [{ key: 'y', value: JSON.stringify({ workspaceId: ws() }) }]);
    await eventually('four dead letters', () => dead.seen.length >= 4);
    const reasons = dead.seen
      .map((d) => `${d.headers[DLQ_HEADERS.stage]}: ${d.headers[DLQ_HEADERS.reason]}`)
      .sort();
    expect(reasons).toEqual([
      expect.stringMatching(/^history\.identity: invalid identity change at \/profileId/),
      expect.stringMatching(/^history\.insert: ClickHouse refused it: .*messageId/),
      expect.stringMatching(/^history\.parse: invalid JSON/),
      'history.row: timestamp outside 1900-2299',
    ]);
    for (const d of dead.seen) expect(d.headers[DLQ_HEADERS.source]).toMatch(/cdp\.(events|identity)$/);
    await eventually('the good event after the poison', async () => {
      const rs = await ch.query({
        query:
          "SELECT count() AS n FROM events WHERE workspace_id = {ws:String} AND message_id IN ('ok-1', 'ok-2')",
        query_params: { ws: ws() },
        format: 'JSONEachRow',
      });
      return Number((await rs.json<{ n: string }>())[0]!.n) === 2;
    });
    expect(sink.stats.deadLettered).toBe(4);
  });

  it('keeps every membership transition, once however often it is redelivered', async () => {
    const transition = (profileId: string, type: 'entered' | 'exited', epoch: number) => ({
      key: `${ws()}:${profileId}`,
      value: JSON.stringify({
        workspaceId: ws(),
        profileId,
        segmentId: 'seg-vip',
        segmentVersion: 2,
        type,
        epoch,
        messageId: `m-${profileId}-${epoch}`,
        occurredAt: `2026-05-0${epoch}T00:00:00.000Z`,
        userId: null,
        traits: {},
      }),
    });
    const before = dead.seen.length;
    const changes = [
      transition('p-1', 'entered', 1),
      transition('p-1', 'exited', 2),
      transition('p-2', 'entered', 1),
    ];
    await producer.send(t.segmentChanges, [...changes, changes[0]!]); // a redelivery of the first
    await producer.send(t.segmentChanges, [
      { key: 'z', value: JSON.stringify({ workspaceId: ws(), epoch: 0 }) },
      // parses, but the columns refuse it (UInt32): dead-lettered, never a stalled insert
      {
        key: 'z',
        value: transition('p-3', 'entered', 1).value.replace('"segmentVersion":2', '"segmentVersion":-1'),
      },
    ]);
    type Row = { profile_id: string; type: string; epoch: number; at: string };
    const rows = await eventually('three transitions in segment_membership_history', async () => {
      const rs = await ch.query({
        query: `SELECT profile_id, type, epoch, toString(at) AS at FROM segment_membership_history FINAL
                WHERE workspace_id = {ws:String} AND segment_id = 'seg-vip' ORDER BY profile_id, epoch`,
        query_params: { ws: ws() },
        format: 'JSONEachRow',
      });
      const r = await rs.json<Row>();
      return r.length >= 3 ? r : undefined;
    });
    expect(rows).toEqual([
      { profile_id: 'p-1', type: 'entered', epoch: 1, at: '2026-05-01 00:00:00.000' },
      { profile_id: 'p-1', type: 'exited', epoch: 2, at: '2026-05-02 00:00:00.000' },
      { profile_id: 'p-2', type: 'entered', epoch: 1, at: '2026-05-01 00:00:00.000' },
    ]);
    await eventually('the malformed changes dead-lettered', () => dead.seen.length - before >= 2);
    expect(dead.seen.slice(before).map((d) => d.headers[DLQ_HEADERS.stage])).toEqual([
      'history.membership',
      'history.membership',
    ]);
  });

  it('retries a batch that ClickHouse refuses for the moment ("too many parts"): no dead letter, every row lands', async () => {
    const count = async (like: string) => {
      const rs = await ch.query({
        query:
          'SELECT count() AS n FROM events WHERE workspace_id = {ws:String} AND message_id LIKE {like:String}',
        query_params: { ws: ws(), like },
        format: 'JSONEachRow',
      });
      return Number((await rs.json<{ n: string }>())[0]!.n);
    };
    // a real TOO_MANY_PARTS (code 252) from the engine: merges stopped, and any insert into a
    // partition that already has a part refused until the setting is lifted
    await producer.send(t.events, [
      ev('parts-seed', { anonymousId: 'anon-p' }, 'Seed', '2026-07-01T00:00:00Z'),
    ]);
    await eventually('the seed row', async () => (await count('parts-seed')) === 1);
    await ch.command({ query: 'SYSTEM STOP MERGES events' });
    await ch.command({
      query: 'ALTER TABLE events MODIFY SETTING parts_to_throw_insert = 1, parts_to_delay_insert = 0',
    });
    const deadBefore = dead.seen.length;
    const statsBefore = sink.stats.deadLettered;
    const retriesBefore = sink.stats.retries;
    try {
      await producer.send(
        t.events,
        Array.from({ length: 30 }, (_, i) =>
          ev(`parts-${i}`, { anonymousId: `anon-p${i % 3}` }, 'Throttled', '2026-07-02T00:00:00Z'),
        ),
      );
      // and one event that is bad whatever the moment: it alone is dead-lettered, once
      await producer.send(t.events, [
        ev('parts-bad', { anonymousId: 'anon-p' }, 'Bad', '2400-01-01T00:00:00Z'),
      ]);
      const throttledDead = () =>
        dead.seen.slice(deadBefore).filter((d) => /^parts-\d/.test(JSON.parse(d.value).messageId));
      await eventually(
        'inserts refused (and retried, or dead-lettered)',
        () => sink.stats.retries - retriesBefore >= 3 || throttledDead().length > 0,
      );
      expect(throttledDead()).toEqual([]);
      expect(await count('parts-%')).toBe(1);
    } finally {
      await ch.command({
        query: 'ALTER TABLE events RESET SETTING parts_to_throw_insert, parts_to_delay_insert',
      });
      await ch.command({ query: 'SYSTEM START MERGES events' });
    }
    await eventually('every throttled row after the retry', async () => (await count('parts-%')) === 31);
    await eventually('the bad row dead-lettered', () => dead.seen.length > deadBefore);
    // let a late dead letter show up before counting them
    await new Promise((r) => setTimeout(r, 1000));
    const letters = dead.seen.slice(deadBefore);
    expect(letters.map((d) => `${d.headers[DLQ_HEADERS.stage]} ${JSON.parse(d.value).messageId}`)).toEqual([
      'history.row parts-bad',
    ]);
    expect(sink.stats.deadLettered - statsBefore).toBe(1);
  });

  it('cdp dlq replay puts history dead letters back on their topic, and the sink stores them', async () => {
    const count = async () => {
      const rs = await ch.query({
        query:
          "SELECT count() AS n FROM events WHERE workspace_id = {ws:String} AND message_id = 'replayed-1'",
        query_params: { ws: ws() },
        format: 'JSONEachRow',
      });
      return Number((await rs.json<{ n: string }>())[0]!.n);
    };
    // as an older sink dead-lettered a good event for a failure of the moment; and a
    // dead letter that names a topic outside this deployment, which is never replayed
    const good = ev('replayed-1', { anonymousId: 'anon-r' }, 'Replayed', '2026-05-04T00:00:00Z');
    await producer.send(t.deadLetter, [
      {
        key: good.key,
        value: good.value,
        headers: {
          [DLQ_HEADERS.reason]: 'ClickHouse refused it: Too many parts',
          [DLQ_HEADERS.source]: t.events,
          [DLQ_HEADERS.partition]: '0',
          [DLQ_HEADERS.offset]: '0',
          [DLQ_HEADERS.stage]: 'history.insert',
        },
      },
      {
        key: 'k',
        value: good.value,
        headers: { [DLQ_HEADERS.source]: 'someone-elses-topic', [DLQ_HEADERS.stage]: 'history.insert' },
      },
    ]);
    expect(await count()).toBe(0);
    const r = await replayDeadLetters({ brokers: cfg.kafka.brokers, topicPrefix: cfg.kafka.topicPrefix });
    // every earlier dead letter of this suite was read too; the foreign one skipped
    expect(r.replayed).toBeGreaterThanOrEqual(1);
    expect(r.skipped).toBeGreaterThanOrEqual(1);
    await eventually('the replayed event stored', async () => (await count()) === 1);
    // the suite's bad events came back to the dead-letter topic: marked, never replayed again
    await eventually('the still-bad replays dead-lettered again', () =>
      dead.seen.some((d) => d.headers[REPLAY_HEADER] === 'history'),
    );
    // a second replay finds nothing new
    expect(
      (await replayDeadLetters({ brokers: cfg.kafka.brokers, topicPrefix: cfg.kafka.topicPrefix })).replayed,
    ).toBe(0);
  });

  it('dead-letters a batch of large bad events in requests the broker takes', async () => {
    // 60 events of 25 KB with a timestamp the history refuses: 1.5 MB of dead letters from
    // one batch (the service fetches up to 8 MB per partition), more than one produce
    // request may hold
    const before = dead.seen.length;
    const statsBefore = sink.stats.deadLettered;
    const messages = Array.from({ length: 60 }, (_, i) => {
      const e = ev(`big-bad-${i}`, { anonymousId: 'anon-big' }, 'Big', '2400-01-01T00:00:00Z');
      const value = Buffer.from(
        e.value.replace('"properties":{}', `"properties":{"pad":"${'x'.repeat(25_000)}"}`),
      );
      return {
        topic: t.events,
        partition: 0,
        offset: String(i),
        key: e.key,
        value,
        headers: {},
        timestamp: 0,
      };
    });
    const out = await sink.handler(
      { topic: t.events, partition: 0, messages },
      { heartbeat: async () => {}, isActive: () => true },
    );
    if (out) await out.effects;
    expect(sink.stats.deadLettered - statsBefore).toBe(60);
    await eventually('60 dead letters', () => dead.seen.length - before >= 60, 30_000);
    expect(new Set(dead.seen.slice(before).map((d) => d.headers[DLQ_HEADERS.stage]))).toEqual(
      new Set(['history.row']),
    );
  });

  it('never inserts one row at a time: a trickle waits for the timer', async () => {
    const before = sink.stats.inserts.events;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        producer.send(t.events, [
          ev(`trickle-${i}`, { anonymousId: `anon-t${i}` }, 'Tick', '2026-05-03T00:00:00Z'),
        ]),
      ),
    );
    await eventually('20 trickled rows', async () => {
      const rs = await ch.query({
        query: "SELECT count() AS n FROM events WHERE workspace_id = {ws:String} AND event = 'Tick'",
        query_params: { ws: ws() },
        format: 'JSONEachRow',
      });
      return Number((await rs.json<{ n: string }>())[0]!.n) === 20;
    });
    // 20 messages in 20 produce requests, a 300 ms flush timer: a few inserts, not 20
    expect(sink.stats.inserts.events - before).toBeLessThanOrEqual(5);
  });
});
