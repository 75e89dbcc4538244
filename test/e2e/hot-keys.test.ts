// The hot-key lane on the real stack: one anonymous id flooding ingest past CDP_HOT_KEY_RATE
// has its excess moved to cdp.events-overflow, while another person's events stay on
// cdp.events; nothing is lost: the processor's overflow group applies the flood (its last
// trait is on the profile) and the history sink stores every event of both lanes.
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import type { Config } from '../../runtime/config.ts';
import { topics } from '../../schemas/topics.ts';
import { adminApi, eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
let ch: ClickHouseClient;
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);

const batch = (events: unknown[]) =>
  fetch(`${running.urls.ingest}/v1/batch`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ batch: events }),
  });

async function messagesOn(topic: string): Promise<number> {
  const admin = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
  } finally {
    await admin.disconnect();
  }
}

beforeAll(async () => {
  // 5 events a second per person, 20 at once
  cfg = testConfig({ CDP_HOT_KEY_RATE: '5', CDP_HOT_KEY_BURST: '20' });
  running = await startServices(cfg, ['ingest', 'processor', 'query'], testLogger(cfg));
  ch = await createClickHouse(cfg.clickhouse);
}, 120_000);

afterAll(async () => {
  await running?.stop();
});

describe('hot-key lane', () => {
  it("moves one id's flood to the overflow topic, keeps others on cdp.events, and loses nothing", async () => {
    const t = topics(cfg.kafka.topicPrefix);
    const bot = uniqueId('bot');
    const alice = uniqueId('alice');
    const flood = Array.from({ length: 200 }, (_, i) => ({
      type: 'identify',
      anonymousId: bot,
      messageId: `${bot}-${i}`,
      traits: { n: i + 1 },
    }));
    for (let i = 0; i < flood.length; i += 50) expect((await batch(flood.slice(i, i + 50))).status).toBe(200);
    const calm = Array.from({ length: 10 }, (_, i) => ({
      type: 'track',
      anonymousId: alice,
      messageId: `${alice}-${i}`,
      event: 'Viewed',
    }));
    expect((await batch(calm)).status).toBe(200);

    const onMain = await messagesOn(t.events);
    const onOverflow = await messagesOn(t.eventsOverflow);
    expect(onMain + onOverflow).toBe(210);
    // the burst (and what refilled meanwhile) stayed; the rest of the flood moved
    expect(onOverflow).toBeGreaterThanOrEqual(150);
    expect(onMain).toBeGreaterThanOrEqual(30); // 20 of the bot's burst + alice's 10

    // the overflow group applied the flood: the last trait is on the bot's profile
    await eventually(
      "the bot's last identify applied",
      async () => {
        const p = await api('GET', `/v1/profiles?anonymousId=${bot}`);
        return p.status === 200 && p.body.traits?.n === 200;
      },
      30_000,
    );
    // and the history has every event of both lanes, once
    await eventually(
      'all 210 in the history',
      async () => {
        const r = await ch.query({
          query: `SELECT count() AS n, uniqExact(message_id) AS u FROM events
                  WHERE workspace_id = {ws:String} AND anonymous_id IN ({a:String}, {b:String})`,
          query_params: { ws: cfg.keys.workspace, a: bot, b: alice },
          format: 'JSONEachRow',
        });
        const [row] = (await r.json()) as Array<{ n: string; u: string }>;
        return Number(row?.u) === 210;
      },
      30_000,
    );
  });
});
