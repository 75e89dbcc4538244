// An inbound STOP then START, taken by the ingest app (signed as Twilio signs them), reach
// ClickHouse consent_log through the query service's worker (query/sms-consent-log.ts) on
// the real Redis and chDB: one row per reply, source `sms_keyword`, the text as received,
// the number as identifier, the MessageSid as ref; a redelivered STOP adds no row.
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIngestApp } from '../../ingest/app.ts';
import { MAX_SMS_WEBHOOK_BYTES } from '../../ingest/sms-webhooks.ts';
import { startSmsConsentLogWorker } from '../../query/sms-consent-log.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import type { Config } from '../../runtime/config.ts';
import { listen } from '../../runtime/http.ts';
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

/** The ingest app with only the SMS webhooks (no producer: keywords go to Redis and the log). */
function smsApp(workspaceKnown: (ws: string) => Promise<boolean>) {
  const log = testLogger(cfg);
  return createIngestApp({
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
      workspaceKnown,
      log,
      now: () => new Date(),
    },
  });
}

describe('SMS keywords in consent_log', () => {
  it('STOP and START are logged once each with their text', async () => {
    const ws = cfg.keys.workspace;
    const app = smsApp(async (w) => w === ws);
    const phone = '+447700900123';
    const stop = { MessageSid: 'SMa1', From: phone, Body: 'Stop' };
    expect((await inbound(app, ws, stop)).status).toBe(200);
    expect((await inbound(app, ws, stop)).status).toBe(200); // redelivered
    expect((await inbound(app, ws, { MessageSid: 'SMa2', From: phone, Body: 'START' })).status).toBe(200);

    const worker = startSmsConsentLogWorker({
      redis: redis as never,
      clickhouse: ch,
      redisPrefix: cfg.redis.prefix,
      log: testLogger(cfg),
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

describe('SMS webhook body limit', () => {
  it('a chunked body (no Content-Length) over the limit is cut off with a 413 before it is all sent', async () => {
    const app = smsApp(async () => true);
    const server = await listen(app, '127.0.0.1', 0);
    try {
      const chunk = Buffer.alloc(64 * 1024, 'a');
      const total = 64; // 4 MB offered, 64 times the limit
      let sent = 0;
      const res = await new Promise<{ status: number; sentBeforeAnswer: number }>((resolve, reject) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port: server.port,
            method: 'POST',
            path: `/v1/webhooks/sms/twilio/${cfg.keys.workspace}/status`,
            headers: { 'content-type': 'application/x-www-form-urlencoded', 'transfer-encoding': 'chunked' },
          },
          (r) => {
            const answer = { status: r.statusCode ?? 0, sentBeforeAnswer: sent };
            r.resume();
            req.destroy();
            resolve(answer);
          },
        );
        req.on('error', () => {}); // destroyed on purpose once answered
        req.on('close', () => reject(new Error('closed without an answer')));
        // one chunk at a time, the next only once the previous has been taken by the socket
        const pump = () => {
          if (req.destroyed) return;
          if (sent >= total) {
            req.end();
            return;
          }
          sent++;
          if (req.write(chunk)) setImmediate(pump);
          else req.once('drain', pump);
        };
        pump();
      });
      expect(res.status).toBe(413);
      expect(res.sentBeforeAnswer).toBeGreaterThan(MAX_SMS_WEBHOOK_BYTES / chunk.length);
      expect(res.sentBeforeAnswer).toBeLessThan(total);
    } finally {
      await server.close();
    }
  });
});
