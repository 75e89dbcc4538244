// An inbound STOP then START, taken by the ingest app (signed as Twilio signs them), reach
// ClickHouse consent_log through the query service's worker (query/sms-consent-log.ts) on
// the real Redis and chDB: one row per reply, source `sms_keyword`, the text as received,
// the number as identifier, the MessageSid as ref; a redelivered STOP adds no row.
import { createHmac } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIngestApp } from '../../ingest/app.ts';
import { startSmsConsentLogWorker } from '../../query/sms-consent-log.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import type { Config } from '../../runtime/config.ts';
import { migrate } from '../../schemas/migrations.ts';
import { smsConsentDueKey } from '../../schemas/sms-consent.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';

const TOKEN = 'tw-token';
const PUBLIC = 'https://ingest.shop.test';
let cfg: Config;
let redis: Redis;
let ch: ClickHouseClient;

beforeAll(async () => {
  cfg = testConfig();
  redis = new Redis(cfg.redis.url);
  ch = await createClickHouse(cfg.clickhouse);
  await migrate(ch);
});
afterAll(async () => {
  redis?.disconnect();
  await ch?.close();
});

function inbound(app: ReturnType<typeof createIngestApp>, ws: string, params: Record<string, string>) {
  const path = `/v1/webhooks/sms/twilio/${ws}/inbound`;
  let data = PUBLIC + path;
  for (const k of Object.keys(params).sort()) data += k + params[k];
  return app.request(path, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-twilio-signature': createHmac('sha1', TOKEN).update(data).digest('base64'),
    },
    body: new URLSearchParams(params).toString(),
  });
}

describe('SMS keywords in consent_log', () => {
  it('STOP and START are logged once each with their text', async () => {
    const ws = cfg.keys.workspace;
    const log = testLogger(cfg);
    const app = createIngestApp({
      producer: { connect: async () => {}, disconnect: async () => {}, send: async () => {} },
      eventsTopic: 'events',
      resolveWriteKey: () => undefined,
      log,
      smsWebhooks: {
        redis,
        redisPrefix: cfg.redis.prefix,
        authToken: TOKEN,
        publicUrl: PUBLIC,
        helpText: 'help',
        workspaceKnown: async (w) => w === ws,
        log,
        now: () => new Date(),
      },
    });
    const phone = '+447700900123';
    const stop = { MessageSid: 'SMa1', From: phone, Body: 'Stop' };
    expect((await inbound(app, ws, stop)).status).toBe(200);
    expect((await inbound(app, ws, stop)).status).toBe(200); // redelivered
    expect((await inbound(app, ws, { MessageSid: 'SMa2', From: phone, Body: 'START' })).status).toBe(200);

    const worker = startSmsConsentLogWorker({
      redis: redis as never,
      clickhouse: ch,
      redisPrefix: cfg.redis.prefix,
      log,
      now: () => new Date(Date.now() + 1000),
      intervalMs: 3_600_000,
    });
    // its loop takes the queue at once
    await eventually(
      'the queue drained',
      async () => (await redis.zcard(smsConsentDueKey(cfg.redis.prefix))) === 0,
    );
    await worker.stop();
    const rs = await ch.query({
      query: `SELECT profile_id, identifiers, channel, purpose, subscribed, status, source, actor, text, ref
              FROM consent_log WHERE workspace_id = {ws:String} AND has(identifiers, {id:String}) ORDER BY at, ref`,
      query_params: { ws, id: `phone:${phone}` },
      format: 'JSONEachRow',
    });
    const rows = await rs.json();
    expect(rows).toEqual([
      {
        profile_id: '',
        identifiers: [`phone:${phone}`],
        channel: 'sms',
        purpose: '*',
        subscribed: 0,
        status: 'revoked',
        source: 'sms_keyword',
        actor: 'recipient',
        text: 'Stop',
        ref: 'SMa1',
      },
      {
        profile_id: '',
        identifiers: [`phone:${phone}`],
        channel: 'sms',
        purpose: '*',
        subscribed: 1,
        status: 'subscribed',
        source: 'sms_keyword',
        actor: 'recipient',
        text: 'START',
        ref: 'SMa2',
      },
    ]);
  });
});
